"""A delivery worker killed with SIGKILL mid-batch: its claims are taken over within about a lease,
nothing is lost, and nothing is sent twice but the one message in flight per channel.

Real components throughout: `campaign-engine send` processes, the local SMS gateway process
(tests/gateway_server.py) and a local SMTP server (aiosmtpd), on SQLite and on PostgreSQL
(CAMPAIGN_ENGINE_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign_engine.clock import utc_now
from campaign_engine.delivery.factory import build_delivery_worker
from campaign_engine.errors import ConfigError
from campaign_engine.settings import PROJECT_ROOT, load_settings
from campaign_engine.store import runs
from campaign_engine.store.models import Message
from campaign_engine.store.outbox import insert_messages
from test_delivery_channels import RecordingHandler, free_port, start_gateway

WAIT = 60.0  # seconds: an upper bound to wait for a process or a state, never a sleep
LEASE, HEARTBEAT = 10, 1  # seconds, the workers' settings in this test
SLOW_SECONDS = 2.0  # the gateway's answer to a number ending in 7 takes this long

# The outbox, in claim order: SMS (even positions) and email (odd) alternate; the killed worker
# claims 100 at a time. In its second batch (100-199) it is killed while an email is held by the
# SMTP server (111) and the last SMS of the batch (198) waits for the gateway's slow answer: both
# were received by their peers, neither answer was recorded. Some refusals come just before them.
MESSAGES, BATCH = 400, 100
SLOW_SMS, HELD_EMAIL = 198, 111
REFUSED_SMS = {20, 60, 120, 160, 196}  # the gateway answers 400 INVALID_MOBILE (number ending in 5)
REFUSED_EMAIL = {31, 71, 103, 109}  # the SMTP server answers RCPT with 550


# --------------------------------------------------------------------------- peers

@dataclass
class HoldingHandler(RecordingHandler):
    """Records what it receives; refuses `refuse-*` recipients (550); the first message to a `hold-*`
    recipient is received, then its answer is held until `release` is set."""

    refused: list[str] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _held: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refuse-"):
            self.refused.append(address)
            return "550 5.1.1 mailbox unavailable"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        [address] = envelope.rcpt_tos
        if address.startswith("hold-") and address not in self._held:
            self._held.add(address)
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return answer


@pytest.fixture
def smtp() -> Iterator[tuple[HoldingHandler, int]]:
    handler = HoldingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=WAIT)
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


@pytest.fixture
def gateway(tmp_path: Path):
    gateway = start_gateway(tmp_path, "--slow-seconds", str(SLOW_SECONDS))
    yield gateway
    gateway.stop()


class SendProcess:
    """One `campaign-engine send` process (its own process group), its output in a file."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "campaign_engine.cli", "-v", "send",
                                         "--batch-size", str(BATCH)], cwd=PROJECT_ROOT, env=env,
                                        stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process group: no chance to record or hand back anything."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=WAIT)

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()
        return self.process.returncode


@pytest.fixture
def senders(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], SendProcess]]:
    started: list[SendProcess] = []

    def start(env: dict[str, str]) -> SendProcess:
        started.append(SendProcess(env, tmp_path / f"send{len(started)}.log"))
        return started[-1]

    yield start
    for process in started:
        process.stop()


# --------------------------------------------------------------------------- helpers

def recipient(i: int) -> str:
    if i % 2 == 0:
        return "13800000007" if i == SLOW_SMS else "13800000005" if i in REFUSED_SMS else "13800000000"
    if i == HELD_EMAIL:
        return f"hold-{i}@example.com"
    return f"refuse-{i}@example.com" if i in REFUSED_EMAIL else f"c{i}@example.com"


def queue_outbox(engine, now: dt.datetime) -> list[int]:
    """MESSAGES service messages due now, SMS and email alternating; their ids by position."""
    with engine.begin() as conn:
        run_id = runs.insert_run(conn, kind="scheduled", run_date=now.date(), dry_run=False, now=now)
        insert_messages(conn, [dict(
            dedupe_key=f"takeover|{i:04d}", run_id=run_id, rule_id="notice", category="service", priority=50,
            customer_id=f"C{i:06d}", subject_type="customer", subject_id=f"C{i:06d}",
            channel="sms" if i % 2 == 0 else "email", recipient=recipient(i), status="queued",
            subject=None if i % 2 == 0 else "到期提醒", body=f"【XX银行】您的定期存款即将到期 {i}",
            created_at=now, due_at=now) for i in range(MESSAGES)])
        ids = list(conn.execute(select(Message.id).order_by(Message.dedupe_key)).scalars())
    assert ids == sorted(ids)  # claim order (due_at, id) is position order
    return ids


def outbox(engine, ids: list[int]) -> dict[int, Message]:
    """The messages by position."""
    position = {message_id: i for i, message_id in enumerate(ids)}
    with Session(engine) as session:
        return {position[m.id]: m for m in session.scalars(select(Message))}


def wait_for(predicate: Callable[[], bool], what: str, *, every: float = 0.01) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- the test

def test_killed_send_process_claims_taken_over_within_a_lease_without_double_sends(
        engine, database_url, gateway, smtp, senders, capsys):
    handler, smtp_port = smtp
    ids = queue_outbox(engine, utc_now())
    channels = {"sms": {"type": "http_sms", "url": gateway.url, "timeout": 4},
                "email": {"type": "smtp", "host": "127.0.0.1", "port": smtp_port, "security": "none",
                          "from_address": "service@bank.example", "timeout": 4}}
    settings = {"database_url": database_url, "channels": json.dumps(channels), "send_rates": "{}",
                "quiet_hours": "{}", "redis_url": "", "celery_broker_url": "",
                "delivery_lease": str(LEASE), "delivery_heartbeat": str(HEARTBEAT)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_ENGINE_")}
    env.update({f"CAMPAIGN_ENGINE_{k.upper()}": v for k, v in settings.items()})
    slow_key = f"takeover|{SLOW_SMS:04d}"

    doomed = senders(env)
    wait_for(lambda: doomed.process.poll() is not None or (
        handler.holding.is_set() and any(r["idempotency_key"] == slow_key for r in gateway.sent()["accepted"])),
        "the first worker to have the slow SMS and the held email in flight")
    assert doomed.process.poll() is None, doomed.output()
    doomed.kill()
    killed_at = time.monotonic()

    # At the kill: every answer the peers gave is recorded; unrecorded are the two messages in flight
    # and the rest of the batch, which was never started.
    at_kill = outbox(engine, ids)
    left_claimed = {i for i, m in at_kill.items() if m.status == "sending"}
    assert left_claimed == {SLOW_SMS} | set(range(HELD_EMAIL, 2 * BATCH, 2)), doomed.output()
    [doomed_id] = {at_kill[i].claimed_by for i in left_claimed}
    assert {(at_kill[i].status, at_kill[i].attempts) for i in REFUSED_SMS | REFUSED_EMAIL} == {("failed", 1)}
    assert {at_kill[i].status for i in range(2 * BATCH) if i not in left_claimed | REFUSED_SMS | REFUSED_EMAIL} \
        == {"sent"}
    handler.release.set()

    heir = senders(env)
    taken_over_at: float | None = None

    def claims_settled() -> bool:
        nonlocal taken_over_at
        now = outbox(engine, ids)
        if taken_over_at is None and any(now[i].claimed_by != doomed_id for i in left_claimed):
            taken_over_at = time.monotonic()
        return all(now[i].status in ("sent", "failed") for i in left_claimed)

    wait_for(claims_settled, "the killed worker's claims to be sent by the other", every=0.05)
    settled_at = time.monotonic()
    wait_for(lambda: set(Counter(m.status for m in outbox(engine, ids).values())) <= {"sent", "failed"},
             "the outbox to settle", every=0.05)
    assert heir.stop() == 0, heir.output()
    assert taken_over_at is not None
    taken_over, settled = taken_over_at - killed_at, settled_at - killed_at
    with capsys.disabled():
        print(f"\n[{engine.dialect.name}] lease {LEASE} s, heartbeat {HEARTBEAT} s: the killed worker's "
              f"{len(left_claimed)} claims taken over {taken_over:.1f} s after the kill, all sent "
              f"{settled:.1f} s after it (the slow SMS takes {SLOW_SECONDS:g} s to answer)")
    assert settled <= 60

    # Nothing lost: every message is sent, or failed for its refusal.
    final = outbox(engine, ids)
    refused = REFUSED_SMS | REFUSED_EMAIL
    assert {i for i, m in final.items() if m.status == "failed"} == refused
    assert {i for i, m in final.items() if m.status == "sent"} == set(range(MESSAGES)) - refused
    assert {i for i, m in final.items() if m.attempts == 2} == left_claimed
    # Nothing doubled but the one in flight per channel: the gateway saw one key twice (the slow
    # SMS: answered with its first id), and each refused number once.
    seen = gateway.sent()
    keys = Counter(r["idempotency_key"] for r in seen["accepted"])
    assert set(keys) == {f"takeover|{i:04d}" for i in range(0, MESSAGES, 2) if i not in REFUSED_SMS}
    assert max(keys.values()) == 1 and seen["duplicates"] == 1
    assert seen["requests"] == len(keys) + seen["duplicates"] + len(REFUSED_SMS)
    [first_answer] = [r["message_id"] for r in seen["accepted"] if r["idempotency_key"] == slow_key]
    assert final[SLOW_SMS].provider_message_id == first_answer
    # The SMTP server received one message twice (the held email), and each refused address once.
    mails = Counter(r.message["X-Idempotency-Key"] for r in handler.messages)
    assert {k for k, n in mails.items() if n > 1} == {f"takeover|{HELD_EMAIL:04d}"} and max(mails.values()) == 2
    assert len(mails) == MESSAGES // 2 - len(REFUSED_EMAIL)
    assert Counter(handler.refused) == Counter(recipient(i) for i in REFUSED_EMAIL)


# --------------------------------------------------------------------------- the settings

def test_settings_delivery_lease_and_heartbeat_defaults_and_env():
    defaults = load_settings(env={})
    assert (defaults.delivery_lease, defaults.delivery_heartbeat) == (30, 5)
    chosen = load_settings(env={"CAMPAIGN_ENGINE_DELIVERY_LEASE": "12", "CAMPAIGN_ENGINE_DELIVERY_HEARTBEAT": "4"})
    assert (chosen.delivery_lease, chosen.delivery_heartbeat) == (12, 4)


@pytest.mark.parametrize(("lease", "heartbeat", "field_"), [
    ("30", "11", "delivery_heartbeat"),  # more than a third of the lease
    ("0", "5", "delivery_lease"),
    ("30", "soon", "delivery_heartbeat"),
])
def test_settings_delivery_heartbeat_must_fit_the_lease(lease, heartbeat, field_):
    with pytest.raises(ConfigError) as exc:
        load_settings(env={"CAMPAIGN_ENGINE_DELIVERY_LEASE": lease, "CAMPAIGN_ENGINE_DELIVERY_HEARTBEAT": heartbeat})
    assert [p.field for p in exc.value.problems] == [field_]


def test_build_delivery_worker_holds_claims_for_the_lease_settings(settings, engine):
    delivery = build_delivery_worker(settings.replace(delivery_lease=12, delivery_heartbeat=2), engine,
                                     clock=utc_now)
    try:
        assert (delivery.worker.lease, delivery.worker.heartbeat) == (dt.timedelta(seconds=12),
                                                                      dt.timedelta(seconds=2))
    finally:
        delivery.close()
