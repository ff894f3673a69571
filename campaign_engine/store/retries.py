"""Operator retries of failed messages: reading the messages a retry selects, and writing its outcomes
onto the same rows (same id, same idempotency key), each guarded by the row's retry count."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from sqlalchemy import Connection, Engine, bindparam, select, update

from ..vocabulary import MessageStatus
from .bulk import one_of
from .claims import write_transaction
from .models import Message, table_of

_FAILED = MessageStatus.FAILED.value


class StoredMessage(NamedTuple):
    """What a retry needs to know about one outbox row."""

    id: int
    dedupe_key: str
    run_id: int
    rule_id: str
    customer_id: str
    subject_type: str
    subject_id: str
    channel: str
    status: str
    error: str | None
    attempts: int
    retries: int
    history: list[dict[str, Any]]


_COLUMNS = tuple(getattr(Message, name) for name in StoredMessage._fields)


def _stored(rows: Any) -> list[StoredMessage]:
    return [StoredMessage._make([*row[:-1], list(row[-1] or [])]) for row in rows]  # history: [] when null


def messages_by_id(conn: Connection, message_ids: Sequence[int]) -> list[StoredMessage]:
    """These messages, whatever their status, in id order (primary key); writes nothing."""
    if not message_ids:
        return []
    query = select(*_COLUMNS).where(one_of(conn, Message.id, list(message_ids))).order_by(Message.id)
    return _stored(conn.execute(query))


def messages_to_retry(conn: Connection, *, status: str, run_id: int | None, rule_id: str | None,
                      after_id: int | None, limit: int) -> list[StoredMessage]:
    """The next `limit` messages in `status` of a run and/or a rule after `after_id`, in id order.

    Keyset pages, so a retry of a holiday's worth of failures reads one page at a time and a row it
    left failed is not read again. Narrowed by ix_messages_run_id (a run) or
    ix_messages_rule_created (a rule only); writes nothing.
    """
    query = select(*_COLUMNS).where(Message.status == status)
    if run_id is not None:
        query = query.where(Message.run_id == run_id)
    if rule_id is not None:
        query = query.where(Message.rule_id == rule_id)
    if after_id is not None:
        query = query.where(Message.id > after_id)
    return _stored(conn.execute(query.order_by(Message.id).limit(limit)))


_messages = table_of(Message)
_c = _messages.c
# Delivery state goes back to a fresh message's: no attempts, claim, send or receipt yet (the old
# provider id cleared, so a late receipt for the earlier send cannot touch the retried message).
_FRESH = dict(attempts=0, claimed_by=None, claim_expires_at=None, sent_at=None, delivered_at=None,
              provider=None, provider_message_id=None)


def _guarded(**values: Any) -> Any:
    """An UPDATE of one failed row at the retry count the retry read (built once, run as executemany)."""
    return (update(_messages)
            .where(_c.id == bindparam("m_id"), _c.status == _FAILED, _c.retries == bindparam("m_retries"))
            .values(retries=_c.retries + 1, history=bindparam("m_history"), **values))


#: Rendered again (queued, scheduled, or failed again with the new error): the message as a run writes it.
_RENDERED = _guarded(
    status=bindparam("m_status"), channel=bindparam("m_channel"), recipient=bindparam("m_recipient"),
    subject=bindparam("m_subject"), body=bindparam("m_body"), html=bindparam("m_html"),
    sms_segments=bindparam("m_sms_segments"), error=bindparam("m_error"), category=bindparam("m_category"),
    priority=bindparam("m_priority"), consent_source=bindparam("m_consent_source"),
    consent_at=bindparam("m_consent_at"), due_at=bindparam("m_due_at"), held_out_by=bindparam("m_held_out_by"),
    rule_version=bindparam("m_rule_version"), suppressed_reason=None, **_FRESH)
#: The contact policy refuses it now: suppressed with the reason, its content left as it was.
_SUPPRESSED = _guarded(status=MessageStatus.SUPPRESSED.value, suppressed_reason=bindparam("m_reason"),
                       error=None, **_FRESH)
#: Its template folder cannot be compiled at all: still failed, with the new error.
_FAILED_AGAIN = _guarded(error=bindparam("m_error"))

RENDERED_FIELDS = ("status", "channel", "recipient", "subject", "body", "html", "sms_segments", "error",
                   "category", "priority", "consent_source", "consent_at", "due_at", "held_out_by", "rule_version")


def apply_retries(engine: Engine, outcomes: Sequence[dict[str, Any]]) -> set[int]:
    """Write retry outcomes; the ids written. Each outcome has `id`, `retries` (the count it read),
    `history` (the whole new list) and one of: `content` (RENDERED_FIELDS, as a run writes them),
    `suppressed_reason`, or `error` (failed again before rendering).

    One write transaction: the rows still failed at the count the retry read are locked first
    (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds its one write lock), then updated
    by primary key in one executemany per kind, so each returned id was written exactly once. A
    row retried by someone else meanwhile, or no longer failed, is left alone and not returned.
    Failed rows are never claimed by the delivery worker nor touched by receipts.
    """
    if not outcomes:
        return set()
    wanted = {o["id"]: o["retries"] for o in outcomes}
    with engine.connect() as conn, write_transaction(conn):
        query = select(Message.id, Message.retries).where(one_of(conn, Message.id, list(wanted)),
                                                          Message.status == _FAILED)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        writable = {i for i, n in conn.execute(query) if wanted[i] == n}
        rendered, suppressed, failed = [], [], []
        for o in outcomes:
            if o["id"] not in writable:
                continue
            params = {"m_id": o["id"], "m_retries": o["retries"], "m_history": o["history"]}
            if "content" in o:
                rendered.append({**params, **{f"m_{k}": o["content"][k] for k in RENDERED_FIELDS}})
            elif o.get("suppressed_reason"):
                suppressed.append({**params, "m_reason": o["suppressed_reason"]})
            else:
                failed.append({**params, "m_error": o["error"]})
        for statement, rows in ((_RENDERED, rendered), (_SUPPRESSED, suppressed), (_FAILED_AGAIN, failed)):
            if rows:
                conn.execute(statement, rows)
    return writable
