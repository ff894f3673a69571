"""Benchmark: the effect report of one rule over 1,000,000 contacts and 200,000 conversions (issue #11).

    .venv/bin/python bench/effect_report.py [--contacts 1000000] [--conversions 200000]
        [--other-messages 1000000] [--database-url postgresql://postgres@127.0.0.1/bench_effect]
        [--reuse] [--rounds 5] [--explain]

PostgreSQL only (the target: under 2 s). The data is made in the database with generate_series:
one customer per contact, the rule's contacts written over 30 days (one run a day, each run's
rows together, as a run writes them) with a 10 % holdout (held_out rows) and the rest sent a few
minutes after they were due, `--other-messages` messages of other rules beside them (the outbox
is shared), and conversions of random customers at random times over 45 days (60 % deposit_open,
the rule's goal; the rest other types). Then VACUUM ANALYZE, as autovacuum would within a minute
of such a load.

Times, best and median of --rounds: RunStore.effect_counts (its two aggregate queries) and the whole
pipeline.effect.effect_report (the same plus the report's statistics) over the 30 days; and one
run's report (a day's contacts through ix_messages_run_id). --explain prints the plan with
EXPLAIN (ANALYZE, BUFFERS). The database must be named bench*; it is emptied unless --reuse
finds the same sizes loaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import _empty_postgres, analyze, describe  # noqa: E402

from sqlalchemy import make_url, text  # noqa: E402

from campaign_engine.pipeline.effect import EffectRequest, effect_report  # noqa: E402
from campaign_engine.rulebook.loader import Rulebook, parse_rule_text  # noqa: E402
from campaign_engine.settings import load_settings  # noqa: E402
from campaign_engine.store.db import make_engine, upgrade_database  # noqa: E402
from campaign_engine.store.sql_store import SqlStore  # noqa: E402

RULE_ID = "effect-bench"
RULE = f"""
id: {RULE_ID}
name: 定期存款开户营销
category: marketing
trigger: {{schedule: "0 9 * * *"}}
conditions: {{customer.tier: gold}}
channels: [sms]
template: greet
holdout: {{percent: 10}}
goal: {{type: deposit_open, within_days: 14}}
"""
START = dt.date(2026, 3, 1)
DAYS = 30
NOW = dt.datetime(2026, 5, 1, 2, 0, tzinfo=dt.timezone.utc)  # every window has closed


def load(engine, contacts: int, conversions: int, others: int) -> None:  # type: ignore[no-untyped-def]
    """Customers, runs, the rule's contacts, other rules' messages and conversions, made in SQL."""
    customers = max(contacts, others)
    statements = [
        f"""INSERT INTO customers (customer_id, name, tier, aum, rate_sensitive, do_not_contact, language,
                updated_at, birthday_calendar)
            SELECT 'C' || lpad(i::text, 8, '0'), '客户' || i, 'gold', 100000, false, false, 'zh', now(), 'solar'
            FROM generate_series(1, {customers}) AS i""",
        f"""INSERT INTO campaign_runs (id, kind, run_date, status, started_at, dry_run)
            SELECT d, 'scheduled', DATE '{START}' + d - 1, 'completed', TIMESTAMPTZ '{START} 01:00+00' + (d - 1)
                   * INTERVAL '1 day', false
            FROM generate_series(1, {DAYS}) AS d""",
        f"""INSERT INTO messages (dedupe_key, run_id, rule_id, category, priority, customer_id, subject_type,
                subject_id, channel, recipient, status, body, sms_segments, created_at, due_at, sent_at,
                held_out_by, attempts, retries)
            SELECT '{RULE_ID}|customer|' || c || '|date:' || d, d + 1, '{RULE_ID}',
                   'marketing', 50, c, 'customer', c, 'sms',
                   CASE WHEN h THEN NULL ELSE '1380013' || lpad((i % 10000)::text, 4, '0') END,
                   CASE WHEN h THEN 'held_out' WHEN i % 10 < 7 THEN 'delivered' ELSE 'sent' END,
                   CASE WHEN h THEN NULL ELSE '【XX银行】尊敬的客户，三年期定期存款年利率2.35%，欢迎到网点办理。回复TD退订' END,
                   CASE WHEN h THEN NULL ELSE 1 END, t, t,
                   CASE WHEN h THEN NULL ELSE t + (i % 30) * INTERVAL '1 minute' END,
                   CASE WHEN h THEN 'rule' END, CASE WHEN h THEN 0 ELSE 1 END, 0
            FROM (SELECT i, 'C' || lpad(i::text, 8, '0') AS c, abs(hashtext('C' || i)) % 100 < 10 AS h, d,
                         TIMESTAMPTZ '{START} 01:00+00' + d * INTERVAL '1 day' AS t
                  FROM (SELECT i, (i - 1) * {DAYS} / {contacts} AS d FROM generate_series(1, {contacts}) AS i) AS n
                  ) AS s""",
        f"""INSERT INTO messages (dedupe_key, run_id, rule_id, category, priority, customer_id, subject_type,
                subject_id, channel, recipient, status, body, sms_segments, created_at, due_at, sent_at,
                attempts, retries)
            SELECT 'other-' || (i % 5) || '|customer|' || c, d + 1, 'other-' || (i % 5), 'marketing', 40,
                   c, 'customer', c, 'sms', '13900000000', 'delivered', '【XX银行】其他营销短信，回复TD退订', 1,
                   t, t, t, 1, 0
            FROM (SELECT i, 'C' || lpad(i::text, 8, '0') AS c, d,
                         TIMESTAMPTZ '{START} 01:00+00' + d * INTERVAL '1 day' AS t
                  FROM (SELECT i, (i - 1) * {DAYS} / {max(others, 1)} AS d FROM generate_series(1, {others}) AS i)
                       AS n) AS s""",
        f"""INSERT INTO conversions (conversion_id, customer_id, type, product_code, amount, occurred_at, source,
                recorded_at)
            SELECT 'bench-' || n, 'C' || lpad((1 + floor(random() * {contacts}))::int::text, 8, '0'),
                   CASE WHEN n % 10 < 6 THEN 'deposit_open' WHEN n % 10 < 8 THEN 'deposit_renewal'
                        ELSE 'holding_increase' END,
                   NULL, round((1000 + random() * 99000)::numeric, 2),
                   TIMESTAMPTZ '{START} 00:00+00' + random() * INTERVAL '45 days', 'bench', now()
            FROM generate_series(1, {conversions}) AS n""",
        "SELECT setval(pg_get_serial_sequence('campaign_runs', 'id'), (SELECT max(id) FROM campaign_runs))",
    ]
    with engine.begin() as conn:
        for statement in statements:
            started = time.perf_counter()
            conn.execute(text(statement))
            print(f"  {statement.split()[2]:<14} {time.perf_counter() - started:6.1f} s")


def loaded(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM messages WHERE rule_id = :r"), {"r": RULE_ID}).scalar_one(),
                conn.execute(text("SELECT count(*) FROM conversions")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM messages WHERE rule_id <> :r"), {"r": RULE_ID}).scalar_one())


def timed(fn, rounds: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    seconds, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return min(seconds), statistics.median(seconds), result


def explain(engine, store: SqlStore, goal) -> None:  # type: ignore[no-untyped-def]
    """The aggregates' plans, with EXPLAIN (ANALYZE, BUFFERS)."""
    from campaign_engine.store import effect

    captured: list[str] = []
    with engine.connect() as conn:
        original = conn.execute

        def capture(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
            compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            captured.append(str(compiled))
            return original(statement, *args, **kwargs)

        conn.execute = capture  # type: ignore[method-assign]
        effect.effect_counts(conn, rule_id=RULE_ID, goal=goal, holdout_group="rule", since=None, until=None,
                             run_id=None, now=NOW)
        conn.execute = original  # type: ignore[method-assign]
        for statement in captured:
            for line in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement).scalars():
                print("  " + line)
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=200_000)
    parser.add_argument("--other-messages", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1/bench_effect")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    url = args.database_url
    if make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("the effect report benchmark runs on PostgreSQL (its target); pass a postgresql:// URL")
    sizes = (args.contacts, args.conversions, args.other_messages)
    engine = make_engine(url)
    reuse = False
    if args.reuse:
        upgrade_database(url)
        reuse = loaded(engine) == sizes
    if not reuse:
        engine.dispose()
        _empty_postgres(url)
        upgrade_database(url)
        engine = make_engine(url)
        print(f"loading {args.contacts:,} contacts, {args.conversions:,} conversions, "
              f"{args.other_messages:,} other messages:")
        started = time.perf_counter()
        load(engine, *sizes)
        analyze(url)
        print(f"  loaded and analyzed in {time.perf_counter() - started:.1f} s")
    else:
        print("data: reused")
    print(describe(url))

    [rule], problems = parse_rule_text(RULE, "bench.yaml")
    assert not problems and rule.goal is not None
    settings = load_settings(database_url=url)
    store = SqlStore(engine)
    services = SimpleNamespace(settings=settings, store=store, rulebook=Rulebook({rule.id: rule}))

    def counts():  # type: ignore[no-untyped-def]
        return store.effect_counts(rule_id=RULE_ID, goal=rule.goal, holdout_group="rule", since=None, until=None,
                                   run_id=None, now=NOW)

    best, median, result = timed(counts, args.rounds)
    print(f"effect_counts, {DAYS} days: best {best:.3f} s, median {median:.3f} s "
          f"(treated {result.treated.n:,}, holdout {result.holdout.n:,}, "  # type: ignore[attr-defined]
          f"converted {result.treated.conversions:,} + {result.holdout.conversions:,})")  # type: ignore[attr-defined]
    request = EffectRequest(RULE_ID, START, START + dt.timedelta(days=DAYS - 1))
    best, median, report = timed(lambda: effect_report(services, request, now=NOW), args.rounds)  # type: ignore[arg-type]
    print(f"effect_report, {DAYS} days: best {best:.3f} s, median {median:.3f} s")
    print("  " + str(report.as_dict()))  # type: ignore[attr-defined]
    one_run = EffectRequest(RULE_ID, run_id=1)
    best, median, _ = timed(lambda: effect_report(services, one_run, now=NOW), args.rounds)  # type: ignore[arg-type]
    print(f"effect_report, one run ({args.contacts // DAYS:,} contacts): best {best:.3f} s, median {median:.3f} s")
    if args.explain:
        explain(engine, store, rule.goal)
    store.close()


if __name__ == "__main__":
    main()
