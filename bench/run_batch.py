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

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_worker_options, bench_clock, bench_parser, describe, empty_outbox,  # noqa: E402
                    open_bench_services, peak_rss_mib, prepare_database, stop_workers, where_executed)

from campaign_engine.pipeline import ScheduledRunRequest, start_run  # noqa: E402


def main() -> None:
    parser = bench_parser(__doc__, 100_000)
    add_worker_options(parser)
    args = parser.parse_args()
    today, now = bench_clock(args.date)
    url = prepare_database(args.database_url, name=f"run_batch_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))
    services, cluster = open_bench_services(args, url)
    removed = empty_outbox(services)
    if removed:
        print(f"outbox emptied: {removed:,} earlier messages removed")
    print(f"starter pack for {today}: batch {services.settings.batch_size}, shard {services.settings.shard_size}, "
          f"executed by {where_executed(args)}")

    rss_before = peak_rss_mib()
    started = time.perf_counter()
    report = start_run(services, ScheduledRunRequest(today), now=now).as_dict()
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
    stop_workers(cluster)
    target = "met" if elapsed <= 30 else "MISSED"
    print(f"target <= 30 s for 1M customers on 2 cores: {target if args.customers == 1_000_000 else 'n/a (N is not 1M)'}")
    services.close()


if __name__ == "__main__":
    main()
