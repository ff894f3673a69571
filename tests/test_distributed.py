"""Runs and delivery on real Celery workers (`campaign-engine worker` processes) over the local
Redis broker: a sharded run writes exactly what an in-process run writes, a worker killed
mid-shard loses and duplicates nothing, and workers drain the outbox.

Skipped, with the reason shown, when Redis does not answer (CAMPAIGN_ENGINE_TEST_REDIS_URL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from campaign_engine.bootstrap import open_services
from campaign_engine.demo.loader import load_demo_data
from campaign_engine.events import parse_event
from campaign_engine.pipeline import EventRunRequest, ScheduledRunRequest, start_run, wait_for_run
from campaign_engine.store.models import Message, RunShard
from campaign_engine.vocabulary import EventType
from factories import NOW, TODAY, fire_event, run_day, publish_rules
from test_shards import RATE_CHANGE, counts, forget_runs, snapshot

REDIS_URL = os.environ.get("CAMPAIGN_ENGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def decided(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Snapshot rows without their delivery status: the workers start sending once a run closes."""
    return [row[:6] + row[7:] for row in rows]


def _redis_answers() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        return f"Redis does not answer at {REDIS_URL} ({exc}): the Celery tests need a broker"
    return None


_why_not = _redis_answers()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


class Worker:
    """One `campaign-engine worker` process group, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int):
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "campaign_engine.cli", "worker", f"--concurrency={concurrency}"],
            env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool): no chance to hand anything back."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()


@pytest.fixture
def cluster(settings, engine, tmp_path):
    """Settings with a broker on a queue of this test's own, and a way to start workers on it."""
    queue = f"ce-test-{uuid.uuid4().hex[:12]}"
    outbox = tmp_path / "outbox"
    channels = {"sms": {"type": "file", "path": str(outbox / "sms.jsonl")},
                "email": {"type": "file", "path": str(outbox / "email.jsonl")}}
    overrides = {"database_url": settings.database_url, "celery_broker_url": REDIS_URL,
                 "celery_queue": queue, "celery_visibility_timeout": "6", "channels": json.dumps(channels),
                 "quiet_hours": "{}", "send_rates": "{}"}
    env = {**os.environ, **{f"CAMPAIGN_ENGINE_{k.upper()}": v for k, v in overrides.items()}}
    workers: list[Worker] = []

    def start(concurrency: int = 2, **extra: str) -> Worker:
        worker_env = {**env, **{f"CAMPAIGN_ENGINE_{k.upper()}": v for k, v in extra.items()}}
        worker = Worker(worker_env, tmp_path / f"worker{len(workers)}.log", concurrency)
        workers.append(worker)
        worker.wait_ready()
        return worker

    publish_rules(settings)  # the starter pack, as published: workers run the versions each run records
    cluster_settings = settings.replace(celery_broker_url=REDIS_URL, celery_queue=queue,
                                        celery_visibility_timeout=6, channels=channels, quiet_hours={},
                                        send_rates={})
    yield cluster_settings, start, outbox
    for worker in workers:
        worker.stop()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(queue)
    for key in client.scan_iter("campaign-engine:deliver:slot:*"):
        client.delete(key)


def test_sharded_run_on_workers_writes_exactly_what_an_in_process_run_writes(cluster, settings, engine):
    cluster_settings, start, _ = cluster
    load_demo_data(engine, 3000, seed=7, today=TODAY, now=NOW)
    local = open_services(settings)
    try:
        here_day = run_day(local, today=TODAY, now=NOW)
        here_event = fire_event(local, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    finally:
        local.close()
    expected = snapshot(engine)
    forget_runs(engine)

    start(concurrency=2, shard_size="400")
    start(concurrency=1, shard_size="400")
    services = open_services(cluster_settings.replace(shard_size=400))
    try:
        assert services.executor.name == "celery"
        day = start_run(services, ScheduledRunRequest(TODAY), now=NOW, timeout=120).as_dict()
        event = start_run(services, EventRunRequest(parse_event(EventType.RATE_CHANGE, RATE_CHANGE)), now=NOW,
                          timeout=120).as_dict()
    finally:
        services.close()
    assert day["status"] == event["status"] == "completed"
    assert event["shards"] == {"total": 8, "pending": 0, "running": 0, "completed": 8, "failed": 0}
    assert decided(snapshot(engine)) == decided(expected)
    assert counts(day) == counts(here_day) and counts(event) == counts(here_event)
    with engine.connect() as conn:
        workers = set(conn.execute(select(RunShard.worker)).scalars())
    assert len(workers) >= 2  # the shards really were spread over processes


def test_worker_killed_mid_shard_loses_and_duplicates_nothing(cluster, settings, engine):
    cluster_settings, start, _ = cluster
    load_demo_data(engine, 4000, seed=11, today=TODAY, now=NOW)
    local = open_services(settings)
    try:
        reference = fire_event(local, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    finally:
        local.close()
    expected = snapshot(engine)
    forget_runs(engine)

    # small batches: the one shard writes its messages over a few seconds
    doomed = start(concurrency=1, shard_size="100000", batch_size="10")
    services = open_services(cluster_settings.replace(shard_size=100000))
    try:
        accepted = start_run(services, EventRunRequest(parse_event(EventType.RATE_CHANGE, RATE_CHANGE)), now=NOW,
                             wait=False)
        assert (accepted.status.value, accepted.shards.total, accepted.rules) == ("running", 1, ())
        deadline = time.monotonic() + 60
        while True:  # kill it once some, not all, of the shard's messages are written
            with engine.connect() as conn:
                written = conn.execute(select(func.count()).select_from(Message)).scalar_one()
            if written > 0:
                break
            assert time.monotonic() < deadline, doomed.log.read_text()
            time.sleep(0.02)
        doomed.kill()
        assert 0 < written < len(expected)
        with engine.connect() as conn:
            assert conn.execute(select(RunShard.status)).scalar_one() == "running"

        start(concurrency=1)  # takes the abandoned task once the visibility timeout passes
        report = wait_for_run(services, accepted.run_id, timeout=120).as_dict()
    finally:
        services.close()
    assert report["status"] == "completed"
    assert decided(snapshot(engine)) == decided(expected)  # nothing lost, nothing twice
    assert counts(report) == counts(reference)
    with engine.connect() as conn:
        assert conn.execute(select(RunShard.attempts)).scalar_one() == 2


def test_workers_drain_the_outbox_after_the_run(cluster, engine):
    cluster_settings, start, outbox = cluster
    load_demo_data(engine, 1500, seed=3, today=TODAY, now=NOW)
    start(concurrency=2, shard_size="500")
    services = open_services(cluster_settings.replace(shard_size=500))
    try:
        report = start_run(services, EventRunRequest(parse_event(EventType.RATE_CHANGE, RATE_CHANGE)), now=NOW,
                           timeout=120).as_dict()
        queued = sum(r["queued"] for r in report["rules"])
        assert queued > 0
        deadline = time.monotonic() + 60
        while True:  # the shard that closed the run kicked delivery
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).select_from(Message)
                                    .where(Message.status.in_(["queued", "sending"]))).scalar_one()
            if left == 0:
                break
            assert time.monotonic() < deadline, f"{left} not sent yet"
            time.sleep(0.2)
    finally:
        services.close()
    sent = [json.loads(line) for part in ("sms", "email") if (outbox / f"{part}.jsonl").exists()
            for line in (outbox / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()]
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Message.status, func.count()).group_by(Message.status)).all())
    assert statuses == {"sent": queued}
    assert len(sent) == queued and len({m["message_id"] for m in sent}) == queued


def test_api_event_is_answered_at_once_and_executed_by_the_workers(cluster, engine):
    from campaign_engine.api import create_app
    from campaign_engine.store import apikeys

    cluster_settings, start, _ = cluster
    load_demo_data(engine, 1200, seed=5, today=TODAY, now=NOW)
    with engine.begin() as conn:
        _, key = apikeys.create_key(conn, name="core-banking", role="operator", now=NOW)
    start(concurrency=2, shard_size="300")
    app = create_app(cluster_settings.replace(shard_size=300), clock=lambda: NOW)
    client = app.test_client()
    services = open_services(cluster_settings)
    try:
        resp = client.post("/api/v1/events/rate-change", json=RATE_CHANGE,
                           headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 202, resp.get_json()
        run_id = resp.get_json()["run_id"]
        assert app.extensions["campaign"].runtime.services.executor.name == "celery"  # nothing runs here
        report = wait_for_run(services, run_id, timeout=120).as_dict()
        body = client.get(f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}).get_json()
    finally:
        services.close()
        app.extensions["campaign"].runtime.close()
    assert report["status"] == "completed" and report["shards"]["total"] == 4
    assert body["shards"] == report["shards"] and body["rules"][0]["queued"] > 0
