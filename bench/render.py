"""Benchmark: SMS rendering alone, every starter template as its rules use it, in SMS/s per core
(limit: >= 100,000 SMS/s per core).

    .venv/bin/python bench/render.py [--contexts 20000] [--rounds 5] [--date 2026-03-10]
                                     [--holiday-date 2026-02-17] [--seed 1] [--profile]

No database. For every rule of the starter pack (rules/, templates/ as published: the folder read by
campaign_engine.rulebook.loader.load_rulebook) with an SMS channel and an sms.txt.j2:

- the rule is prepared by the pipeline's own pipeline.batch.prepare_rule (run-wide namespaces:
  calendar, rule, product, the event for event rules; derived fields the template reads, such as
  deposit.payout_date);
- `--contexts` demo customers (and for deposit rules their time deposits with their products) come
  from campaign_engine.demo.generator, as the loader writes them; pipeline.batch.fact_sets and
  FactSet.namespaces turn them into the namespaces a message is rendered with (the holdings too,
  from the generator's holdings and deposits). The rules' conditions are not applied: what a
  template reads is the same for a match, and every customer gives a context;
- what is timed is campaign_engine.rendering.render_message(templates, "sms", context,
  signature=..., opt_out=... for marketing rules only), exactly the call of
  pipeline.batch.decide_and_render, over every context, `--rounds` times; the best round is kept.

Prints per rule: the template, SMS/s on the wall clock and SMS per CPU-second of this process (one
process, one thread: that is the rate of one core, the figure the limit is about), µs per SMS;
for comparison the stock jinja2 Template.render of the same sms.txt.j2 alone (render_message may
take a faster path to the same text) and compose_sms + measure_sms alone; mean characters and
segments, and a sample; then the overall rate (every rule's contexts once) beside the limit, PASS or MISSED by how much.
The holiday greeting renders on --holiday-date (春节 by default, its festival branch); the others on --date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine  # noqa: E402

from campaign_engine.bootstrap import load_holidays  # noqa: E402
from campaign_engine.demo.generator import (generate_customers, generate_deposits, generate_holdings,  # noqa: E402
                                            generate_products)
from campaign_engine.events import parse_event  # noqa: E402
from campaign_engine.errors import TemplateError  # noqa: E402
from campaign_engine.pipeline.batch import fact_sets, prepare_rule  # noqa: E402
from campaign_engine.pipeline.services import Services  # noqa: E402
from campaign_engine.rendering import compose_sms, measure_sms, render_message  # noqa: E402
from campaign_engine.rulebook.loader import load_rulebook  # noqa: E402
from campaign_engine.settings import load_settings  # noqa: E402
from campaign_engine.store.candidates import Candidate  # noqa: E402
from campaign_engine.vocabulary import Channel, EventType, SubjectType  # noqa: E402

LIMIT = 100_000  # SMS per second per core
SMS_PART = "sms.txt.j2"


class GeneratorStore:
    """The one store call prepare_rule makes (a rule's `product`), from the demo catalogue."""

    def __init__(self) -> None:
        self.products = {p["product_code"]: p for p in generate_products()}

    def load_product(self, code: str) -> dict[str, Any] | None:
        return self.products.get(code)


def event_for(kind: EventType, today: dt.date, customer: dict[str, Any]) -> Any:
    """A realistic event of each kind (the payloads of bench/event.py and the API's examples)."""
    if kind is EventType.RATE_CHANGE:
        return parse_event(kind, {"event_id": "bench-render-rc", "product_type": "time_deposit",
                                  "old_rate": 1.65, "new_rate": 1.45, "effective_date": today.isoformat()})
    if kind is EventType.PRODUCT_LAUNCH:
        return parse_event(kind, {"event_id": "bench-render-pl", "launch_date": today.isoformat(),
                                  "product": {"code": "WM-R3-02", "name": "睿享增利理财2年", "type": "wealth",
                                              "risk_level": "R3", "rate": 3.35, "min_amount": 10000}})
    if kind is EventType.LARGE_TRANSACTION:
        return parse_event(kind, {"event_id": "bench-render-lt", "customer_id": customer["customer_id"],
                                  "account_no": "6222020200112345678", "amount": 800000, "direction": "in",
                                  "occurred_at": f"{today.isoformat()}T09:30:00+08:00"})
    raise SystemExit(f"no benchmark payload for event {kind}")


def demo_rows(n: int, seed: int, today: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                           dict[str, list[str]]]:
    """n customers, their deposits, and what each holds (product codes and types, as load_holds)."""
    customers = list(generate_customers(n, seed=seed, today=today))
    deposits = list(generate_deposits(n, seed=seed, today=today))
    kinds = {p["product_code"]: p["type"] for p in generate_products()}
    holds: dict[str, set[str]] = defaultdict(set)
    for row in [*generate_holdings(n, seed=seed), *deposits]:
        if row.get("product_code"):
            holds[row["customer_id"]].update(filter(None, (row["product_code"], kinds.get(row["product_code"]))))
    return customers, deposits, {k: sorted(v) for k, v in holds.items()}


def best_of(rounds: int, fn: Callable[[], Any]) -> tuple[float, float]:
    """Best wall and best CPU seconds of fn over rounds."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


def verdict(rate: float) -> str:
    if rate >= LIMIT:
        return f"PASS ({rate / LIMIT:.2f}x the limit)"
    return f"MISSED by {LIMIT - rate:,.0f} SMS/s ({100 * (1 - rate / LIMIT):.0f} % short, {rate / LIMIT:.2f}x the limit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--contexts", type=int, default=20_000, help="demo customers (contexts) per rule")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--date", default="2026-03-10")
    parser.add_argument("--holiday-date", default="2026-02-17", help="run date of holiday-greeting (春节)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile one round of every rule's rendering")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    import jinja2
    print(f"machine: {machine()}; load average {load}; Jinja2 {jinja2.__version__}; no database")

    settings = load_settings(rules_dir=ROOT / "rules", templates_dir=ROOT / "templates")
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    if rulebook.broken:
        raise SystemExit(f"the starter pack does not load: {rulebook.broken}")
    store = GeneratorStore()
    services = Services(settings=settings, store=store, rulebook=rulebook,  # type: ignore[arg-type]
                        engine=None, holidays=load_holidays(settings.holidays_file), executor=None)  # type: ignore[arg-type]
    rules = [r for r in sorted(rulebook.rules.values(), key=lambda r: r.id)
             if Channel.SMS in r.channels and SMS_PART in rulebook.template_set(r.id).templates]
    print(f"starter pack: {len(rulebook.rules)} rules, {len(rules)} with an SMS channel and {SMS_PART}; "
          f"{args.contexts:,} demo contexts each (seed {args.seed}); best of {args.rounds} rounds; "
          f"signature {settings.sms_signature!r}, opt-out {settings.sms_opt_out!r} on marketing rules")

    data: dict[dt.date, Any] = {}
    plans = []
    for rule in rules:
        today = dt.date.fromisoformat(args.holiday_date if rule.id == "holiday-greeting" else args.date)
        if today not in data:
            data[today] = demo_rows(args.contexts, args.seed, today)
        customers, deposits, holds = data[today]
        event = event_for(rule.trigger.event, today, customers[0]) if rule.trigger.event is not None else None
        prep = prepare_rule(services, rule, today, event)
        if rule.trigger.subject is SubjectType.DEPOSIT:
            by_id = {c["customer_id"]: c for c in customers}
            products = store.products
            rows = [Candidate(by_id[d["customer_id"]], d, products.get(d["product_code"]))
                    for d in deposits[:args.contexts]]
        else:
            rows = [Candidate(c) for c in customers]
        contexts = [fs.namespaces(prep.shared) for fs in fact_sets(rows, holds, today, prep.derive)]
        opt_out = settings.sms_opt_out if rule.is_marketing else None
        plans.append((rule, today, prep, contexts, opt_out))

    signature = settings.sms_signature
    total_n, total_wall, total_cpu = 0, 0.0, 0.0
    print(f"  {'rule':28} {'template':18} {'date':10} {'SMS/s wall':>11} {'SMS/CPU-s':>10} {'µs/SMS':>7} "
          f"{'Template.render µs':>17} {'compose+measure µs':>18} {'chars':>6} {'segments':>8}  verdict (per core)")
    samples = []
    for rule, today, prep, contexts, opt_out in plans:
        templates = prep.templates
        failures: list[str] = []

        def render_all() -> list[Any]:
            out = []
            for ctx in contexts:
                try:
                    out.append(render_message(templates, "sms", ctx, signature=signature, opt_out=opt_out))
                except TemplateError as exc:  # counted, as a run counts a failed message
                    failures.append(str(exc))
            return out

        messages = render_all()  # warm-up (and the results to check)
        if failures:
            print(f"  {rule.id}: {len(failures):,} of {len(contexts):,} failed to render, e.g. {failures[0]}")
        failures.clear()
        wall, cpu = best_of(args.rounds, render_all)
        # for comparison: the stock Jinja API on the same part, and the SMS composition alone
        template = templates.templates[SMS_PART]
        bodies = [template.render(ctx) for ctx in contexts]
        jinja_wall, _ = best_of(args.rounds, lambda: [template.render(ctx) for ctx in contexts])
        tail_wall, _ = best_of(args.rounds, lambda: [measure_sms(compose_sms(b, signature=signature, opt_out=opt_out))
                                                     for b in bodies])
        n = len(contexts)
        total_n, total_wall, total_cpu = total_n + n, total_wall + wall, total_cpu + cpu
        chars = sum(m.sms.chars for m in messages) / len(messages) if messages else 0
        segments = sum(m.sms.segments for m in messages) / len(messages) if messages else 0
        rate_cpu = n / cpu if cpu > 0 else float("inf")
        print(f"  {rule.id:28} {templates.name:18} {today.isoformat():10} {n / wall:11,.0f} {rate_cpu:10,.0f} "
              f"{wall * 1e6 / n:7.2f} {jinja_wall * 1e6 / n:17.2f} {tail_wall * 1e6 / n:18.2f} {chars:6.1f} "
              f"{segments:8.2f}  {verdict(rate_cpu)}")
        if messages:
            samples.append((rule.id, messages[0].body))

    rate_cpu, rate_wall = total_n / total_cpu, total_n / total_wall
    print(f"overall: {total_n:,} SMS in {total_wall:.3f} s wall ({rate_wall:,.0f} SMS/s), {total_cpu:.3f} CPU-s in "
          f"one process and thread = {rate_cpu:,.0f} SMS/s per core; limit >= {LIMIT:,} SMS/s per core: "
          f"{verdict(rate_cpu)}")
    print("samples:")
    for rule_id, body in samples:
        print(f"  {rule_id}: {body}")
    if args.profile:
        from common import profile_call

        def every_rule() -> None:
            for rule, _, prep, contexts, opt_out in plans:
                for ctx in contexts:
                    try:
                        render_message(prep.templates, "sms", ctx, signature=signature, opt_out=opt_out)
                    except TemplateError:
                        pass
        profile_call(every_rule)


if __name__ == "__main__":
    main()
