"""Benchmark: one full-scan rule over N customers through the engine, against the same predicate
as hand-written SQL on the same database (the limit), printed as a ratio.

    .venv/bin/python bench/evaluate.py [--customers 100000] [--database-url URL] [--reuse]
                                       [--repeat 3] [--no-pushdown | --skip-no-pushdown] [--profile] [--explain]

The rule (written to a temporary rules folder, with its own template) is not date-driven:

    customer.tier in [gold, platinum, diamond] and customer.aum >= 500000
    and customer.risk_rank >= 3 (C3..C5) and customer.sms_consent

so its candidate query reads the whole customers table (tier, aum and risk level are pushed into
the SQL WHERE; consent is decided by the engine). Prints:

(a) the engine: select + evaluate (candidate batches, facts, durable-rules; the pipeline's
    own code up to the verdicts, no policy or rendering), and the whole dry run of the rule
    (a dry run through pipeline.start_run: also dedupe check, caps, policy and rendering);
(b) the hand-written SQL `SELECT customer_id FROM customers LEFT JOIN consents ... WHERE <same
    predicate>` fetching every matching id through the driver's cursor;
    the matched counts (asserted equal) and the ratio engine / SQL beside its limit (within 3x),
    PASS or MISSED by how much;
(c) the engine without SQL pushdown (every customer read and decided by durable-rules), in
    microseconds per candidate, split into select, holdings, facts and evaluate.

(a) and (b) are timed alternately, `--repeat` times each after one warm-up of each, then the dry run
`--repeat` times; the best of each is kept. The dry run's caps query reads the outbox, so its size is printed.
Uses a fresh SQLite file under bench/out/ unless --database-url names another database;
a PostgreSQL database (named bench*) is created if missing and emptied, unless --reuse finds N
customers in it already.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from typing import Any
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (bench_clock, bench_parser, describe, peak_rss_mib, prepare_database, profile_call,  # noqa: E402
                    publish_rules, set_disabled)

from campaign_engine import pipeline  # noqa: E402
from campaign_engine.pipeline.batch import RuleRun, evaluate_batch, prepare_rule  # noqa: E402
from campaign_engine.bootstrap import open_services  # noqa: E402
from campaign_engine.rendering import build_environment  # noqa: E402
from campaign_engine.selection.plan import CandidatePlan  # noqa: E402
from campaign_engine.settings import load_settings  # noqa: E402
from campaign_engine.store.candidates import select_candidates  # noqa: E402

RULE_ID = "bench-wealth-upsell"
LIMIT_RATIO = 3.0  # the engine's select + evaluate within 3x of the hand-written SQL
RULE = f"""\
# Benchmark rule: not date-driven, so its candidate query scans the customers table.
id: {RULE_ID}
name: 高净值客户理财推荐（基准测试）
category: marketing
priority: 50
trigger: {{schedule: "0 10 * * *", subject: customer}}
conditions:
  all:
    - customer.tier: {{in: [gold, platinum, diamond]}}
    - customer.aum: {{gte: 500000}}
    - customer.risk_rank: {{gte: 3}}
    - customer.sms_consent: true
channels: [sms]
template: bench_wealth
product: WM-R3-01
"""
TEMPLATE = ("{{ customer.name | salutation(customer.gender) }}，我行“{{ product.name }}”现已发售，"
            "业绩比较基准{{ product.rate | percent }}，风险等级{{ product.risk_level }}。"
            "理财非存款，产品有风险，投资须谨慎。详询您的客户经理。\n")
# The same predicate, by hand: risk_rank >= 3 is risk_level C3, C4 or C5; no consent row is no consent.
LIMIT_SQL = """\
SELECT c.customer_id
FROM customers c
LEFT JOIN consents s ON s.customer_id = c.customer_id AND s.channel = 'sms'
WHERE c.tier IN ('gold', 'platinum', 'diamond')
  AND c.aum >= 500000
  AND c.risk_level IN ('C3', 'C4', 'C5')
  AND s.granted"""


@dataclass
class Pass:
    """One pass of the engine path over every candidate page."""

    seconds: float = 0.0
    candidates: int = 0
    pages: int = 0
    matched: list[str] = field(default_factory=list)
    parts: Counter[str] = field(default_factory=Counter)  # seconds per step

    def split(self, per: int) -> str:
        unit, scale, digits = ("µs/candidate", 1e6 / per, 1) if per else ("s", 1.0, 3)
        return ", ".join(f"{k} {v * scale:.{digits}f}" for k, v in self.parts.items()) + f" {unit}"


def engine_pass(services: pipeline.Services, prep: RuleRun, plan: CandidatePlan) -> Pass:
    """The pipeline's own path from candidate SQL to the engine's verdicts (select_candidates,
    then pipeline.batch.evaluate_batch per batch), timed: select, facts (holdings if the rule reads
    them, fact building, flattening) and evaluate (durable-rules alone)."""
    result = Pass()
    engine = services.engine
    evaluate = engine.evaluate
    durable = 0.0

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        nonlocal durable
        t = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            durable += time.perf_counter() - t

    engine.evaluate = timed_evaluate  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        pages = select_candidates(services.db, plan, services.settings.batch_size)
        while True:
            t0 = time.perf_counter()
            rows = next(pages, None)
            t1 = time.perf_counter()
            result.parts["select"] += t1 - t0
            if rows is None:
                break
            before = durable
            fact_sets, _, verdicts = evaluate_batch(services, prep, rows)
            t2 = time.perf_counter()
            result.parts["facts"] += (t2 - t1) - (durable - before)
            result.parts["evaluate"] += durable - before
            result.candidates += len(rows)
            result.pages += 1
            result.matched += [fs.customer["customer_id"] for fs, hit in zip(fact_sets, verdicts) if hit]
        result.seconds = time.perf_counter() - started
    finally:
        del engine.evaluate  # back to the class's method
    return result


def sql_pass(services: pipeline.Services) -> tuple[float, list[str]]:
    """The limit: the same predicate in one statement, every matching id fetched by the driver."""
    with services.db.connect() as conn:
        started = time.perf_counter()
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(LIMIT_SQL)
            ids = [row[0] for row in cursor.fetchall()]
        finally:
            cursor.close()
        return time.perf_counter() - started, ids


def explain(services: pipeline.Services, plan: CandidatePlan) -> None:
    from campaign_engine.store.candidates import _base_query

    query, key = _base_query(plan)
    keys = key if isinstance(key, tuple) else (key,)
    page = query.order_by(*keys).limit(services.settings.batch_size)
    dialect = services.db.dialect.name
    prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    with services.db.connect() as conn:
        compiled = page.compile(services.db, compile_kwargs={"literal_binds": True})
        print("--- engine's first candidate page ---")
        print(str(compiled))
        for row in conn.exec_driver_sql(prefix + str(compiled)):
            print("   ", row[-1])
        print("--- hand-written SQL ---")
        for row in conn.exec_driver_sql(prefix + LIMIT_SQL):
            print("   ", row[-1])


def _times(values: list[float]) -> str:
    return f"best of {len(values)} ({', '.join(f'{v:.3f}' for v in values)})"


def main() -> None:
    parser = bench_parser(__doc__, 100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of (a), (b) and the dry run each")
    parser.add_argument("--skip-no-pushdown", action="store_true", help="skip (c): it reads every customer")
    parser.add_argument("--profile", action="store_true", help="cProfile one select+evaluate pass and (c)")
    parser.add_argument("--explain", action="store_true", help="print both queries' plans")
    args = parser.parse_args()
    today, now = bench_clock(args.date)

    url = prepare_database(args.database_url, name=f"evaluate_{args.customers}", customers=args.customers,
                           reuse=args.reuse, today=today, now=now)
    print(describe(url))

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        rules_dir, templates_dir = Path(tmp, "rules"), Path(tmp, "templates")
        rules_dir.mkdir()
        (templates_dir / "bench_wealth").mkdir(parents=True)
        (rules_dir / "bench.yaml").write_text(RULE, encoding="utf-8")
        (templates_dir / "bench_wealth" / "sms.txt.j2").write_text(TEMPLATE, encoding="utf-8")
        # Runs read the published rules: the benchmark rule is published (enabled) for the dry runs,
        # and disabled again at the end, so a run of every enabled rule on this database
        # (run_batch.py without --rule) never picks it up.
        print(publish_rules(url, rules_dir=rules_dir, templates_dir=templates_dir, enable=(RULE_ID,)))
        try:
            measure(args, url, today, now, rules_dir, templates_dir)
        finally:
            set_disabled(url, RULE_ID, "benchmark rule: evaluate.py enables it for its own runs")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


def measure(args: Any, url: str, today: Any, now: Any, rules_dir: Path, templates_dir: Path) -> None:
    """(a), (b) and (c) as the module says, on the database with the benchmark rule live."""
    services = open_services(load_settings(database_url=url, rules_dir=rules_dir, templates_dir=templates_dir))
    problems = [p for p in pipeline.validate_rules(services.rulebook, build_environment(templates_dir),
                                                   services.settings) if p.rule == RULE_ID]
    if problems:
        raise SystemExit("the benchmark rule does not validate:\n" + "\n".join(map(str, problems)))
    rule = services.rulebook.rules[RULE_ID]
    prep = prepare_rule(services, rule, today, None)
    plan = prep.plan
    print(f"rule {RULE_ID}: tier in [gold, platinum, diamond], aum >= 500000, risk_rank >= 3, sms_consent; "
          f"pushed into SQL: {len(plan.where)} predicate(s), the engine decides all 4; "
          f"batch {services.settings.batch_size}")
    if args.explain:
        explain(services, plan)

    engine_pass(services, prep, plan)  # warm-up: caches, the engine's ruleset, connection pool
    sql_pass(services)
    engine_runs, sql_runs = [], []
    for _ in range(args.repeat):
        engine_runs.append(engine_pass(services, prep, plan))
        sql_runs.append(sql_pass(services))
    best = min(engine_runs, key=lambda p: p.seconds)
    sql_seconds = min(s for s, _ in sql_runs)
    sql_ids = sql_runs[0][1]
    assert all(sorted(p.matched) == sorted(best.matched) for p in engine_runs)
    assert all(len(ids) == len(sql_ids) for _, ids in sql_runs)

    with services.db.connect() as conn:
        outbox_size = int(conn.exec_driver_sql("SELECT count(*) FROM messages").scalar() or 0)
    dry_runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        report = pipeline.start_run(services, pipeline.ScheduledRunRequest(today, (RULE_ID,), dry_run=True),
                                    now=now).as_dict()
        dry_runs.append(time.perf_counter() - started)
        dry = report["rules"][0]
        if dry["error"]:
            raise SystemExit(f"dry run failed: {dry['error']}")
    dry_seconds = min(dry_runs)

    print(f"(a) engine select+evaluate: {best.seconds:.3f} s {_times([p.seconds for p in engine_runs])}; "
          f"candidates {best.candidates:,} in {best.pages} pages, matched {len(best.matched):,}")
    print(f"      split: {best.split(0)} = {best.split(best.candidates)}")
    print(f"    whole dry run incl. policy and rendering: {dry_seconds:.3f} s {_times(dry_runs)}; "
          f"candidates {dry['candidates']:,}, matched {dry['matched']:,}, would queue {dry['queued']:,}, "
          f"scheduled {dry['scheduled']:,}, failed {dry['failed']:,}, suppressed {dry['suppressed']}; "
          f"outbox held {outbox_size:,} messages (the frequency caps read them)")
    print(f"(b) hand-written SQL: {sql_seconds:.3f} s {_times([s for s, _ in sql_runs])}; "
          f"matched {len(sql_ids):,}")
    assert sorted(best.matched) == sorted(sql_ids), "engine and SQL disagree"
    assert dry["matched"] == len(sql_ids), "dry run and SQL disagree"
    ratio, dry_ratio = best.seconds / sql_seconds, dry_seconds / sql_seconds
    limit_seconds = LIMIT_RATIO * sql_seconds
    verdict = (f"PASS ({ratio / LIMIT_RATIO:.2f}x the limit)" if ratio <= LIMIT_RATIO else
               f"MISSED by {ratio - LIMIT_RATIO:.1f}x ({best.seconds - limit_seconds:.3f} s over "
               f"{limit_seconds:.3f} s = {LIMIT_RATIO:g}x the SQL; {ratio / LIMIT_RATIO:.2f}x the limit)")
    print(f"ratio engine/SQL: select+evaluate {ratio:.1f}x   limit <= {LIMIT_RATIO:g}x   {verdict}; "
          f"whole dry run {dry_ratio:.1f}x (no limit); matched counts equal ({len(sql_ids):,})")
    median = statistics.median(p.seconds for p in engine_runs) / statistics.median(s for s, _ in sql_runs)
    print(f"    (median/median: {median:.1f}x)")

    if not args.skip_no_pushdown:
        everyone = CandidatePlan(subject=rule.trigger.subject)  # where=(): SQL narrows nothing
        full = engine_pass(services, prep, everyone)
        print(f"(c) engine without SQL pushdown: {full.candidates:,} candidates in {full.seconds:.2f} s = "
              f"{full.seconds * 1e6 / full.candidates:.1f} µs/candidate ({full.split(full.candidates)}); "
              f"matched {len(full.matched):,}; {full.seconds / sql_seconds:.0f}x the SQL")
        assert sorted(full.matched) == sorted(sql_ids), "engine without pushdown and SQL disagree"
    if args.profile:
        print("profile (a) select+evaluate:")
        profile_call(engine_pass, services, prep, plan)
        if not args.skip_no_pushdown:
            print("profile (c) without pushdown:")
            profile_call(engine_pass, services, prep, CandidatePlan(subject=rule.trigger.subject))
    services.close()


if __name__ == "__main__":
    main()
