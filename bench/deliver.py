"""Benchmark: queue N messages, then drain them through the delivery worker.

    .venv/bin/python bench/deliver.py [--messages 100000] [--workers 1|2] [--batch-size 200]
                                      [--lease 30] [--heartbeat 5] [--database-url URL] [--no-gateway]

Drains N messages through the file channel, then (when tests/gateway_server.py is there) N more
through the local HTTP SMS gateway, a separate process on 127.0.0.1; prints messages/s per phase
and the machine. Each worker is its own process with its own DeliveryWorker, recording every outcome
before its next send and renewing its claims every `--heartbeat` seconds while a pass lasts (a pass
of 200 at these rates lasts well under the default 5 s: lower it to measure the renewals' cost).
Uses a fresh SQLite file under bench/out/ unless --database-url names another database: a
PostgreSQL one named bench* is created if missing and emptied; any other must have no messages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import OUT, _empty_postgres, database, fresh_sqlite_url, machine  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from campaign_engine.delivery.channels import build_channel  # noqa: E402
from campaign_engine.delivery.worker import DeliveryWorker  # noqa: E402
from campaign_engine.store import claims, runs  # noqa: E402
from campaign_engine.store.db import make_engine, upgrade_database  # noqa: E402
from campaign_engine.store.outbox import insert_messages  # noqa: E402

GATEWAY = ROOT / "tests" / "gateway_server.py"


def queue_messages(url: str, n: int, *, prefix: str, now: dt.datetime) -> float:
    """N SMS messages due now, written as the pipeline writes them; seconds taken."""
    engine = make_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        run_id = runs.insert_run(conn, kind="scheduled", run_date=now.date(), dry_run=False, now=now)
    for start in range(0, n, 5000):
        rows = [dict(dedupe_key=f"{prefix}|bench|customer|C{i:08d}|date:{now.date()}", run_id=run_id,
                     rule_id="bench", category="marketing", priority=50, customer_id=f"C{i:08d}",
                     subject_type="customer", subject_id=f"C{i:08d}", channel="sms", recipient="13800000000",
                     status="queued", body="【XX银行】尊敬的张先生，您的1年期定期存款将于3月15日到期。回复TD退订",
                     sms_segments=1, created_at=now, due_at=now)
                for i in range(start, min(n, start + 5000))]
        with engine.begin() as conn:
            insert_messages(conn, rows)
    if engine.dialect.name == "postgresql":
        # Statistics, as autovacuum would gather them within a minute: with none yet, the planner
        # reads all queued rows and sorts them on every claim instead of walking ix_messages_status_due.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE messages")
    engine.dispose()
    return time.perf_counter() - started


def _worker(url: str, channel_config: dict[str, Any], batch_size: int, lease: float, heartbeat: float,
            index: int, ready: Any, go: Any, results: Any) -> None:
    engine = make_engine(url)
    channel = build_channel(channel_config, name="sms")
    worker = DeliveryWorker(engine, {"sms": channel}, worker_id=f"bench-{index}", batch_size=batch_size,
                            lease=dt.timedelta(seconds=lease), heartbeat=dt.timedelta(seconds=heartbeat))
    ready.release()
    go.wait()
    started = time.perf_counter()
    counts = worker.run_until_idle()
    counts["renewals"] = worker.renewals
    results.put((index, counts, time.perf_counter() - started))
    worker.close()
    channel.close()
    engine.dispose()


def drain(url: str, channel_config: dict[str, Any], *, workers: int, batch_size: int, lease: float,
          heartbeat: float) -> tuple[float, dict[str, int]]:
    """Seconds for `workers` processes to send everything due, and their summed counts."""
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, channel_config, batch_size, lease, heartbeat, i, ready, go,
                                               results))
             for i in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    totals: dict[str, int] = {}
    for _ in procs:
        _, counts, _ = results.get()
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"worker exited with {p.exitcode}")
    return elapsed, totals


def report(name: str, n: int, elapsed: float, counts: dict[str, int], url: str) -> None:
    with make_engine(url).connect() as conn:
        by_status = claims.count_by_status(conn)
    print(f"{name}: {n} messages in {elapsed:.2f} s = {n / elapsed:,.0f} messages/s; "
          f"sent {counts.get('sent', 0)}, retried {counts.get('retried', 0)}, failed {counts.get('failed', 0)}, "
          f"stale {counts.get('stale', 0)}, claim renewals {counts.get('renewals', 0)}; outbox now {by_status}")


def start_gateway() -> tuple[subprocess.Popen[str], int]:
    """tests/gateway_server.py in its own process, its port. With TCP_NODELAY on its sockets: its
    handler writes headers and body separately, and without it each answer's body waits for the
    client's delayed ACK (40 ms: 23 requests/s), which measures Linux, not the worker."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import gateway_server as g; "
            "g.Handler.disable_nagle_algorithm = True; g.main(['--port', '0'])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(GATEWAY.parent)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def baseline(port: int, n: int) -> None:
    """The gateway's own ceiling here: one channel sending in a loop, no database, no worker."""
    from campaign_engine.delivery.channel import Outgoing

    channel = build_channel({"type": "http_sms", "url": f"http://127.0.0.1:{port}/sms"}, name="sms")
    started = time.perf_counter()
    for i in range(n):
        channel.send(Outgoing(message_id=i, channel="sms", recipient="13800000000", body="基准",
                              idempotency_key=f"baseline|{i}"))
    elapsed = time.perf_counter() - started
    channel.close()
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/_reset", method="POST")).close()
    print(f"HTTP gateway ceiling (channel.send in a loop, no database): {n / elapsed:,.0f} messages/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lease", type=float, default=30.0, help="claim lease, seconds (delivery_lease)")
    parser.add_argument("--heartbeat", type=float, default=5.0,
                        help="claim renewal interval, seconds (delivery_heartbeat)")
    parser.add_argument("--database-url")
    parser.add_argument("--no-gateway", action="store_true", help="skip the HTTP gateway phase")
    args = parser.parse_args()
    n = args.messages
    now = dt.datetime.now(dt.timezone.utc)
    OUT.mkdir(parents=True, exist_ok=True)
    url = args.database_url
    if url is None:
        url = fresh_sqlite_url(f"deliver_{n}")
    elif make_url(url).get_backend_name() == "postgresql" and (make_url(url).database or "").startswith("bench"):
        _empty_postgres(url)
    upgrade_database(url)
    with make_engine(url).connect() as conn:
        if claims.count_by_status(conn):
            raise SystemExit("the database already has messages: name an empty one")
    print(f"machine: {machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"database: {database(url)}; workers: {args.workers} "
          f"(processes), batch {args.batch_size}, lease {args.lease:g} s, heartbeat {args.heartbeat:g} s")

    print(f"queue {n} messages: {queue_messages(url, n, prefix='file', now=now):.2f} s")
    jsonl = OUT / "deliver_sms.jsonl"
    jsonl.unlink(missing_ok=True)
    timing = dict(workers=args.workers, batch_size=args.batch_size, lease=args.lease, heartbeat=args.heartbeat)
    elapsed, counts = drain(url, {"type": "file", "path": str(jsonl)}, **timing)
    report("file channel", n, elapsed, counts, url)
    with open(jsonl, encoding="utf-8") as lines:
        written = sum(1 for _ in lines)
    print(f"  {jsonl.relative_to(ROOT)}: {written} lines")

    if args.no_gateway or not GATEWAY.exists():
        return
    queue_messages(url, n, prefix="gateway", now=dt.datetime.now(dt.timezone.utc))
    gateway, port = start_gateway()
    try:
        baseline(port, min(n, 5000))
        elapsed, counts = drain(url, {"type": "http_sms", "url": f"http://127.0.0.1:{port}/sms"}, **timing)
        report("HTTP gateway (local process)", n, elapsed, counts, url)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sent") as answer:
            sent = json.load(answer)
        print(f"  gateway accepted {len(sent['accepted'])}, duplicates {sent['duplicates']}, "
              f"requests {sent['requests']}")
    finally:
        gateway.terminate()
        gateway.wait()
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
