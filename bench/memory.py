"""Benchmark: peak memory of the same run at two (or more) sizes, side by side (limit: independent of N).

    .venv/bin/python bench/memory.py [--customers 100000,1000000] [--date 2026-02-17] [--rule holiday-greeting]
                                     [--database-url URL] [--reuse] [--limit 1.2]

For each N a database of N demo customers (loaded as the other benchmarks load them), then the run
(by default the 春节 greeting: --date 2026-02-17 --rule holiday-greeting; `--rule all` for the
starter pack) executed in this machine's one fresh process per N (spawned, so each peak is that
run's own: the open services, the emptied outbox and the run, nothing else). Prints per N the
seconds, candidates, outbox rows, RSS before the run and peak RSS (ru_maxrss), side by side, and
the limit: the peak at the largest N at most --limit times the peak at the smallest (1.2: within
20 %), PASS or MISSED by how much.

Databases: with --database-url, the largest N uses it as named and each smaller N one named after
it with `_<N>` (PostgreSQL: `bench_p2` and `bench_p2_100000`, both bench*; SQLite: the file name
likewise); without, fresh SQLite files bench/out/memory_<N>.db. --reuse keeps a database already
holding exactly N customers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import make_url  # noqa: E402

from common import bench_clock, describe, prepare_database  # noqa: E402


def url_for(base: str | None, n: int, largest: int) -> str | None:
    if base is None or n == largest:
        return base
    url = make_url(base)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "memory.db")
        return url.set(database=str(path.with_name(f"{path.stem}_{n}{path.suffix}"))).render_as_string(
            hide_password=False)
    return url.set(database=f"{url.database}_{n}").render_as_string(hide_password=False)


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(url: str, date: str, rule_ids: tuple[str, ...]) -> dict[str, Any]:
    """In a fresh process: open the services, empty the outbox, run; the peaks."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import empty_outbox, open_bench_services

    from campaign_engine.pipeline import ScheduledRunRequest, start_run

    today, now = bench_clock(date)
    services, _ = open_bench_services(argparse.Namespace(workers=0, shard_size=None), url)
    empty_outbox(services)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    report = start_run(services, ScheduledRunRequest(today, rule_ids), now=now).as_dict()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    services.close()
    rules = report["rules"]
    return {"seconds": seconds, "status": report["status"], "candidates": sum(r["candidates"] for r in rules),
            "written": sum(int(r.get(k) or 0) for r in rules for k in ("queued", "scheduled", "failed", "held_out")),
            "before": before, "peak": peak, "hwm": _vm_hwm_mib(),
            "errors": [f"{r['rule']}: {r['error']}" for r in rules if r.get("error")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--date", default="2026-02-17")
    parser.add_argument("--rule", action="append", default=[],
                        help="rule to run (repeatable; default holiday-greeting; `all`: every enabled one)")
    parser.add_argument("--database-url")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--limit", type=float, default=1.2, help="peak at the largest N / peak at the smallest")
    args = parser.parse_args()
    sizes = sorted({int(x.replace("_", "")) for x in args.customers.split(",") if x.strip()})
    rule_ids = () if args.rule == ["all"] else tuple(args.rule or ["holiday-greeting"])
    today, now = bench_clock(args.date)
    urls = {}
    for n in sizes:
        urls[n] = prepare_database(url_for(args.database_url, n, sizes[-1]), name=f"memory_{n}", customers=n,
                                   reuse=args.reuse, today=today, now=now)
    print(describe(urls[sizes[-1]]))
    print(f"run for {today}: {', '.join(rule_ids) or 'every enabled scheduled rule'}; each size in a fresh "
          "process (spawned) doing only the run")
    results = {}
    for n in sizes:
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
            results[n] = pool.submit(measure, urls[n], args.date, rule_ids).result()
        r = results[n]
        for error in r["errors"]:
            print(f"  error at {n:,}: {error}")
    print(f"  {'customers':>10} {'seconds':>8} {'candidates':>10} {'outbox rows':>11} {'RSS before run':>14} "
          f"{'peak RSS':>8} {'growth in run':>13}")
    for n in sizes:
        r = results[n]
        print(f"  {n:>10,} {r['seconds']:8.2f} {r['candidates']:>10,} {r['written']:>11,} {r['before']:>10.0f} MiB "
              f"{r['peak']:>4.0f} MiB {r['peak'] - r['before']:>9.0f} MiB  ({r['status']})")
    small, large = results[sizes[0]], results[sizes[-1]]
    ratio = large["peak"] / small["peak"]
    limit_mib = args.limit * small["peak"]
    verdict = (f"PASS ({ratio:.2f}x)" if ratio <= args.limit else
               f"MISSED by {large['peak'] - limit_mib:.0f} MiB ({ratio:.2f}x, limit {args.limit:g}x)")
    print(f"peak RSS at {sizes[-1]:,} vs {sizes[0]:,}: {large['peak']:.0f} MiB vs {small['peak']:.0f} MiB = "
          f"{ratio:.2f}x; limit <= {args.limit:g}x ({limit_mib:.0f} MiB): {verdict}")


if __name__ == "__main__":
    main()
