"""The delivery worker on a real database: claims, outcomes, retries, crashes, rate limits, concurrency."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaign_engine.clock import utc_now
from campaign_engine.delivery.channel import Outgoing, PermanentSendError, Sent, TransientSendError
from campaign_engine.delivery.retry import MAX_ATTEMPTS, backoff, decide, describe, next_attempt
from campaign_engine.delivery.send_rates import TokenBucket
from campaign_engine.delivery.worker import DeliveryWorker
from campaign_engine.settings import PROJECT_ROOT
from campaign_engine.store import claims, runs
from campaign_engine.store.db import make_engine
from campaign_engine.store.models import Message
from campaign_engine.store.outbox import insert_messages

LEASE = dt.timedelta(minutes=5)
WAIT = 60.0  # seconds: an upper bound to wait for a subprocess, never a sleep


# --------------------------------------------------------------------------- helpers

def queue(engine, now: dt.datetime, n: int, *, channel: str = "sms", status: str = "queued",
          due_at: dt.datetime | None = None, prefix: str | None = None) -> list[int]:
    """n messages in the outbox (with the run they belong to); their ids in order."""
    prefix = prefix or f"{channel}-{status}-{(due_at or now).isoformat()}"
    with engine.begin() as conn:
        run_id = runs.insert_run(conn, kind="scheduled", run_date=now.date(), dry_run=False, now=now)
        rows = [dict(dedupe_key=f"{prefix}|{i}", run_id=run_id, rule_id="r1", category="marketing", priority=50,
                     customer_id=f"C{i:06d}", subject_type="customer", subject_id=f"C{i:06d}", channel=channel,
                     recipient="13800000000" if channel == "sms" else f"c{i}@example.com", status=status,
                     subject=None if channel == "sms" else "主题", body=f"您好 {i}", created_at=now,
                     due_at=due_at or now) for i in range(n)]
        insert_messages(conn, rows)
        ids = conn.execute(select(Message.id).where(Message.dedupe_key.like(f"{prefix}|%"))
                           .order_by(Message.id)).scalars()
        return list(ids)


def messages(engine, **where: Any) -> list[Message]:
    with Session(engine) as session:
        return list(session.scalars(select(Message).filter_by(**where).order_by(Message.id)))


def statuses(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return claims.count_by_status(conn)


def claim(engine, *, worker: str, now: dt.datetime, limit: int = 100, lease: dt.timedelta = LEASE,
          channels: tuple[str, ...] = ("sms", "email")) -> list[dict[str, Any]]:
    with engine.connect() as conn, claims.write_transaction(conn):
        return claims.claim_due(conn, worker=worker, now=now, limit=limit, lease=lease, channels=channels)


class FakeChannel:
    """A channel under the test's control: records what it sent (and when each send began), fails as
    `fail` says, sleeps `delay`."""

    def __init__(self, provider: str = "fake", *, fail: Callable[[Outgoing], Exception | None] | None = None,
                 delay: float = 0.0, on_send: Callable[[Outgoing], None] | None = None):
        self.provider = provider
        self.fail = fail
        self.delay = delay
        self.on_send = on_send
        self.sent: list[Outgoing] = []
        self.times: list[float] = []
        self.attempts = 0
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Sent:
        with self._lock:
            self.attempts += 1
            started = time.monotonic()
        if self.on_send:
            self.on_send(message)
        if self.delay:
            time.sleep(self.delay)
        error = self.fail(message) if self.fail else None
        if error is not None:
            raise error
        with self._lock:
            self.sent.append(message)
            self.times.append(started)
        return Sent(self.provider, f"{self.provider}-{message.message_id}")

    def close(self) -> None:
        pass

    @property
    def ids(self) -> list[int]:
        return [m.message_id for m in self.sent]


class Clock:
    """A settable clock for the worker."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def run_script(tmp_path: Path, name: str, source: str, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), *args], cwd=PROJECT_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --------------------------------------------------------------------------- retry policy (pure)

def test_backoff_doubles_from_base_up_to_cap():
    delays = [backoff(n, jitter=0).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(10_000, jitter=0) == dt.timedelta(hours=1)


def test_backoff_jitter_shortens_by_at_most_the_spread():
    assert backoff(3, jitter=1) == dt.timedelta(seconds=60)  # half of 120 s with the default spread
    for _ in range(200):
        assert dt.timedelta(seconds=60) <= backoff(3) <= dt.timedelta(seconds=120)
    assert len({backoff(3) for _ in range(20)}) > 1


def test_next_attempt_adds_backoff_to_now(now):
    assert next_attempt(2, now, jitter=0) == now + dt.timedelta(seconds=60)


def test_decide_permanent_fails_at_once():
    assert decide(PermanentSendError("invalid number"), 1) == "fail"


def test_decide_transient_retries_until_max_attempts():
    error = TransientSendError("HTTP 503", provider="gw")
    assert [decide(error, n) for n in range(1, MAX_ATTEMPTS + 1)] == ["retry"] * (MAX_ATTEMPTS - 1) + ["fail"]
    assert decide(ConnectionRefusedError(111, "Connection refused"), 1) == "retry"
    assert describe(error) == "gw: HTTP 503"
    assert describe(TimeoutError()) == "TimeoutError"


# --------------------------------------------------------------------------- store: claims and outcomes

def test_claim_due_returns_due_messages_only(engine, now):
    due = queue(engine, now, 3)
    scheduled_due = queue(engine, now, 2, status="scheduled", due_at=now - dt.timedelta(minutes=1))
    queue(engine, now, 2, due_at=now + dt.timedelta(seconds=1))
    queue(engine, now, 2, status="scheduled", due_at=now + dt.timedelta(hours=1))
    for status in ("sent", "failed", "suppressed", "delivered"):
        queue(engine, now, 1, status=status)
    rows = claim(engine, worker="w1", now=now)
    assert sorted(r["id"] for r in rows) == sorted(due + scheduled_due)
    assert [r["id"] for r in rows[:2]] == scheduled_due  # earliest due first
    assert {r["attempts"] for r in rows} == {1}
    assert rows[0]["dedupe_key"] and rows[0]["body"] and rows[0]["recipient"]
    claimed = messages(engine, status="sending")
    assert {m.claimed_by for m in claimed} == {"w1"}
    assert {m.claim_expires_at for m in claimed} == {now + LEASE}
    assert claim(engine, worker="w2", now=now) == []


def test_claim_due_honours_limit_and_channels(engine, now):
    sms = queue(engine, now, 5)
    email = queue(engine, now, 5, channel="email")
    assert [r["id"] for r in claim(engine, worker="w1", now=now, limit=2, channels=("email",))] == email[:2]
    assert sorted(r["id"] for r in claim(engine, worker="w1", now=now, channels=("sms",))) == sms
    assert claim(engine, worker="w1", now=now, channels=()) == []


def test_claim_due_takes_over_an_expired_claim(engine, now):
    ids = queue(engine, now, 3)
    lease = dt.timedelta(seconds=1)
    assert len(claim(engine, worker="dead", now=now, lease=lease)) == 3
    assert claim(engine, worker="w2", now=now + dt.timedelta(milliseconds=999), lease=lease) == []
    rows = claim(engine, worker="w2", now=now + dt.timedelta(seconds=2), lease=lease)
    assert sorted(r["id"] for r in rows) == ids
    assert {r["attempts"] for r in rows} == {2}
    assert {m.claimed_by for m in messages(engine)} == {"w2"}


def test_mark_sent_stale_worker_cannot_overwrite_after_takeover(engine, now):
    [message_id] = queue(engine, now, 1)
    lease = dt.timedelta(seconds=1)
    claim(engine, worker="slow", now=now, lease=lease)
    claim(engine, worker="fresh", now=now + dt.timedelta(seconds=5), lease=lease)
    with engine.connect() as conn, claims.write_transaction(conn):
        assert not claims.mark_sent(conn, message_id, worker="slow", provider="p", provider_message_id="x",
                                    now=now)
        assert not claims.mark_retry(conn, message_id, worker="slow", due_at=now, error="late")
        assert not claims.mark_failed(conn, message_id, worker="slow", error="late")
        assert claims.release_claims(conn, [message_id], worker="slow", due_at=now) == 0
    [row] = messages(engine)
    assert (row.status, row.claimed_by, row.provider_message_id) == ("sending", "fresh", None)
    with engine.connect() as conn, claims.write_transaction(conn):
        assert claims.mark_sent(conn, message_id, worker="fresh", provider="p", provider_message_id="y",
                                now=now + dt.timedelta(seconds=6))
    [row] = messages(engine)
    assert (row.status, row.claimed_by, row.claim_expires_at, row.provider, row.provider_message_id) == \
        ("sent", None, None, "p", "y")
    assert row.sent_at == now + dt.timedelta(seconds=6)


def test_release_claims_gives_the_attempt_back(engine, now):
    ids = queue(engine, now, 2)
    claim(engine, worker="w", now=now)
    later = now + dt.timedelta(minutes=1)
    with engine.connect() as conn, claims.write_transaction(conn):
        assert claims.release_claims(conn, ids, worker="w", due_at=later) == 2
    assert {(m.status, m.attempts, m.due_at, m.claimed_by) for m in messages(engine)} == {("queued", 0, later, None)}


def test_renew_claims_extends_only_the_live_claims_of_this_worker(engine, now):
    live, done, taken, expired = queue(engine, now, 4)
    short = dt.timedelta(seconds=1)
    claim(engine, worker="w", now=now, limit=2)
    claim(engine, worker="w", now=now, limit=2, lease=short)
    later = now + dt.timedelta(seconds=2)
    assert [r["id"] for r in claim(engine, worker="other", now=later, limit=1)] == [taken]
    with engine.connect() as conn, claims.write_transaction(conn, immediate=False):
        assert claims.mark_sent(conn, done, worker="w", provider="p", provider_message_id=None, now=now)
    with engine.connect() as conn, claims.write_transaction(conn, immediate=False):
        kept = claims.renew_claims(conn, [live, done, taken, expired], worker="w", now=later, lease=LEASE)
        assert claims.renew_claims(conn, [], worker="w", now=later, lease=LEASE) == set()
    assert kept == {live}
    rows = {m.id: m for m in messages(engine)}
    assert (rows[live].status, rows[live].claimed_by, rows[live].claim_expires_at) == ("sending", "w", later + LEASE)
    assert (rows[done].status, rows[done].claim_expires_at) == ("sent", None)
    assert (rows[taken].claimed_by, rows[taken].claim_expires_at) == ("other", later + LEASE)
    assert (rows[expired].claimed_by, rows[expired].claim_expires_at) == ("w", now + short)  # not revived


def test_write_transaction_begins_immediate_on_sqlite(engine, now):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL claims with FOR UPDATE SKIP LOCKED")
    queue(engine, now, 1)
    statements: list[str] = []
    with engine.connect() as conn:
        conn.connection.dbapi_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
        with claims.write_transaction(conn):
            claims.claim_due(conn, worker="w", now=now, limit=5, lease=LEASE, channels=["sms"])
        conn.connection.dbapi_connection.set_trace_callback(None)  # type: ignore[union-attr]
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[1].startswith("UPDATE messages SET status=")
    assert statements[2:] == ["COMMIT"]


CLAIM_LOOP = """
    import datetime as dt, sys, time
    from pathlib import Path
    from campaign_engine.store.db import make_engine
    from campaign_engine.store import claims

    url, name, folder, now = sys.argv[1], sys.argv[2], Path(sys.argv[3]), dt.datetime.fromisoformat(sys.argv[4])
    engine = make_engine(url)
    (folder / f"{name}.ready").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    with engine.connect() as conn, open(folder / f"{name}.ids", "w") as out:
        while True:
            with claims.write_transaction(conn):
                rows = claims.claim_due(conn, worker=name, now=now, limit=7,
                                        lease=dt.timedelta(minutes=5), channels=["sms"])
            if not rows:
                break
            out.write("".join(f"{r['id']}\\n" for r in rows))
            time.sleep(0.005)
"""


def test_claim_due_two_processes_claim_disjoint_sets(engine, database_url, now, tmp_path):
    ids = queue(engine, now, 500)
    procs = [run_script(tmp_path, "claim_loop.py", CLAIM_LOOP, database_url, name, str(tmp_path), now.isoformat())
             for name in ("a", "b")]
    wait_for(lambda: all((tmp_path / f"{n}.ready").exists() for n in "ab"), "both processes")
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
    claimed = {n: [int(x) for x in (tmp_path / f"{n}.ids").read_text().split()] for n in "ab"}
    assert claimed["a"] and claimed["b"]
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == ids
    assert {m.claimed_by for m in messages(engine)} == {"a", "b"}


# --------------------------------------------------------------------------- the worker

def test_delivery_worker_sends_and_records_each_message(engine, now):
    ids = queue(engine, now, 5) + queue(engine, now, 3, channel="email")
    sms, email = FakeChannel("gw"), FakeChannel("mail")
    worker = DeliveryWorker(engine, {"sms": sms, "email": email}, worker_id="w", clock=Clock(now))
    counts = worker.run_once()
    worker.close()
    assert counts == {"claimed": 8, "sent": 8, "retried": 0, "failed": 0, "released": 0, "held_back": 0,
                      "stale": 0}
    assert sorted(sms.ids + email.ids) == ids
    first = sms.sent[0]
    [row] = messages(engine, id=first.message_id)
    assert first.idempotency_key == row.dedupe_key and first.body == row.body and first.recipient == row.recipient
    assert email.sent[0].subject == "主题"
    assert {(m.status, m.attempts, m.claimed_by, m.sent_at) for m in messages(engine)} == {("sent", 1, None, now)}
    assert {(m.provider, m.provider_message_id) for m in messages(engine, id=first.message_id)} == \
        {("gw", f"gw-{first.message_id}")}
    assert worker.run_once()["claimed"] == 0


def test_delivery_worker_two_workers_send_every_message_exactly_once(engine, database_url, now):
    ids = queue(engine, now, 500)
    channel = FakeChannel("gw", delay=0.001)
    engines = [make_engine(database_url) for _ in range(2)]
    workers = [DeliveryWorker(e, {"sms": channel}, worker_id=f"w{i}", batch_size=25) for i, e in enumerate(engines)]
    totals: list[dict[str, int]] = []
    threads = [threading.Thread(target=lambda w=w: totals.append(w.run_until_idle())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    for e in engines:
        e.dispose()
    sends = Counter(channel.ids)
    assert sorted(sends) == ids
    assert max(sends.values()) == 1
    assert sum(t["sent"] for t in totals) == 500 and all(t["sent"] > 0 for t in totals)
    assert statuses(engine) == {"sent": 500}


KILLED_WORKER = """
    import datetime as dt, sys, time
    from campaign_engine.delivery.channel import PermanentSendError, Sent, TransientSendError
    from campaign_engine.delivery.worker import DeliveryWorker
    from campaign_engine.store.db import make_engine

    url, log_path = sys.argv[1], sys.argv[2]

    class SlowGateway:
        # Has each message from the moment it logs it; then refuses some for good, some for now.
        provider = "gw"

        def __init__(self):
            self.log = open(log_path, "a", buffering=1)

        def send(self, message):
            time.sleep(0.005)
            self.log.write(f"{message.message_id}\\n")  # the gateway has it from here on
            if message.message_id % 5 == 2:
                raise PermanentSendError("invalid number", provider="gw")
            if message.message_id % 7 == 3:
                raise TransientSendError("HTTP 503", provider="gw")
            return Sent("gw", f"gw-{message.message_id}")

        def close(self):
            pass

    worker = DeliveryWorker(make_engine(url), {"sms": SlowGateway()}, worker_id="doomed", batch_size=40,
                            lease=dt.timedelta(seconds=1), pause_after=1000)
    worker.run_until_idle()
"""


def test_delivery_worker_killed_mid_batch_leaves_at_most_the_one_in_flight_unrecorded(
        engine, database_url, now, tmp_path):
    ids = queue(engine, now, 300)
    log_path = tmp_path / "sent_by_doomed.txt"
    proc = run_script(tmp_path, "doomed.py", KILLED_WORKER, database_url, str(log_path))

    def lines() -> list[str]:
        return log_path.read_text().splitlines(keepends=True) if log_path.exists() else []

    wait_for(lambda: len(lines()) >= 60 or proc.poll() is not None, "the doomed worker to send some")
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL, err
    first = [int(line) for line in lines() if line.endswith("\n")]
    assert 60 <= len(first) < 300 and len(set(first)) == len(first)
    at_kill = {m.id: m for m in messages(engine)}
    assert {m.claimed_by for m in at_kill.values() if m.status == "sending"} <= {"doomed"}
    # Every message the gateway answered is recorded, whatever the answer; at most the one in flight is not.
    unrecorded = {i for i in first if at_kill[i].status == "sending"}
    assert len(unrecorded) <= 1
    for i in set(first) - unrecorded:
        expected = "failed" if i % 5 == 2 else "queued" if i % 7 == 3 else "sent"
        assert (i, at_kill[i].status, at_kill[i].attempts) == (i, expected, 1)
    assert {at_kill[i].error for i in first if i % 5 == 2 and i not in unrecorded} == {"gw: invalid number"}
    retried = [at_kill[i] for i in first if at_kill[i].status == "queued"]
    assert retried and all(m.due_at > now and m.error == "gw: HTTP 503" for m in retried)

    # An hour later (the retries due, the dead worker's claims long expired) another worker sends the rest.
    channel = FakeChannel("gw")
    later = utc_now() + dt.timedelta(hours=1)
    DeliveryWorker(engine, {"sms": channel}, worker_id="heir", batch_size=40,
                   clock=lambda: later).run_until_idle()
    second = channel.ids
    assert len(set(second)) == len(second)
    assert set(second) == {i for i, m in at_kill.items() if m.status in ("queued", "sending")}
    # Sent again: the retries, and at most the one in flight; a recorded refusal never.
    assert {i for i in set(first) & set(second) if at_kill[i].status != "queued"} == unrecorded
    refused = {i for i in first if i % 5 == 2}
    assert refused & set(second) <= unrecorded
    assert {m.id for m in messages(engine, status="failed")} == refused - unrecorded
    assert statuses(engine) == {"sent": len(ids) - len(refused - unrecorded), "failed": len(refused - unrecorded)}


def test_delivery_worker_retries_transient_failure_with_backoff_then_fails(engine, now):
    [message_id] = queue(engine, now, 1)
    channel = FakeChannel("gw", fail=lambda m: TransientSendError("HTTP 503", provider="gw"))
    clock = Clock(now)
    worker = DeliveryWorker(engine, {"sms": channel}, worker_id="w", clock=clock, pause_after=100)
    for attempt in range(1, MAX_ATTEMPTS):
        assert worker.run_once()["retried"] == 1
        [row] = messages(engine)
        assert (row.status, row.attempts, row.claimed_by, row.error) == ("queued", attempt, None, "gw: HTTP 503")
        full = backoff(attempt, jitter=0)
        assert clock.now + full / 2 <= row.due_at <= clock.now + full
        assert worker.run_once()["claimed"] == 0  # not due before its backoff
        clock.now = row.due_at
    assert worker.run_once()["failed"] == 1
    [row] = messages(engine)
    assert (row.id, row.status, row.attempts, row.claimed_by) == (message_id, "failed", MAX_ATTEMPTS, None)
    assert row.error == f"gave up after {MAX_ATTEMPTS} attempts: gw: HTTP 503"
    assert channel.attempts == MAX_ATTEMPTS
    clock.now += dt.timedelta(days=1)
    assert worker.run_once()["claimed"] == 0


def test_delivery_worker_permanent_failure_fails_at_once(engine, now):
    queue(engine, now, 2)
    bad = PermanentSendError("invalid number", provider="gw")
    channel = FakeChannel("gw", fail=lambda m: bad if m.body.endswith(" 0") else None)
    counts = DeliveryWorker(engine, {"sms": channel}, clock=Clock(now)).run_once()
    assert (counts["failed"], counts["sent"]) == (1, 1)
    failed = messages(engine, status="failed")
    assert [(m.attempts, m.error, m.due_at) for m in failed] == [(1, "gw: invalid number", now)]


def test_delivery_worker_failure_of_one_message_does_not_stop_the_batch(engine, now):
    queue(engine, now, 10)
    channel = FakeChannel("gw", fail=lambda m: RuntimeError("bug") if m.body.endswith(" 3") else None)
    counts = DeliveryWorker(engine, {"sms": channel}, clock=Clock(now)).run_once()
    assert (counts["sent"], counts["retried"]) == (9, 1)
    assert [m.error for m in messages(engine, status="queued")] == ["RuntimeError: bug"]


def test_delivery_worker_down_channel_does_not_block_the_other_channel(engine, now):
    sms_ids = queue(engine, now, 20)
    email_ids = queue(engine, now, 20, channel="email")
    down = FakeChannel("gw", fail=lambda m: TransientSendError("connection refused", provider="gw"))
    email = FakeChannel("mail")
    clock = Clock(now)
    worker = DeliveryWorker(engine, {"sms": down, "email": email}, clock=clock, batch_size=100, pause_after=5,
                            pause=dt.timedelta(seconds=30))
    counts = worker.run_once()
    worker.close()
    assert sorted(email.ids) == email_ids
    assert (counts["sent"], counts["retried"], counts["released"]) == (20, 5, 15)
    assert down.attempts == 5
    retried = [m for m in messages(engine, channel="sms") if m.attempts == 1]
    released = [m for m in messages(engine, channel="sms") if m.attempts == 0]
    assert [m.id for m in retried] == sms_ids[:5] and {m.error for m in retried} == {"gw: connection refused"}
    assert {(m.status, m.due_at, m.claimed_by) for m in released} == {("queued", now + dt.timedelta(seconds=30), None)}
    # Paused: the next passes do not claim sms; more email goes out meanwhile.
    more_email = queue(engine, now, 5, channel="email", prefix="more")
    assert worker.active_channels(now) == ["email"]
    assert worker.run_once()["sent"] == 5 and sorted(email.ids) == email_ids + more_email
    assert down.attempts == 5
    # After the pause the channel is tried again; still down, it is paused for twice as long.
    clock.now = now + dt.timedelta(seconds=30)
    counts = worker.run_once()  # the 15 released, and those of the 5 retried whose backoff is over
    assert counts["retried"] == 5 and counts["released"] == counts["claimed"] - 5 >= 10
    assert down.attempts == 10
    assert worker.active_channels(clock.now) == ["email"]
    assert worker.active_channels(clock.now + dt.timedelta(seconds=60)) == ["sms", "email"]


def test_delivery_worker_slow_channel_does_not_delay_the_other(engine, now):
    queue(engine, now, 10)
    queue(engine, now, 50, channel="email")
    slow, email = FakeChannel("gw", delay=0.15), FakeChannel("mail")
    worker = DeliveryWorker(engine, {"sms": slow, "email": email}, clock=Clock(now))
    assert worker.run_once()["sent"] == 60
    worker.close()
    assert email.times[-1] < slow.times[4]  # all email out before half the slow channel's share


def test_delivery_worker_rate_limit_holds(engine, now):
    queue(engine, now, 100)
    channel = FakeChannel("gw")
    worker = DeliveryWorker(engine, {"sms": channel}, rates={"sms": 50}, batch_size=60)
    started = time.monotonic()
    assert worker.run_until_idle()["sent"] == 100
    assert time.monotonic() - started >= 99 / 50 - 0.05
    times = channel.times
    # The bucket allows 1 + 50 per second; a little more when the scheduler delays a send after its token.
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 53


def test_token_bucket_spaces_acquisitions():
    clock = [0.0]
    bucket = TokenBucket(10, monotonic=lambda: clock[0])
    assert bucket.acquire()
    stop = threading.Event()
    stop.set()
    assert not bucket.acquire(stop)  # no token yet, and told to stop while waiting
    clock[0] = 0.1
    assert bucket.acquire(stop)


def test_delivery_worker_hands_back_claims_before_its_lease_runs_out(engine, now):
    ids = queue(engine, now, 10)
    clock = Clock(now)

    def slow_send(message: Outgoing) -> None:
        clock.now += dt.timedelta(seconds=10)

    channel = FakeChannel("gw", on_send=slow_send)
    worker = DeliveryWorker(engine, {"sms": channel}, clock=clock, lease=dt.timedelta(seconds=60))
    counts = worker.run_once()  # over in milliseconds: no renewal (every 10 s of real time) comes
    # Deadline without a renewal: the lease (60 s) minus half of it: sends start at 0, 10 and 20 s.
    assert (counts["sent"], counts["released"]) == (3, 7)
    assert channel.ids == ids[:3]
    assert {(m.status, m.attempts, m.claimed_by) for m in messages(engine, status="queued")} == {("queued", 0, None)}


def test_delivery_worker_records_each_outcome_before_the_next_send(engine, now):
    queue(engine, now, 12)
    queue(engine, now, 12, channel="email")
    attempted: dict[str, list[int]] = {"sms": [], "email": []}
    unrecorded: list[tuple[int, list[int]]] = []

    def check_earlier_recorded(message: Outgoing) -> None:
        earlier = list(attempted[message.channel])
        with engine.connect() as conn:
            pending = list(conn.execute(select(Message.id).where(Message.id.in_(earlier),
                                                                  Message.status == "sending")).scalars())
        if pending:
            unrecorded.append((message.message_id, pending))
        attempted[message.channel].append(message.message_id)

    def answer(message: Outgoing) -> Exception | None:
        return [None, PermanentSendError("invalid number", provider="gw"),
                TransientSendError("HTTP 503", provider="gw")][message.message_id % 3]

    sms = FakeChannel("gw", fail=answer, on_send=check_earlier_recorded)
    email = FakeChannel("mail", fail=answer, on_send=check_earlier_recorded)
    worker = DeliveryWorker(engine, {"sms": sms, "email": email}, clock=Clock(now), pause_after=100)
    counts = worker.run_once()
    worker.close()
    assert unrecorded == []
    assert (counts["sent"], counts["failed"], counts["retried"]) == (8, 8, 8)
    assert statuses(engine) == {"sent": 8, "failed": 8, "queued": 8}


def test_delivery_worker_slow_channel_keeps_its_claims_past_the_lease(engine):
    lease, heartbeat = dt.timedelta(seconds=3), dt.timedelta(seconds=0.5)
    ids = queue(engine, utc_now(), 16)
    sending, stop = threading.Event(), threading.Event()
    rival_claimed: list[int] = []

    def rival() -> None:  # another worker claiming all the while
        sending.wait(WAIT)
        while not stop.is_set():
            rival_claimed.extend(r["id"] for r in claim(engine, worker="rival", now=utc_now(), lease=lease))
            time.sleep(0.05)

    channel = FakeChannel("gw", delay=0.25, on_send=lambda m: sending.set())
    worker = DeliveryWorker(engine, {"sms": channel}, worker_id="slow", lease=lease, heartbeat=heartbeat)
    thread = threading.Thread(target=rival)
    thread.start()
    began = time.monotonic()
    try:
        counts = worker.run_once()
    finally:
        stop.set()
        thread.join(WAIT)
        worker.close()
    assert time.monotonic() - began > 1.2 * lease.total_seconds()  # 16 sends of 0.25 s: 4 s
    assert (counts["sent"], counts["released"], counts["stale"]) == (16, 0, 0)
    assert channel.ids == ids
    assert rival_claimed == []
    assert statuses(engine) == {"sent": 16}


#: A database that refuses every claim renewal (an UPDATE keeping a row `sending` and changing its
#: expiry) with an error, and lets every other write through: a worker that cannot renew.
REFUSE_RENEWALS = {
    "sqlite": ["CREATE TRIGGER refuse_renewal BEFORE UPDATE OF claim_expires_at ON messages "
               "WHEN OLD.status = 'sending' AND NEW.status = 'sending' "
               "BEGIN SELECT RAISE(ABORT, 'renewal refused'); END"],
    "postgresql": ["CREATE FUNCTION refuse_renewal() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'renewal refused'; END $$",
                   "CREATE TRIGGER refuse_renewal BEFORE UPDATE OF claim_expires_at ON messages FOR EACH ROW "
                   "WHEN (OLD.status = 'sending' AND NEW.status = 'sending') EXECUTE FUNCTION refuse_renewal()"],
}
ALLOW_RENEWALS = {
    "sqlite": ["DROP TRIGGER refuse_renewal"],
    "postgresql": ["DROP TRIGGER refuse_renewal ON messages", "DROP FUNCTION refuse_renewal()"],
}


@contextlib.contextmanager
def renewals_refused(engine) -> Iterator[None]:
    with engine.begin() as conn:
        for statement in REFUSE_RENEWALS[engine.dialect.name]:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in ALLOW_RENEWALS[engine.dialect.name]:
                conn.exec_driver_sql(statement)


def test_delivery_worker_that_cannot_renew_stops_sending_before_its_lease_ends(engine, caplog):
    lease, heartbeat, delay = dt.timedelta(seconds=2), dt.timedelta(seconds=0.25), 0.1
    queue(engine, utc_now(), 40)
    channel = FakeChannel("gw", delay=delay)
    worker = DeliveryWorker(engine, {"sms": channel}, worker_id="w", lease=lease, heartbeat=heartbeat)
    with renewals_refused(engine), caplog.at_level(logging.WARNING, logger="campaign_engine.delivery.worker"):
        began = time.monotonic()
        counts = worker.run_once()
    worker.close()
    assert "could not renew its claims" in caplog.text and "renewal refused" in caplog.text
    # Half the lease without a renewal: sending stops (about 10 sends of 0.1 s); the rest goes back.
    assert 0 < counts["sent"] < 40 and counts["released"] == 40 - counts["sent"]
    assert channel.times[-1] + delay - began < lease.total_seconds()  # the last send ended in time
    assert statuses(engine) == {"sent": counts["sent"], "queued": counts["released"]}
    assert {(m.attempts, m.claimed_by) for m in messages(engine, status="queued")} == {(0, None)}


def test_delivery_worker_outcome_after_takeover_is_stale(engine, now):
    queue(engine, now, 1)

    def taken_over(message: Outgoing) -> None:
        claim(engine, worker="other", now=now + dt.timedelta(minutes=10))

    worker = DeliveryWorker(engine, {"sms": FakeChannel("gw", on_send=taken_over)}, worker_id="w", clock=Clock(now))
    counts = worker.run_once()
    assert (counts["sent"], counts["stale"]) == (0, 1)
    [row] = messages(engine)
    assert (row.status, row.claimed_by, row.attempts) == ("sending", "other", 2)


def test_delivery_worker_fails_a_message_claimed_too_often_without_an_outcome(engine, now):
    queue(engine, now, 1)
    with engine.begin() as conn:
        conn.execute(update(Message).values(attempts=MAX_ATTEMPTS))
    channel = FakeChannel("gw")
    assert DeliveryWorker(engine, {"sms": channel}, clock=Clock(now)).run_once()["failed"] == 1
    assert channel.attempts == 0
    [row] = messages(engine)
    assert row.status == "failed" and row.error.startswith(f"gave up after {MAX_ATTEMPTS} attempts without")


def test_delivery_worker_before_send_hook_sees_the_claimed_rows(engine, now):
    ids = queue(engine, now, 4)
    seen: list[list[int]] = []

    def before_send(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append([r["id"] for r in rows])
        held = [r["id"] for r in rows if r["customer_id"] == "C000001"]
        with engine.connect() as conn, claims.write_transaction(conn):  # e.g. a quiet-hours reschedule
            claims.release_claims(conn, held, worker="w", due_at=now + dt.timedelta(hours=8))
        return [r for r in rows if r["id"] not in held]

    channel = FakeChannel("gw")
    counts = DeliveryWorker(engine, {"sms": channel}, worker_id="w", clock=Clock(now),
                            before_send=before_send).run_once()
    assert seen == [ids]
    assert (counts["sent"], counts["held_back"]) == (3, 1)
    assert [m.id for m in messages(engine, status="queued")] == [ids[1]]


def test_delivery_worker_before_send_failure_hands_the_claims_back(engine, now):
    queue(engine, now, 3)

    def broken(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise RuntimeError("policy store unreachable")

    worker = DeliveryWorker(engine, {"sms": FakeChannel("gw")}, clock=Clock(now), before_send=broken)
    with pytest.raises(RuntimeError):
        worker.run_once()
    assert {(m.status, m.attempts, m.claimed_by) for m in messages(engine)} == {("queued", 0, None)}


def test_delivery_worker_passes_the_unsubscribe_url(engine, now):
    queue(engine, now, 2, channel="email")
    channel = FakeChannel("mail")
    DeliveryWorker(engine, {"email": channel}, clock=Clock(now),
                   unsubscribe_url=lambda row: f"https://bank.example/u/{row['customer_id']}").run_once()
    assert [m.unsubscribe_url for m in channel.sent] == ["https://bank.example/u/C000000",
                                                         "https://bank.example/u/C000001"]


def test_delivery_worker_stop_event_hands_back_unsent_claims(engine, now):
    queue(engine, now, 50)
    stop = threading.Event()
    channel = FakeChannel("gw", on_send=lambda m: stop.set() if len(channel.sent) >= 9 else None)
    worker = DeliveryWorker(engine, {"sms": channel}, clock=Clock(now))
    totals = worker.run_forever(stop, idle_sleep=0.01)
    assert (totals["sent"], totals["released"]) == (10, 40)
    assert statuses(engine) == {"sent": 10, "queued": 40}


def test_delivery_worker_drains_through_the_file_channel(engine, now, tmp_path):
    file_channel = pytest.importorskip("campaign_engine.delivery.channels.file")
    import json

    ids = queue(engine, now, 30)
    channel = file_channel.FileChannel(tmp_path / "sms.jsonl")
    counts = DeliveryWorker(engine, {"sms": channel}, clock=Clock(now), batch_size=8).run_until_idle()
    channel.close()
    assert counts["sent"] == 30
    lines = [json.loads(line) for line in (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["message_id"] for line in lines] == ids
    assert {m.provider for m in messages(engine)} == {"file"}
    assert [line["idempotency_key"] for line in lines] == [m.dedupe_key for m in messages(engine)]
