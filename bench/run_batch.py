"""Benchmark: demo customers -> the starter pack's daily run -> a rendered outbox.

    .venv/bin/python bench/run_batch.py [--customers 100000] [--database-url URL]

Prints load time, run time per rule, candidates read, messages queued, peak RSS and the machine.
Uses a fresh SQLite file under bench/out/ unless --database-url names another database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import describe, fresh_sqlite_url  # noqa: E402

from campaign_engine.bootstrap import open_services  # noqa: E402
from campaign_engine.pipeline import handle_event, run_scheduled  # noqa: E402
from campaign_engine.settings import load_settings  # noqa: E402
from campaign_engine.store.db import make_engine, upgrade_database  # noqa: E402
from campaign_engine.store.importers import load_demo_data  # noqa: E402
from campaign_engine.vocabulary import EventType  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--date", default="2026-03-10")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    today = dt.date.fromisoformat(args.date)
    now = dt.datetime.now(dt.timezone.utc)
    url = args.database_url
    if url is None:
        url = fresh_sqlite_url(f"run_batch_{args.customers}")
    upgrade_database(url)
    print(describe(url))

    started = time.perf_counter()
    counts = load_demo_data(make_engine(url), args.customers, seed=1, today=today, now=now)
    print(f"demo data: {counts} in {time.perf_counter() - started:.1f} s")

    services = open_services(load_settings(database_url=url))
    started = time.perf_counter()
    report = run_scheduled(services, today=today, now=now)
    elapsed = time.perf_counter() - started
    print(f"daily run for {today}: {elapsed:.2f} s")
    for r in report["rules"]:
        print(f"  {r['rule']:28} candidates {r['candidates']:>7}  matched {r['matched']:>6}  "
              f"queued {r['queued']:>6}  suppressed {sum(r['suppressed'].values()):>6}  {r['seconds']:.2f} s")

    payload = {"event_id": f"bench-{now.timestamp()}", "product_type": "time_deposit", "old_rate": 1.65,
               "new_rate": 1.45, "effective_date": today.isoformat()}
    started = time.perf_counter()
    event = handle_event(services, EventType.RATE_CHANGE, payload, now=now)
    elapsed = time.perf_counter() - started
    rule = event["rules"][0]
    print(f"rate-change event: {elapsed:.2f} s, candidates {rule['candidates']}, queued {rule['queued']}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
