"""Benchmark: lunar-birthday candidates over N customers, read through ix_customers_lunar_birth_mmdd,
beside the solar birthday figure (ix_customers_birth_mmdd).

    .venv/bin/python bench/lunar_birthday.py [--customers 100000] [--database-url URL] [--reuse]
                                             [--date 2026-03-10] [--days 30]

For each of --days consecutive dates from --date: the candidate query of the starter pack's
birthday-greeting (solar, days_to_birthday 0) and lunar-birthday-greeting (birthday_calendar lunar,
days_to_lunar_birthday 0) streamed to the end, its time and its candidates (mean and worst day);
then each rule's dry run on --date (selection, evaluation, policy and rendering), the database's
plan of the lunar query, what the same selection costs without the index (every lunar customer
read, days_to_lunar_birthday computed for each), and the per-candidate cost of the derived fields
computed on demand (days_to_lunar_birthday; payout_date and business_days_to_maturity).

Demo data (bench/common.py): about 15 % of the customers over 55 celebrate their lunar birthday.
Uses a fresh SQLite file under bench/out/ unless --database-url names another database.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (bench_clock, bench_parser, describe, open_bench_services, peak_rss_mib,  # noqa: E402
                    prepare_database)

from sqlalchemy import func, select, text  # noqa: E402

from campaign_engine.facts.derived import days_to_lunar_birthday  # noqa: E402
from campaign_engine.facts.namespaces import Derivations  # noqa: E402
from campaign_engine.pipeline import ScheduledRunRequest, start_run  # noqa: E402
from campaign_engine.pipeline.batch import fact_sets, prepare_rule  # noqa: E402
from campaign_engine.selection.plan import CandidatePlan  # noqa: E402
from campaign_engine.store.candidates import _base_query, select_candidates  # noqa: E402
from campaign_engine.store.models import Customer  # noqa: E402
from campaign_engine.vocabulary import SubjectType  # noqa: E402

RULES = ("birthday-greeting", "lunar-birthday-greeting")


def read_all(services, plan: CandidatePlan) -> tuple[int, float, list]:  # type: ignore[no-untyped-def]
    """Stream a plan's candidates to the end: (count, seconds, the last batch)."""
    started = time.perf_counter()
    count, last = 0, []
    for batch in select_candidates(services.db, plan, services.settings.batch_size):
        count += len(batch)
        last = batch
    return count, time.perf_counter() - started, last


def query_plan(services, plan: CandidatePlan) -> str:  # type: ignore[no-untyped-def]
    query, key = _base_query(plan)
    with services.db.connect() as conn:
        sql = str(query.order_by(*key).compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            return "; ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        return "; ".join(r[0].strip() for r in conn.execute(text(f"EXPLAIN {sql}")))


def per_candidate_us(fn, rounds: int = 9) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        n = fn()
        best = min(best, (time.perf_counter() - started) / max(n, 1))
    return best * 1e6


def main() -> None:
    parser = bench_parser(__doc__, 100_000)
    parser.add_argument("--days", type=int, default=30, help="consecutive run dates to select for")
    args = parser.parse_args()
    today, now = bench_clock(args.date)
    url = prepare_database(args.database_url, name=f"lunar_birthday_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))
    services, _ = open_bench_services(args, url)
    with services.db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Customer)).scalar_one()
        lunar = conn.execute(select(func.count()).where(Customer.birthday_calendar == "lunar")).scalar_one()
    print(f"{total:,} customers, {lunar:,} ({lunar / total:.1%}) celebrating their lunar birthday")

    rules = {r: services.rulebook.rules[r] for r in RULES}
    figures: dict[str, list[tuple[int, float]]] = {r: [] for r in RULES}
    for offset in range(args.days):
        day = today + dt.timedelta(days=offset)
        for rule_id, rule in rules.items():
            prep = prepare_rule(services, rule, day, None)
            count, seconds, _ = read_all(services, prep.plan)
            figures[rule_id].append((count, seconds))
    print(f"candidate query streamed to the end, {args.days} run dates from {today} (mean / worst day):")
    for rule_id, rows in figures.items():
        counts, times = [c for c, _ in rows], [s for _, s in rows]
        print(f"  {rule_id:26} candidates {statistics.mean(counts):>9,.1f} / {max(counts):>7,}   "
              f"{statistics.mean(times) * 1000:>8.1f} ms / {max(times) * 1000:>8.1f} ms")

    lunar_prep = prepare_rule(services, rules["lunar-birthday-greeting"], today, None)
    print(f"lunar plan on {today}: lunar_birth_mmdd IN {sorted(lunar_prep.plan.lunar_birth_mmdd or ())}")
    print(f"  database plan: {query_plan(services, lunar_prep.plan)}")

    # Without the index: every lunar customer read and judged in Python (what a scan would cost).
    started = time.perf_counter()
    matches = 0
    scan = CandidatePlan(subject=SubjectType.CUSTOMER, where=lunar_prep.plan.where)
    for batch in select_candidates(services.db, scan, services.settings.batch_size):
        matches += sum(days_to_lunar_birthday(c.customer["birth_date"], today) == 0 for c in batch)
    scan_seconds = time.perf_counter() - started
    print(f"  without the index (every lunar customer read, days_to_lunar_birthday for each): {matches:,} "
          f"matches in {scan_seconds * 1000:.1f} ms")

    print(f"dry run on {today} (selection, evaluation, policy, rendering):")
    report = start_run(services, ScheduledRunRequest(today, RULES, dry_run=True), now=now)
    for r in report.rules:
        print(f"  {r.rule:26} candidates {r.candidates:>7,}  matched {r.matched:>6,}  queued {r.queued:>6,}  "
              f"{r.seconds * 1000:>8.1f} ms")

    # Per-candidate cost of the derived fields computed on demand, over 2,000 customers and deposits.
    customers = first_batch(services, CandidatePlan(subject=SubjectType.CUSTOMER))
    plain = per_candidate_us(lambda: len(fact_sets(customers, {}, today)))
    with_lunar = per_candidate_us(lambda: len(fact_sets(customers, {}, today, Derivations(lunar_birthday=True))))
    print(f"customer facts: {plain:.2f} us per candidate; with days_to_lunar_birthday {with_lunar:.2f} us "
          f"(+{with_lunar - plain:.2f})")
    deposits = first_batch(services, CandidatePlan(subject=SubjectType.DEPOSIT, maturity_from=today,
                                                   maturity_to=today + dt.timedelta(days=200)))
    plain = per_candidate_us(lambda: len(fact_sets(deposits, {}, today)))
    with_days = per_candidate_us(lambda: len(fact_sets(deposits, {}, today,
                                                       Derivations(business_days=services.holidays))))
    print(f"deposit facts: {plain:.2f} us per candidate; with payout_date and business_days_to_maturity "
          f"{with_days:.2f} us (+{with_days - plain:.2f})")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    services.close()


def first_batch(services, plan: CandidatePlan, size: int = 2000) -> list:  # type: ignore[no-untyped-def]
    """The first `size` candidates of a plan."""
    return next(iter(select_candidates(services.db, plan, size)), [])


if __name__ == "__main__":
    main()
