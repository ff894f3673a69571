"""Candidate plans: what SQL reads for a rule on a day (a superset of the matches).

Date windows become indexed ranges, run-wide conditions (event, calendar) are
decided once, refs to the event become literals, simple stored-column
predicates go into the WHERE clause; anything else is left to the engine.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from campaign_engine.facts import age, birth_mmdd, days_to_birthday
from campaign_engine.rulebook import AnyOf, Predicate, Rule, parse_rule_text
from campaign_engine.selection.plan import CandidatePlan, plan_candidates
from campaign_engine.vocabulary import SubjectType

D = dt.date
TODAY = D(2026, 3, 10)
SCHEDULED = 'schedule: "0 9 * * *"'


def make_rule(conditions: str, *, trigger: str = SCHEDULED, subject: str = "customer") -> Rule:
    text = (f"id: r\nname: r\ncategory: marketing\n"
            f"trigger:\n  {trigger}\n  subject: {subject}\n"
            f"conditions:\n{_indent(conditions)}\nchannels: [sms]\ntemplate: t\n")
    rules, problems = parse_rule_text(text, "r.yaml")
    assert problems == [], problems
    return rules[0]


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.strip("\n").splitlines())


def calendar(day: dt.date, holiday: str | None = None) -> dict[str, Any]:
    return {"calendar": {"date": day, "weekday": day.isoweekday(), "holiday": holiday}}


def plan_for(conditions: str, today: dt.date = TODAY, constants: dict[str, Any] | None = None,
             **rule_options: str) -> CandidatePlan:
    return plan_candidates(make_rule(conditions, **rule_options), today,
                           constants if constants is not None else calendar(today))


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


# --------------------------------------------------------------------------- birthdays

def test_plan_candidates_birthday_today_selects_todays_mmdd():
    plan = plan_for("customer.days_to_birthday: 0")
    assert plan.birth_mmdd == {310}
    assert not plan.never


def test_plan_candidates_birthday_on_feb28_of_common_year_includes_feb29():
    assert plan_for("customer.days_to_birthday: 0", D(2026, 2, 28)).birth_mmdd == {228, 229}


def test_plan_candidates_birthday_on_feb28_of_leap_year_excludes_feb29():
    assert plan_for("customer.days_to_birthday: 0", D(2028, 2, 28)).birth_mmdd == {228}


def test_plan_candidates_birthday_week_window():
    plan = plan_for("customer.days_to_birthday: {between: [0, 7]}", D(2026, 12, 28))
    assert plan.birth_mmdd == {1228, 1229, 1230, 1231, 101, 102, 103, 104}


def test_plan_candidates_birthday_bounds_of_several_conjuncts_intersect():
    plan = plan_for("all:\n  - customer.days_to_birthday: {gte: 2}\n  - customer.days_to_birthday: {lte: 3}")
    assert plan.birth_mmdd == {312, 313}


def test_plan_candidates_birthday_window_never_misses_a_birthday():
    """Every birth date within 0..7 days of its birthday is read, every day of a leap year."""
    births = [D(1980, 2, 29), D(1981, 2, 28), D(1981, 3, 1), D(1990, 12, 31), D(1980, 1, 1)]
    rule = make_rule("customer.days_to_birthday: {between: [0, 7]}")
    missed = []
    for today in _days(D(2027, 12, 1), D(2028, 12, 31)):
        plan = plan_candidates(rule, today, calendar(today))
        missed += [(today, b) for b in births
                   if days_to_birthday(b, today) <= 7 and birth_mmdd(b) not in plan.birth_mmdd]
    assert missed == []


# --------------------------------------------------------------------------- maturities and ages

def test_plan_candidates_maturity_week_window():
    plan = plan_for("all:\n  - deposit.days_to_maturity: {between: [0, 7]}\n  - deposit.auto_renew: false",
                    subject="deposit")
    assert plan.subject is SubjectType.DEPOSIT
    assert (plan.maturity_from, plan.maturity_to) == (D(2026, 3, 10), D(2026, 3, 17))
    assert plan.where == (Predicate("deposit.auto_renew", "eq", False),)


def test_plan_candidates_maturity_upper_bound_only_reads_matured_deposits_too():
    plan = plan_for("deposit.days_to_maturity: {lte: 3}", subject="deposit")
    assert (plan.maturity_from, plan.maturity_to) == (None, D(2026, 3, 13))


def test_plan_candidates_empty_maturity_window_reads_nothing():
    plan = plan_for("all:\n  - deposit.days_to_maturity: {gte: 5}\n  - deposit.days_to_maturity: {lte: 3}",
                    subject="deposit")
    assert plan.never


def test_plan_candidates_age_60_admits_someone_turning_60_today():
    plan = plan_for("customer.age: {gte: 60}")
    born = D(1966, 3, 10)
    assert age(born, TODAY) == 60
    assert plan.birth_date_to is not None and born <= plan.birth_date_to
    assert plan.birth_date_from is None


def test_plan_candidates_age_admits_feb29_birth_turning_older_on_feb28():
    today, born = D(2025, 2, 28), D(1964, 2, 29)
    assert age(born, today) == 61
    plan = plan_for("customer.age: {gte: 61}", today)
    assert plan.birth_date_to is not None and born <= plan.birth_date_to


def test_plan_candidates_age_60_admits_feb29_birth():
    today, born = D(2028, 2, 29), D(1968, 2, 29)
    assert age(born, today) == 60
    plan = plan_for("customer.age: {gte: 60}", today)
    assert plan.birth_date_to is not None and born <= plan.birth_date_to


@pytest.mark.parametrize(("low", "high"), [(60, None), (61, None), (None, 30), (18, 60), (60, 60)])
def test_plan_candidates_age_range_never_misses_a_customer(low, high):
    """For every day of 2025-2028, births around both edges (29 Feb included) inside the age range are read."""
    parts = ([f"  - customer.age: {{gte: {low}}}"] if low is not None else []) + \
            ([f"  - customer.age: {{lte: {high}}}"] if high is not None else [])
    rule = make_rule("all:\n" + "\n".join(parts))
    missed = []
    for today in _days(D(2025, 1, 1), D(2028, 12, 31)):
        plan = plan_candidates(rule, today, calendar(today))
        edges = [e for e in (low, high + 1 if high is not None else None) if e is not None]
        births = [today.replace(year=today.year - e, day=1) + dt.timedelta(days=shift)
                  for e in edges for shift in range(-40, 40)]
        births += [D(y, 2, 29) for e in edges for y in range(today.year - e - 4, today.year - e + 5)
                   if y % 4 == 0]
        for born in births:
            years = age(born, today)
            if (low is None or years >= low) and (high is None or years <= high):
                if (plan.birth_date_to and born > plan.birth_date_to) or \
                        (plan.birth_date_from and born < plan.birth_date_from):
                    missed.append((today, born))
    assert missed[:5] == []


# --------------------------------------------------------------------------- run-wide conditions

HOLIDAY_RULE = """
all:
  - calendar.holiday: {in: [春节, 中秋节]}
  - customer.tier: {ne: restricted}
"""


def test_plan_candidates_holiday_rule_on_ordinary_day_reads_nothing():
    assert plan_for(HOLIDAY_RULE, D(2026, 3, 10), calendar(D(2026, 3, 10))).never


def test_plan_candidates_holiday_rule_on_the_holiday_reads_candidates():
    plan = plan_for(HOLIDAY_RULE, D(2026, 2, 17), calendar(D(2026, 2, 17), "春节"))
    assert not plan.never
    assert plan.where == (Predicate("customer.tier", "ne", "restricted"),)


def test_plan_candidates_weekday_condition_decided_once():
    rule = "all:\n  - calendar.weekday: {in: [1, 2, 3, 4, 5]}\n  - customer.tier: gold"
    assert not plan_for(rule, D(2026, 3, 10)).never  # a Tuesday
    assert plan_for(rule, D(2026, 3, 14)).never  # a Saturday


def test_plan_candidates_event_ref_becomes_a_literal():
    plan = plan_for("customer.holds: {contains: {ref: event.product_type}}",
                    constants={"event": {"product_type": "time_deposit", "product_code": None}},
                    trigger="event: rate_change")
    assert not plan.never
    assert plan.where == (Predicate("customer.holds", "contains", "time_deposit"),)


def test_plan_candidates_missing_event_value_reads_nothing():
    plan = plan_for("customer.holds: {contains: {ref: event.product_type}}",
                    constants={"event": {"product_type": None, "product_code": "TD1Y"}},
                    trigger="event: rate_change")
    assert plan.never


def test_plan_candidates_any_over_event_refs_keeps_the_branch_with_a_value():
    plan = plan_for("""
any:
  - customer.holds: {contains: {ref: event.product_type}}
  - customer.holds: {contains: {ref: event.product_code}}
""", constants={"event": {"product_type": None, "product_code": "TD1Y"}}, trigger="event: rate_change")
    assert not plan.never
    assert plan.where == (Predicate("customer.holds", "contains", "TD1Y"),)


def test_plan_candidates_false_event_condition_reads_nothing():
    rule = "all:\n  - customer.tier: gold\n  - event.amount: {gte: 500000}"
    event = {"event": {"customer_id": "C1", "amount": Decimal("1000.00"), "direction": "in"}}
    assert plan_for(rule, constants=event, trigger="event: large_transaction").never


def test_plan_candidates_large_transaction_reads_the_events_customer():
    plan = plan_for("""
all:
  - customer.customer_id: {ref: event.customer_id}
  - event.amount: {gte: 500000}
  - event.direction: in
""", constants={"event": {"customer_id": "C00000001", "amount": Decimal("600000.00"), "direction": "in"}},
        trigger="event: large_transaction")
    assert not plan.never
    assert plan.customer_id == "C00000001"
    assert plan.where == (Predicate("customer.customer_id", "eq", "C00000001"),)


# --------------------------------------------------------------------------- WHERE pushdown

def test_plan_candidates_not_conjuncts_are_left_to_the_engine():
    plan = plan_for("all:\n  - not: {customer.tier: gold}\n  - customer.city: 上海")
    assert plan.where == (Predicate("customer.city", "eq", "上海"),)
    assert not plan.never


def test_plan_candidates_risk_rank_becomes_risk_levels():
    plan = plan_for("customer.risk_rank: {gte: 3}")
    assert plan.where == (Predicate("customer.risk_level", "in", ("C3", "C4", "C5")),)


def test_plan_candidates_risk_rank_ref_to_launched_product_becomes_risk_levels():
    plan = plan_for("customer.risk_rank: {gte: {ref: event.product.risk_rank}}",
                    constants={"event": {"product": {"risk_rank": 4}}}, trigger="event: product_launch")
    assert plan.where == (Predicate("customer.risk_level", "in", ("C4", "C5")),)


def test_plan_candidates_impossible_risk_rank_reads_nothing():
    assert plan_for("customer.risk_rank: {gt: 5}").never


def test_plan_candidates_any_of_pushable_predicates_is_pushed_whole():
    plan = plan_for("any:\n  - customer.tier: gold\n  - customer.aum: {gte: 50000}")
    assert plan.where == (AnyOf((Predicate("customer.tier", "eq", "gold"),
                                 Predicate("customer.aum", "gte", 50000.0))),)


def test_plan_candidates_any_with_an_unpushable_branch_is_not_pushed():
    plan = plan_for("any:\n  - customer.tier: gold\n  - customer.sms_consent: true")
    assert plan.where == ()
    assert not plan.never


def test_plan_candidates_all_inside_any_keeps_only_pushable_parts():
    plan = plan_for("""
any:
  - all: [{customer.tier: gold}, {customer.days_to_birthday: 0}]
  - customer.city: 上海
""")
    assert plan.where == (AnyOf((Predicate("customer.tier", "eq", "gold"),
                                 Predicate("customer.city", "eq", "上海"))),)


def test_plan_candidates_derived_and_consent_fields_are_not_pushed():
    plan = plan_for("all:\n  - customer.sms_consent: true\n  - customer.tier: {in: [金, 白金]}")
    assert plan.where == (Predicate("customer.tier", "in", ("gold", "platinum")),)


def test_plan_candidates_nested_all_is_flattened():
    plan = plan_for("""
all:
  - all:
      - customer.days_to_birthday: 0
      - customer.tier: gold
  - customer.city: 上海
""")
    assert plan.birth_mmdd == {310}
    assert plan.where == (Predicate("customer.tier", "eq", "gold"), Predicate("customer.city", "eq", "上海"))
