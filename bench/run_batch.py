"""Benchmark: N demo customers -> the starter pack's daily run for one date -> a rendered outbox.

    .venv/bin/python bench/run_batch.py [--customers 100000] [--database-url URL] [--reuse]
                                        [--date 2026-03-10] [--rule ID ...] [--workers N [--in-process-too]]
                                        [--stages]

The 春节 greeting target (2 cores, 1M customers on PostgreSQL, rendered outbox; <= 60 s in one
process, <= 30 s on 2 workers), all in one command:

    .venv/bin/python bench/run_batch.py --customers 1000000 --database-url postgresql://postgres@127.0.0.1/bench_p2 \\
        --date 2026-02-17 --rule holiday-greeting --workers 2 --in-process-too --stages

Prints the load time, seconds to a rendered outbox, candidates read and messages queued per rule,
µs per message, each timing beside its limit (60 s per 1M customers in one process, 30 s per 1M on
2 or more workers; scaled linearly when N is not 1M) with PASS or MISSED and by how much, peak
RSS and the machine. `now` is 10:00 in Shanghai on --date (inside the SMS window), so messages are
queued rather than scheduled whatever the time of day the benchmark runs. The outbox is emptied
before every run so each writes the same messages. With --workers N the run's shards execute on N
`campaign-engine worker` processes over a Celery broker instead of in this process;
--in-process-too runs it in this process first as well. --stages runs the same request once more
in this process under cProfile and splits its time by pipeline stage (bench/stages.py): candidate
select, facts, evaluation (durable-rules), dedupe check, contact policy, rendering, outbox write,
and the unattributed rest, in µs per message, beside the un-profiled wall time.

Uses a fresh SQLite file under bench/out/ unless --database-url names another database; a
PostgreSQL database (named bench*) is created if missing and emptied, unless --reuse finds N
customers in it already.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_worker_options, bench_clock, bench_parser, describe, empty_outbox,  # noqa: E402
                    open_bench_services, peak_rss_mib, prepare_database, where_executed)
import stages  # noqa: E402

from campaign_engine.pipeline import ScheduledRunRequest, start_run  # noqa: E402

LIMIT_IN_PROCESS = 60.0  # seconds per 1M customers, one process (the 春节 greeting, issue target)
LIMIT_WORKERS = 30.0  # seconds per 1M customers on 2 workers
TARGET_DATE, TARGET_RULE = "2026-02-17", "holiday-greeting"


def written(rule: dict[str, Any]) -> int:
    """Outbox rows a rule's run wrote (every outcome with a message row)."""
    return sum(int(rule.get(k) or 0) for k in ("queued", "scheduled", "failed", "held_out"))


def verdict(seconds: float, limit: float) -> str:
    if seconds <= limit:
        return f"PASS ({limit - seconds:.2f} s to spare, {seconds / limit:.2f}x the limit)"
    return f"MISSED by {seconds - limit:.2f} s ({100 * (seconds / limit - 1):.0f} % over, {seconds / limit:.2f}x the limit)"


def one_run(services: Any, request: ScheduledRunRequest, now: Any, customers: int, where: str) -> dict[str, Any]:
    removed = empty_outbox(services)
    if removed:
        print(f"outbox emptied: {removed:,} earlier messages removed")
    started = time.perf_counter()
    report = start_run(services, request, now=now).as_dict()
    elapsed = time.perf_counter() - started
    rules = report["rules"]
    print(f"daily run for {request.today} over {customers:,} customers, executed by {where}: {elapsed:.2f} s to a "
          f"rendered outbox; run {report['run_id']} {report['status']}")
    for r in rules:
        print(f"  {r['rule']:28} candidates {r['candidates']:>8,}  matched {r['matched']:>7,}  "
              f"queued {r['queued']:>7,}  scheduled {r['scheduled']:>5,}  "
              f"suppressed {sum(r['suppressed'].values()):>6,}  {r['seconds']:.2f} s")
        if r.get("error"):
            print(f"    error: {r['error']}")
    messages = sum(written(r) for r in rules)
    candidates = sum(r["candidates"] for r in rules)
    print(f"total: candidates read {candidates:,}, queued {sum(r['queued'] for r in rules):,}, "
          f"outbox rows written {messages:,}; "
          f"{elapsed * 1e6 / messages if messages else 0:.1f} µs per message")
    return {"where": where, "seconds": elapsed, "messages": messages, "candidates": candidates}


def main() -> None:
    parser = bench_parser(__doc__, 100_000)
    add_worker_options(parser)
    parser.add_argument("--rule", action="append", default=[],
                        help="run only this rule (repeatable; default: every enabled scheduled rule)")
    parser.add_argument("--in-process-too", action="store_true",
                        help="with --workers: run in this process first too, each timing beside its limit")
    parser.add_argument("--stages", action="store_true",
                        help="then run once more in this process under cProfile: time split by pipeline stage")
    args = parser.parse_args()
    today, now = bench_clock(args.date)
    url = prepare_database(args.database_url, name=f"run_batch_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))
    request = ScheduledRunRequest(today, tuple(args.rule))
    what = f"rule(s) {', '.join(args.rule)}" if args.rule else "starter pack"

    local_args = argparse.Namespace(**{**vars(args), "workers": 0})
    local = None
    if not args.workers or args.in_process_too or args.stages:
        local, _ = open_bench_services(local_args, url)
    results, rss = [], {}
    if local is not None and (not args.workers or args.in_process_too):
        print(f"{what} for {today}: batch {local.settings.batch_size}, shard {local.settings.shard_size}")
        rss_before = peak_rss_mib()
        results.append(one_run(local, request, now, args.customers, "this process"))
        rss["this process"] = (rss_before, peak_rss_mib())
    worker_rss: list[float] = []
    if args.workers:
        services, cluster = open_bench_services(args, url)
        print(f"{what} for {today}: batch {services.settings.batch_size}, shard {services.settings.shard_size}")
        results.append(one_run(services, request, now, args.customers, where_executed(args)))
        assert cluster is not None
        worker_rss = cluster.peak_rss_mib()
        cluster.stop()
        services.close()

    scale = args.customers / 1_000_000
    target = args.date == TARGET_DATE and args.rule == [TARGET_RULE]
    about = ("the 春节 greeting target" if target else
             f"the limits of the 春节 greeting target ({TARGET_DATE}, --rule {TARGET_RULE}) applied to this run")
    scaled = "" if scale == 1 else ", limits scaled linearly from 1M"
    print(f"=== timings beside their limits ({about}; {args.customers:,} customers{scaled}) ===")
    for res in results:
        on_workers = res["where"] != "this process"
        per_million = LIMIT_WORKERS if on_workers and args.workers >= 2 else LIMIT_IN_PROCESS
        limit = per_million * scale
        per_msg = res["seconds"] * 1e6 / res["messages"] if res["messages"] else 0.0
        limit_per_msg = limit * 1e6 / res["messages"] if res["messages"] else 0.0
        print(f"  {res['where']:62} {res['seconds']:8.2f} s  limit {limit:7.2f} s ({per_million:g} s per 1M)  "
              f"{per_msg:6.1f} µs/message (limit {limit_per_msg:.1f})  {verdict(res['seconds'], limit)}")
    for where, (before, peak) in rss.items():
        print(f"peak RSS, {where}: {peak:.0f} MiB (before the run: {before:.0f} MiB)")
    if worker_rss:
        print(f"peak RSS per worker process: {', '.join(f'{m:.0f}' for m in worker_rss)} MiB")

    if args.stages:
        assert local is not None
        empty_outbox(local)
        unprofiled = next((r["seconds"] for r in results if r["where"] == "this process"), None)
        report, seconds, profile = stages.profiled(start_run, local, request, now=now)
        rules = report.as_dict()["rules"]
        print(f"profiled in-process run: {seconds:.2f} s under cProfile"
              + ("" if unprofiled is not None else " (no un-profiled in-process run to compare: add "
                 "--in-process-too, or leave out --workers)"))
        stages.print_split(profile, seconds, unprofiled, sum(written(r) for r in rules),
                           sum(r["candidates"] for r in rules))
    if local is not None:
        local.close()


if __name__ == "__main__":
    main()
