"""Send rates shared across worker processes: the Redis token bucket on a real Redis.

Redis is CAMPAIGN_ENGINE_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); the tests
that need it are skipped, with the reason, when it does not answer. Each test uses
keys under a prefix of its own and deletes them afterwards.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from campaign_engine.delivery.channel import Sent
from campaign_engine.delivery.send_rates import (RateLimitUnavailable, RedisTokenBucket, TokenBucket, local_bucket,
                                                 make_bucket, redis_client)
from campaign_engine.delivery.worker import DeliveryWorker
from campaign_engine.settings import PROJECT_ROOT

REDIS_URL = os.environ.get("CAMPAIGN_ENGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis_client(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis does not answer at {REDIS_URL} (CAMPAIGN_ENGINE_TEST_REDIS_URL): {exc}")
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"campaign-engine-test:{uuid.uuid4().hex}:rate:"
    yield prefix
    client = redis_client(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def closed_url() -> str:
    """A Redis URL on a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def count_for(bucket, seconds: float) -> int:
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert bucket.acquire()
        n += 1
    return n


# --------------------------------------------------------------------------- one process

def test_make_bucket_is_local_without_a_redis_url():
    assert isinstance(make_bucket(5), TokenBucket)
    assert isinstance(make_bucket(5, ""), TokenBucket)
    assert isinstance(local_bucket("sms", 5), TokenBucket)
    bucket = make_bucket(5, "redis://127.0.0.1:1/0", channel="sms")  # connects lazily
    assert isinstance(bucket, RedisTokenBucket) and bucket.key == "campaign-engine:rate:sms"
    with pytest.raises(ValueError):
        make_bucket(0, REDIS_URL)


def test_redis_bucket_grants_at_most_burst_plus_rate_times_t(redis_url, prefix):
    rate, burst, seconds = 40, 5, 1.0
    bucket = make_bucket(rate, redis_url, channel="sms", burst=burst, key_prefix=prefix)
    started = time.monotonic()
    n = count_for(bucket, seconds)
    elapsed = time.monotonic() - started  # includes the wait for the last token
    assert n <= burst + rate * elapsed + 1
    assert n >= 0.8 * (burst + rate * seconds)
    # The state is one hash with a TTL, in the server's clock.
    client = redis_client(redis_url)
    assert set(client.hgetall(prefix + "sms")) == {b"tokens", b"ts"}
    assert 0 < client.pttl(prefix + "sms") <= 60_000


def test_redis_bucket_burst_then_spacing(redis_url, prefix):
    bucket = make_bucket(20, redis_url, channel="sms", burst=3, key_prefix=prefix)
    assert [bucket.try_acquire() for _ in range(3)] == [0, 0, 0]  # a full bucket: the burst at once
    wait_ms = bucket.try_acquire()
    assert 1 <= wait_ms <= 50  # then one token per 1/20 s
    time.sleep(wait_ms / 1000)
    assert bucket.try_acquire() == 0


def test_stop_interrupts_a_wait(redis_url, prefix):
    bucket = make_bucket(0.2, redis_url, channel="sms", key_prefix=prefix)  # one token per 5 s
    stop = threading.Event()
    assert bucket.acquire(stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert not bucket.acquire(stop)
    assert time.monotonic() - started < 1.0
    assert not bucket.acquire(stop)  # already stopped: no token taken, no wait


# --------------------------------------------------------------------------- several processes

CHILD = """
import sys, time
from campaign_engine.delivery.send_rates import make_bucket
url, prefix, rate, burst, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
bucket = make_bucket(rate, url or None, channel="sms", burst=burst, key_prefix=prefix)  # no url: a local bucket
if url:
    bucket.client.ping()  # connected before the start
print("ready", flush=True)
sys.stdin.readline()
n, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    bucket.acquire()
    n += 1
print(n, flush=True)
"""


def run_processes(tmp_path: Path, count: int, url: str, prefix: str, rate: float, burst: float,
                  seconds: float) -> list[int]:
    script = tmp_path / "acquire.py"
    script.write_text(textwrap.dedent(CHILD), encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, str(script), url, prefix, str(rate), str(burst), str(seconds)],
                              cwd=PROJECT_ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(count)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:  # start together
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
            results.append(int(out.strip()))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_processes_share_one_rate(redis_url, prefix, tmp_path):
    rate, burst, seconds = 50, 1, 2.0
    counts = run_processes(tmp_path, 2, redis_url, prefix, rate, burst, seconds)
    limit = rate * seconds + burst
    # Local buckets would give each process ~101 (202 together); one shared bucket gives ~101 in all.
    assert sum(counts) <= limit + 5, counts
    assert sum(counts) >= 0.6 * limit, counts
    assert min(counts) >= 0.2 * limit, counts  # both processes got a share


# --------------------------------------------------------------------------- Redis unreachable

def test_unreachable_redis_raises_and_logs(closed_url, caplog):
    bucket = make_bucket(50, closed_url, channel="sms")
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="campaign_engine.delivery.send_rates"):
        with pytest.raises(RateLimitUnavailable, match="campaign-engine:rate:sms unavailable"):
            bucket.acquire(threading.Event())
    assert time.monotonic() - started < 3.0  # a few quick retries, not the client's default ~10 s
    assert "not sending on this channel" in caplog.text


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[int] = []
        self.times: list[float] = []

    def send(self, message) -> Sent:
        self.sent.append(message.message_id)
        self.times.append(time.monotonic())
        return Sent("fake", f"fake-{message.message_id}")

    def close(self) -> None:
        pass


def test_worker_pauses_the_channel_while_its_rate_limit_is_unreachable(engine, now, closed_url):
    from test_delivery_worker import Clock, messages, queue

    sms_ids = queue(engine, now, 5)
    email_ids = queue(engine, now, 3, channel="email")
    sms, email = RecordingChannel(), RecordingChannel()
    worker = DeliveryWorker(engine, {"sms": sms, "email": email}, rates={"sms": 50}, clock=Clock(now),
                            bucket_factory=lambda name, rate: make_bucket(rate, closed_url, channel=name))
    counts = worker.run_once()
    worker.close()
    # Nothing is sent on sms without its limit; email (not rate-limited) goes out.
    assert sms.sent == [] and sorted(email.sent) == email_ids
    assert counts["sent"] == 3 and counts["released"] == 5
    assert worker.active_channels(now) == ["email"]
    held = messages(engine, channel="sms")
    assert [m.id for m in held] == sms_ids
    assert {(m.status, m.attempts, m.claimed_by, m.due_at) for m in held} == {
        ("queued", 0, None, now + worker.pause)}


def test_worker_with_a_redis_bucket_holds_the_rate(engine, now, redis_url, prefix):
    from test_delivery_worker import queue

    queue(engine, now, 30)
    channel = RecordingChannel()
    worker = DeliveryWorker(engine, {"sms": channel}, rates={"sms": 50},
                            bucket_factory=lambda name, rate: make_bucket(rate, redis_url, channel=name,
                                                                          key_prefix=prefix))
    started = time.monotonic()
    assert worker.run_until_idle()["sent"] == 30
    assert time.monotonic() - started >= 29 / 50 - 0.05
    assert redis_client(redis_url).exists(prefix + "sms")
