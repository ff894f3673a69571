"""Benchmark: N demo customers -> the starter pack's daily run for one date -> a rendered outbox.

    .venv/bin/python bench/run_batch.py [--customers 100000] [--database-url URL] [--reuse]
                                        [--date 2026-03-10] [--workers N]

Prints the load time, seconds to a rendered outbox, candidates read and messages queued per rule,
peak RSS and the machine. `now` is 10:00 in Shanghai on --date (inside the SMS window), so
messages are queued rather than scheduled whatever the time of day the benchmark runs. The
outbox is emptied first so every run writes the same messages. With --workers N the run's shards
execute on N `campaign-engine worker` processes over a Celery broker instead of in this process.

Uses a fresh SQLite file under bench/out/ unless --database-url names another database; a
PostgreSQL database (named bench*) is created if missing and emptied, unless --reuse finds N
customers in it already.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import describe, empty_outbox, peak_rss_mib, prepare_database, start_workers  # noqa: E402

from campaign_engine.bootstrap import open_services  # noqa: E402
from campaign_engine.distributed.dispatch import execute  # noqa: E402
from campaign_engine.pipeline import begin_scheduled  # noqa: E402
from campaign_engine.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--date", default="2026-03-10")
    parser.add_argument("--database-url")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database's data when it already holds exactly N customers")
    parser.add_argument("--workers", type=int, default=0, help="execute on N Celery worker processes")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13", help="Celery broker for --workers")
    parser.add_argument("--shard-size", type=int, help="customers per shard (default: the setting)")
    args = parser.parse_args()
    today = dt.date.fromisoformat(args.date)
    now = dt.datetime.combine(today, dt.time(10), tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(dt.timezone.utc)

    url = prepare_database(args.database_url, name=f"run_batch_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))
    overrides: dict[str, Any] = {"database_url": url, "shard_size": args.shard_size}
    cluster = None
    if args.workers:
        cluster = start_workers(args.workers, url, args.broker, args.shard_size)
        overrides.update(celery_broker_url=args.broker, celery_queue=cluster.queue)
    services = open_services(load_settings(**overrides))
    removed = empty_outbox(services)
    if removed:
        print(f"outbox emptied: {removed:,} earlier messages removed")
    where = f"{args.workers} Celery worker process(es)" if cluster else "this process"
    print(f"starter pack for {today}: batch {services.settings.batch_size}, shard {services.settings.shard_size}, "
          f"executed by {where}")

    rss_before = peak_rss_mib()
    started = time.perf_counter()
    report = execute(services, begin_scheduled(services, today=today, now=now))
    elapsed = time.perf_counter() - started
    rules = report["rules"]
    print(f"daily run for {today} over {args.customers:,} customers: {elapsed:.2f} s to a rendered outbox; "
          f"run {report['run_id']} {report['status']}")
    for r in rules:
        print(f"  {r['rule']:28} candidates {r['candidates']:>8,}  matched {r['matched']:>7,}  "
              f"queued {r['queued']:>7,}  scheduled {r['scheduled']:>5,}  "
              f"suppressed {sum(r['suppressed'].values()):>6,}  {r['seconds']:.2f} s")
    print(f"total: candidates read {sum(r['candidates'] for r in rules):,}, "
          f"queued {sum(r['queued'] for r in rules):,}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before the run: {rss_before:.0f} MiB)")
    if cluster is not None:
        print(f"peak RSS per worker process: {', '.join(f'{m:.0f}' for m in cluster.peak_rss_mib())} MiB")
        cluster.stop()
    target = "met" if elapsed <= 30 else "MISSED"
    print(f"target <= 30 s for 1M customers on 2 cores: {target if args.customers >= 1_000_000 else 'n/a (N < 1M)'}")
    services.close()


if __name__ == "__main__":
    main()
