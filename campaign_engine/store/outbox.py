"""The outbox: writing messages idempotently and reading the contact history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from ..vocabulary import Category, MessageStatus
from .bulk import bind_processor, copy_into_temp, drop_temp, one_of
from .models import Message, table_of

MESSAGE_COLUMNS = ("id", "rule_id", "customer_id", "subject_type", "subject_id", "channel",
                   "recipient", "status", "subject", "body", "html", "sms_segments", "error",
                   "category", "priority", "run_id", "dedupe_key", "consent_source", "consent_at",
                   "created_at", "due_at", "history")


@dataclass(frozen=True)
class Written:
    """An idempotency key already in the outbox: which run wrote it and what that run decided."""

    run_id: int
    outcome: str  # queued, scheduled (due after it was written), held_out, or failed (nothing rendered)


def existing_dedupe_keys(conn: Connection, keys: Sequence[str]) -> dict[str, Written]:
    """Which of these idempotency keys already have a message (uses the unique index)."""
    if not keys:
        return {}
    rows = conn.execute(select(Message.dedupe_key, Message.run_id, Message.body.is_(None),
                               Message.due_at > Message.created_at, Message.status == "held_out")
                        .where(one_of(conn, Message.dedupe_key, keys)))
    return {key: Written(run_id, "held_out" if held else "failed" if no_body else "scheduled" if later else "queued")
            for key, run_id, no_body, later, held in rows}


def insert_messages(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert a batch of messages; a row whose dedupe_key exists is skipped, not an error.

    The unique key on dedupe_key is the real guard against duplicates (two runs of
    the same date racing each other); returns the dedupe keys actually inserted.
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":  # COPY, then one INSERT .. SELECT: a fifth of the cost
        names = list(rows[0])
        temp = copy_into_temp(conn, table_of(Message), names, ([row[n] for n in names] for row in rows))
        stmt = (postgresql.insert(Message).from_select(names, select(*(temp.c[n] for n in names)))
                .on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(Message.dedupe_key))
        inserted = set(conn.execute(stmt).scalars())
        drop_temp(conn, temp)
        return inserted
    return _insert_sqlite(conn, rows)


def _insert_sqlite(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """One driver-level executemany of `INSERT .. ON CONFLICT (dedupe_key) DO NOTHING`, compiled
    once by SQLAlchemy, values through the columns' own bind processors (the stored formats), and
    the columns' Python defaults as an ordinary insert adds them: SQLAlchemy's per-row parameter
    handling and RETURNING cost about as much as the rest of the batch.

    Which rows went in: the transaction first takes SQLite's write lock (a statement that writes
    nothing), so no other writer can insert until it commits; every row of this statement then has
    an id above the largest before it, and when fewer rows went in than were given (another run
    wrote some of these keys between our check and this insert) exactly those ids are ours.
    """
    table = table_of(Message)
    names = list(rows[0])
    stmt = sqlite.insert(Message).on_conflict_do_nothing(index_elements=["dedupe_key"])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=names)
    order = list(compiled.positiontup or names)
    given = set(names)
    defaults: dict[str, Any] = {}
    for name in order:
        if name not in given:  # a column with a Python-side default (attempts, retries)
            default = table.c[name].default
            if default is None or not getattr(default, "is_scalar", False):
                raise ValueError(f"messages.{name}: no value and no scalar default")
            defaults[name] = getattr(default, "arg")
    processors = [bind_processor(conn, table, name) for name in order]
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values: list[Any] = []
        for name, process in zip(order, processors):
            value = row[name] if name in given else defaults[name]
            values.append(value if process is None or value is None else process(value))
        params.append(tuple(values))
    conn.exec_driver_sql("UPDATE messages SET id = id WHERE 0")  # the write lock, until commit
    before = conn.exec_driver_sql("SELECT max(id) FROM messages").scalar()
    inserted = conn.exec_driver_sql(compiled.string, params).rowcount
    if inserted == len(rows):
        return {row["dedupe_key"] for row in rows}
    ours = conn.execute(select(Message.dedupe_key).where(Message.id > (before if before is not None else 0)))
    return set(ours.scalars())


def query_messages(conn: Connection, *, rule_id: str | None = None, customer_id: str | None = None,
                   status: str | None = None, run_id: int | None = None, channel: str | None = None,
                   created_from: dt.datetime | None = None, created_to: dt.datetime | None = None,
                   limit: int = 100, after_id: int | None = None,
                   message_id: int | None = None) -> list[dict[str, Any]]:
    """Messages, newest first, filtered; `after_id` pages backwards by id.

    Contact data comes back as stored: callers mask it for whoever they answer (campaign_engine.masking).
    """
    query = select(*(getattr(Message, c) for c in MESSAGE_COLUMNS))
    filters: Iterable[Any] = [
        f for f in (
            Message.rule_id == rule_id if rule_id else None,
            Message.customer_id == customer_id if customer_id else None,
            Message.status == status if status else None,
            Message.run_id == run_id if run_id is not None else None,
            Message.channel == channel if channel else None,
            Message.created_at >= created_from if created_from else None,
            Message.created_at < created_to if created_to else None,
            Message.id < after_id if after_id is not None else None,
            Message.id == message_id if message_id is not None else None,
        ) if f is not None
    ]
    rows = conn.execute(query.where(*filters).order_by(Message.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]


# held_out counts: a held-out customer keeps the slot the message would have taken (issue #11)
PLANNED = tuple(s.value for s in (MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.SENDING,
                                  MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.HELD_OUT))


def planned_marketing(conn: Connection, customer_ids: Sequence[str],
                      since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]:
    """(customer, channel) -> due times of marketing messages planned or sent since `since`.

    What the frequency caps count. Narrowed by customer through ix_messages_customer_created
    (a message is due at or after its creation, so created_at >= since - 1 day bounds it).
    """
    if not customer_ids:
        return {}
    rows = conn.execute(
        select(Message.customer_id, Message.channel, Message.due_at)
        .where(one_of(conn, Message.customer_id, customer_ids), Message.category == Category.MARKETING.value,
               Message.status.in_(PLANNED), Message.created_at >= since - dt.timedelta(days=1),
               Message.due_at >= since))
    planned: dict[tuple[str, str], list[dt.datetime]] = {}
    for customer_id, channel, due_at in rows:
        planned.setdefault((customer_id, channel), []).append(due_at)
    return planned


def recent_subjects(conn: Connection, *, rule_id: str, subject_type: str, customer_ids: Sequence[str],
                    since: dt.datetime) -> set[str]:
    """Subjects (customer or deposit ids) of these customers that a rule has a message for created
    since `since`, in a status that counts (PLANNED: held_out too; failed and suppressed do not).

    What `every: Nd` counts. Narrowed by customer through ix_messages_customer_created (a customer's
    messages in the window, of every rule: few), never by the rule (all its contacts in the window).
    """
    if not customer_ids:
        return set()
    rows = conn.execute(
        select(Message.subject_id).distinct()
        .where(one_of(conn, Message.customer_id, customer_ids), Message.created_at >= since,
               Message.rule_id == rule_id, Message.subject_type == subject_type, Message.status.in_(PLANNED)))
    return set(rows.scalars())


def record_receipt(conn: Connection, *, provider: str, provider_message_id: str, delivered: bool,
                   error: str | None, now: dt.datetime) -> bool:
    """Apply a provider's delivery receipt (ix_messages_provider_message_id); False if unknown.

    A receipt can arrive before the worker has recorded `sent` (the provider is fast): it
    applies to a message in `sending` too. A late `failed` never undoes `delivered`.
    """
    from sqlalchemy import update

    query = update(Message).where(Message.provider == provider,
                                  Message.provider_message_id == provider_message_id)
    if delivered:
        values = {"status": "delivered", "delivered_at": now}
        query = query.where(Message.status.in_(("sending", "sent", "delivered")))
    else:
        values = {"status": "failed", "error": f"receipt: {error or 'not delivered'}"[:500]}
        query = query.where(Message.status.in_(("sending", "sent")))
    return conn.execute(query.values(**values)).rowcount > 0


@dataclass(frozen=True)
class OutboxEntry:
    """The message an idempotency key already has, as a preview shows it."""

    id: int
    run_id: int
    status: str  # MessageStatus: where it stands now (queued, scheduled, sent, failed, ...)
    channel: str
    due_at: dt.datetime | None


def outbox_entries(conn: Connection, keys: Sequence[str]) -> dict[str, OutboxEntry]:
    """The messages already written for these idempotency keys (the unique index on dedupe_key).

    What a preview says instead of a hypothetical decision; existing_dedupe_keys answers the
    run's narrower question (which run wrote it, and what it decided then).
    """
    if not keys:
        return {}
    rows = conn.execute(select(Message.dedupe_key, Message.id, Message.run_id, Message.status, Message.channel,
                               Message.due_at).where(one_of(conn, Message.dedupe_key, keys)))
    return {key: OutboxEntry(message_id, run_id, status, channel, due_at)
            for key, message_id, run_id, status, channel, due_at in rows}
