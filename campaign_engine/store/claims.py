"""Claims on outbox messages for the delivery worker: claiming due ones, recording outcomes, taking over dead claims.

A message moves queued/scheduled -> sending (claimed by one worker until its
claim expires) -> sent | failed, or back to queued with a later due_at (a retry,
or a claim released unsent). Every outcome is written only while the row is
still claimed by the worker writing it: a worker whose claim expired and was
taken over by another cannot overwrite the newer state. A live worker renews its
claims (renew_claims) every few seconds, so a claim expires only when its worker
died or stopped renewing: the lease can be short and a dead worker's claims are
taken over soon.

The claim is one UPDATE ... RETURNING. On SQLite it runs inside BEGIN IMMEDIATE
(see write_transaction), so it holds the database's one write lock from its first
read and two workers cannot claim the same row; on PostgreSQL it locks its rows
with FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows without
waiting for each other.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from sqlalchemy import Connection, Engine, bindparam, func, select, union_all, update

from ..vocabulary import MessageStatus
from .models import Message, table_of

#: Statuses a worker claims once due_at has passed.
CLAIMABLE = (MessageStatus.QUEUED.value, MessageStatus.SCHEDULED.value)

#: What claim_due returns per message: what a channel needs, and what a pre-send check needs.
CLAIMED_COLUMNS = ("id", "channel", "recipient", "subject", "body", "html", "dedupe_key", "category",
                   "attempts", "customer_id", "rule_id", "due_at")

_SENDING = MessageStatus.SENDING.value


@contextmanager
def write_transaction(conn: Connection, *, immediate: bool = True) -> Iterator[Connection]:
    """One write transaction on `conn`, committed on success and rolled back on error.

    SQLite, `immediate`: sends BEGIN IMMEDIATE itself, so the write lock is taken
    (waiting up to busy_timeout) before anything is read. pysqlite (legacy
    transaction control) issues no BEGIN of its own once one is open, and
    SQLAlchemy's commit/rollback end it. Needed whenever the transaction reads
    before it writes: a deferred transaction whose read snapshot went stale before
    its first write gets "database is locked" at once instead of waiting. A
    transaction whose first statement writes (the outcome updates) may pass
    immediate=False and save a round: SQLite then takes the write lock at that
    statement's start, waiting for it as usual. PostgreSQL: an ordinary transaction.
    """
    if conn.in_transaction():
        raise RuntimeError("write_transaction needs a connection with no transaction open")
    if conn.dialect.name == "sqlite" and immediate:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.begin()
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[Connection]:
    """A connection on which every statement commits by itself: one round trip per recorded outcome.

    For the outcomes (mark_sent, mark_retry, mark_failed), one message at a time (a
    single-row UPDATE is atomic alone), and for renew_claims (one UPDATE).
    PostgreSQL: the session also runs with synchronous_commit off (reset before the
    connection goes back to the pool), so a commit does not wait for the WAL flush:
    the row is visible to every session at once and survives a worker crash; only a
    crash of the database server itself may lose the last fraction of a second of
    such commits, whose messages would then be sent again with the same idempotency
    key. SQLite runs with synchronous=NORMAL (store.db), the same trade for every commit.
    """
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield conn
        finally:
            if postgres and not conn.invalidated:
                conn.exec_driver_sql("RESET synchronous_commit")


def _claimable(query: Any, conn: Connection) -> Any:
    return query.with_for_update(skip_locked=True) if conn.dialect.name == "postgresql" else query


def claim_due(conn: Connection, *, worker: str, now: dt.datetime, limit: int, lease: dt.timedelta,
              channels: Sequence[str]) -> list[dict[str, Any]]:
    """Claim up to `limit` due messages of these channels for `worker`, earliest due first.

    Due: queued or scheduled with due_at <= now, or sending with an expired claim
    (its worker died or stopped renewing it: the message may or may not have been
    sent, and is taken over). Each status is read in due_at order through
    ix_messages_status_due (status, due_at), limited, and the union of the three
    short lists is cut to `limit`: an IN over the statuses would sort every due
    row on each claim. Expired claims are few (at most the rows workers hold).

    Writes status=sending, claimed_by, claim_expires_at = now + lease and
    attempts + 1 (an attempt is a claim to send; releasing unsent claims gives it
    back). Returns CLAIMED_COLUMNS after the update, attempts included.
    Run inside write_transaction and commit before sending, so others see the claim.

    PostgreSQL needs statistics on messages to walk the index: right after a large
    batch is queued, before autovacuum's ANALYZE (within a minute), the planner may
    read and sort every due row on each claim (about 20 ms per claim at 100,000).
    """
    if limit <= 0 or not channels:
        return []
    channel_list = list(channels)
    branches = []
    for status in CLAIMABLE:
        branches.append(_claimable(
            select(Message.id, Message.due_at)
            .where(Message.status == status, Message.due_at <= now, Message.channel.in_(channel_list))
            .order_by(Message.due_at, Message.id).limit(limit), conn).subquery())
    branches.append(_claimable(
        select(Message.id, Message.due_at)
        .where(Message.status == _SENDING, Message.claim_expires_at < now,
               Message.channel.in_(channel_list))
        .order_by(Message.due_at, Message.id).limit(limit), conn).subquery())
    # Oldest due first; among equals, queue order (a run's messages are all due at once).
    candidates = union_all(*(select(b.c.id, b.c.due_at) for b in branches)).subquery()
    chosen = select(candidates.c.id).order_by(candidates.c.due_at, candidates.c.id).limit(limit)
    stmt = (update(Message).where(Message.id.in_(chosen))
            .values(status=_SENDING, claimed_by=worker, claim_expires_at=now + lease,
                    attempts=Message.attempts + 1)
            .returning(*(getattr(Message, c) for c in CLAIMED_COLUMNS)))
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    rows.sort(key=lambda r: (r["due_at"] or now, r["id"]))
    return rows


_messages = table_of(Message)
_c = _messages.c


def _outcome(**values: Any) -> Any:
    """A primary-key UPDATE of a row still held by `m_worker`, built once: executing a prebuilt
    statement skips SQLAlchemy's per-call construction and cache-key work (most of the cost)."""
    return (update(_messages)
            .where(_c.id == bindparam("m_id"), _c.claimed_by == bindparam("m_worker"), _c.status == _SENDING)
            .values(claimed_by=None, claim_expires_at=None, **values))


_MARK_SENT = _outcome(status=MessageStatus.SENT.value, sent_at=bindparam("m_now"),
                      provider=bindparam("m_provider"), provider_message_id=bindparam("m_provider_id"),
                      error=None)
_MARK_RETRY = _outcome(status=MessageStatus.QUEUED.value, due_at=bindparam("m_due_at"),
                       error=bindparam("m_error"))
_MARK_FAILED = _outcome(status=MessageStatus.FAILED.value, error=bindparam("m_error"))


_RENEW = (update(_messages)
          .where(_c.id.in_(bindparam("m_ids", expanding=True)), _c.claimed_by == bindparam("m_worker"),
                 _c.status == _SENDING, _c.claim_expires_at >= bindparam("m_now"))
          .values(claim_expires_at=bindparam("m_until"))
          .returning(_c.id))


def renew_claims(conn: Connection, message_ids: Sequence[int], *, worker: str, now: dt.datetime,
                 lease: dt.timedelta) -> set[int]:
    """Extend `worker`'s claims on these messages to now + lease; the ids whose claim was extended.

    Primary-key updates (one IN list); writes claim_expires_at only. Only a claim
    this worker still holds is extended: one taken over by another worker, given
    an outcome, released, or already expired (claim_due may take it over from
    `now` on) is left alone and not returned, and its worker must not send it.
    """
    if not message_ids:
        return set()
    params = {"m_ids": list(message_ids), "m_worker": worker, "m_now": now, "m_until": now + lease}
    return {int(i) for i in conn.execute(_RENEW, params).scalars()}


def mark_sent(conn: Connection, message_id: int, *, worker: str, provider: str,
              provider_message_id: str | None, now: dt.datetime) -> bool:
    """Record one message as sent, if `worker` still holds its claim; whether it applied.

    Primary-key update; writes status=sent, sent_at, provider, provider_message_id,
    clears the claim and any earlier attempt's error. The worker records each
    outcome on its own (autocommit_connection) before its next send, so a crash
    leaves at most the message in flight unrecorded.
    """
    return mark_sent_many(conn, [(message_id, provider, provider_message_id)], worker=worker, now=now) == 1


def mark_sent_many(conn: Connection, sent: Sequence[tuple[int, str, str | None]], *, worker: str,
                   now: dt.datetime) -> int:
    """mark_sent for (id, provider, provider_message_id) tuples in one executemany; how many applied."""
    if not sent:
        return 0
    params = [{"m_id": i, "m_worker": worker, "m_now": now, "m_provider": p, "m_provider_id": pid}
              for i, p, pid in sent]
    return int(conn.execute(_MARK_SENT, params).rowcount)


def mark_retry(conn: Connection, message_id: int, *, worker: str, due_at: dt.datetime, error: str) -> bool:
    """Put one message back in the queue until `due_at` after a transient failure, if still held.

    Primary-key update; writes status=queued, due_at, error, clears the claim (attempts stay counted).
    """
    return mark_retry_many(conn, [(message_id, due_at, error)], worker=worker) == 1


def mark_retry_many(conn: Connection, retries: Sequence[tuple[int, dt.datetime, str]], *,
                    worker: str) -> int:
    """mark_retry for (id, due_at, error) tuples in one executemany; how many applied."""
    if not retries:
        return 0
    params = [{"m_id": i, "m_worker": worker, "m_due_at": due, "m_error": err} for i, due, err in retries]
    return int(conn.execute(_MARK_RETRY, params).rowcount)


def mark_failed(conn: Connection, message_id: int, *, worker: str, error: str) -> bool:
    """Record one message as failed for good with the reason, if `worker` still holds it.

    Primary-key update; writes status=failed, error, clears the claim.
    """
    return mark_failed_many(conn, [(message_id, error)], worker=worker) == 1


def mark_failed_many(conn: Connection, failures: Sequence[tuple[int, str]], *, worker: str) -> int:
    """mark_failed for (id, error) tuples in one executemany; how many applied."""
    if not failures:
        return 0
    params = [{"m_id": i, "m_worker": worker, "m_error": err} for i, err in failures]
    return int(conn.execute(_MARK_FAILED, params).rowcount)


def release_claims(conn: Connection, message_ids: Sequence[int], *, worker: str,
                   due_at: dt.datetime) -> int:
    """Give back claims this worker will not send now (channel paused, lease running out, stopping).

    Primary-key updates; writes status=queued, due_at, attempts - 1 (nothing was
    attempted), clears the claim; leaves error as it was. How many applied.
    """
    if not message_ids:
        return 0
    stmt = (update(Message)
            .where(Message.id.in_(list(message_ids)), Message.claimed_by == worker, Message.status == _SENDING)
            .values(status=MessageStatus.QUEUED.value, due_at=due_at, claimed_by=None,
                    claim_expires_at=None, attempts=Message.attempts - 1))
    return int(conn.execute(stmt).rowcount)


def count_by_status(conn: Connection) -> dict[str, int]:
    """Messages per status (a full scan of ix_messages_status_created's leading column); reads only."""
    rows = conn.execute(select(Message.status, func.count()).group_by(Message.status))
    return {status: int(n) for status, n in rows}
