"""Benchmark: a rate-change event over N customers (default 1,000,000), seconds to outbox.

    .venv/bin/python bench/event.py [--customers 1000000] [--database-url URL] [--reuse]
                                    [--product-type time_deposit] [--keep-outbox] [--breakdown | --profile]

Loads demo data (skipped with --reuse when the database already holds N customers), then posts
one rate_change event through pipeline.start_run with the project's rules/ and templates/ (the
rate-change-notice rule: rate-sensitive holders of the product type), in this process, and prints
seconds to outbox, candidates read, matched, queued and suppressed per rule, the messages the run
wrote, and peak RSS (the load runs in a child process, so that is the event's own). The outbox is
emptied first (unless --keep-outbox) so every run writes into the same table size. `now` is 10:00
in Shanghai on --date, inside the SMS window, so messages are queued rather than scheduled.

Uses a fresh SQLite file under bench/out/ unless --database-url names another database;
a PostgreSQL database (named bench*) is created if missing and emptied, unless --reuse finds N
customers in it already.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_worker_options, bench_clock, bench_parser, describe, empty_outbox,  # noqa: E402
                    open_bench_services, peak_rss_mib, prepare_database, profile_call, stop_workers,
                    where_executed)

from campaign_engine.events import parse_event  # noqa: E402
from campaign_engine.pipeline import EventRunRequest, batch, lifecycle, start_run  # noqa: E402
from campaign_engine.store import candidates as candidate_store  # noqa: E402
from campaign_engine.store import outbox  # noqa: E402
from campaign_engine.vocabulary import EventType  # noqa: E402


class Breakdown:
    """Seconds spent inside the pipeline's steps, by wrapping them with timers (a few µs per call,
    unlike cProfile). A step missing from the current code is left out; the rest is `other`."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            return
        seconds, calls = self.seconds, self.calls
        if inspect.isgeneratorfunction(fn):
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                pages = fn(*args, **kwargs)
                while True:
                    started = time.perf_counter()
                    try:
                        page = next(pages)
                    except StopIteration:
                        seconds[label] += time.perf_counter() - started
                        return
                    seconds[label] += time.perf_counter() - started
                    calls[label] += 1
                    yield page
        else:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    seconds[label] += time.perf_counter() - started
                    calls[label] += 1
        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, fn))

    def install(self, services: Any) -> None:
        self.wrap(lifecycle, "plan_shards", "shard planning (SQL)")
        self.wrap(candidate_store, "select_candidates", "candidate pages (SQL)")
        self.wrap(candidate_store, "load_holds", "holdings (SQL)")
        self.wrap(batch, "fact_sets", "facts")
        self.wrap(services.engine, "evaluate", "durable-rules")
        self.wrap(outbox, "existing_dedupe_keys", "dedupe check (SQL)")
        self.wrap(batch, "contact_state", "caps + suppression list (SQL)")
        self.wrap(batch, "decide_contact", "contact policy")
        self.wrap(batch, "render_message", "rendering")
        self.wrap(outbox, "insert_messages", "outbox insert (SQL)")

    def remove(self) -> None:
        for undo in reversed(self._undo):
            undo()

    def print(self, total: float) -> None:
        print("  where the time went (timers around the pipeline's steps):")
        for label, secs in self.seconds.most_common():
            print(f"    {label:32} {secs:7.2f} s {100 * secs / total:5.1f}%  ({self.calls[label]:,} calls)")
        other = total - sum(self.seconds.values())
        print(f"    {'other (Python glue)':32} {other:7.2f} s {100 * other / total:5.1f}%")


def outbox_of_run(services, run_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with services.db.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT status, count(*) FROM messages WHERE run_id = %s GROUP BY status ORDER BY status"
            if services.db.dialect.name == "postgresql" else
            "SELECT status, count(*) FROM messages WHERE run_id = ? GROUP BY status ORDER BY status",
            (run_id,)).all()
    return {status: n for status, n in rows}


def main() -> None:
    parser = bench_parser(__doc__, 1_000_000)
    parser.add_argument("--product-type", default="time_deposit")
    parser.add_argument("--keep-outbox", action="store_true", help="leave earlier runs' messages in place")
    parser.add_argument("--profile", action="store_true",
                        help="run the event under cProfile (slower) and print where the time goes")
    add_worker_options(parser)
    parser.add_argument("--breakdown", action="store_true",
                        help="time the pipeline's steps (SQL, facts, engine, rendering, insert) with light timers")
    args = parser.parse_args()
    today, now = bench_clock(args.date)
    url = prepare_database(args.database_url, name=f"event_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))
    services, cluster = open_bench_services(args, url)
    settings = services.settings
    rules = [r.id for r in services.rulebook.enabled() if r.trigger.event is EventType.RATE_CHANGE]
    print(f"rules for rate_change: {', '.join(rules)}; batch {settings.batch_size}, shard {settings.shard_size}; "
          + f"executed by {where_executed(args)}")
    if not args.keep_outbox:
        removed = empty_outbox(services)
        if removed:
            print(f"outbox emptied: {removed:,} earlier messages removed")

    payload = {"event_id": f"bench-rc-{time.time_ns()}", "product_type": args.product_type,
               "old_rate": 1.65, "new_rate": 1.45, "effective_date": today.isoformat()}
    breakdown = Breakdown()
    if args.breakdown:
        breakdown.install(services)
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    request = EventRunRequest(parse_event(EventType.RATE_CHANGE, payload))
    if args.profile:
        report = profile_call(start_run, services, request, now=now).as_dict()
    else:  # in this process, or on the workers (the executor bench's services were opened with)
        report = start_run(services, request, now=now).as_dict()
    elapsed = time.perf_counter() - started
    breakdown.remove()
    print(f"rate-change event ({args.product_type}) over {args.customers:,} customers: {elapsed:.2f} s to outbox"
          + (" (under cProfile)" if args.profile else "") + f"; run {report['run_id']} {report['status']}")
    for r in report["rules"]:
        rate = r["candidates"] / r["seconds"] if r["seconds"] else 0
        print(f"  {r['rule']:24} candidates {r['candidates']:>9,}  matched {r['matched']:>9,}  "
              f"queued {r['queued']:>9,}  scheduled {r['scheduled']:>5,}  duplicates {r['duplicates']:>5,}  "
              f"failed {r['failed']:>5,}  suppressed {r['suppressed']}  {r['seconds']:.2f} s "
              f"({rate:,.0f} candidates/s)")
        if r["error"]:
            print(f"    error: {r['error']}")
    if args.breakdown:
        breakdown.print(elapsed)
    written = outbox_of_run(services, report["run_id"])
    print(f"outbox rows of this run: {written}")
    peak = peak_rss_mib()
    print(f"peak RSS: {peak:.0f} MiB (before the event: {rss_before:.0f} MiB)")
    stop_workers(cluster)
    target = "met" if elapsed <= 60 else "MISSED"
    print(f"target <= 60 s for 1M customers on 2 cores: {target if args.customers == 1_000_000 else 'n/a (N is not 1M)'}")
    services.close()


if __name__ == "__main__":
    main()
