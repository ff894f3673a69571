"""The durable-rules engine decides conditions exactly as explain() does.

Documented semantics: every operator on a missing/null field is false except
`exists: false`; `not` is boolean negation; `any` yields one match per fact even
when several branches hold. Facts reach the engine flattened (flatten_facts),
explain() sees the nested namespaces: both views of the same data are checked.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any, Mapping, Sequence

import pytest

from campaign_engine.evaluation import explain
from campaign_engine.evaluation.engine import RuleEngine
from campaign_engine.facts import flatten_facts
from campaign_engine.rulebook import Rule, parse_rule_text, referenced_fields

SCHEDULED = 'schedule: "0 9 * * *"'


# --------------------------------------------------------------------------- helpers

def make_rule(conditions: str, *, rule_id: str = "r", trigger: str = SCHEDULED) -> Rule:
    """A customer rule from the YAML text of its conditions (indented or flow style)."""
    text = (f"id: {rule_id}\nname: {rule_id}\ncategory: service\n"
            f"trigger:\n  {trigger}\n  subject: customer\n"
            f"conditions:\n{_indent(conditions)}\nchannels: [sms]\ntemplate: t\n")
    rules, problems = parse_rule_text(text, f"{rule_id}.yaml")
    assert problems == [], problems
    return rules[0]


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.strip("\n").splitlines())


def facts(values: Mapping[str, Any]) -> dict[str, Any]:
    """Namespaces from dotted keys: {"customer.tier": "gold"} -> {"customer": {"tier": "gold"}}."""
    out: dict[str, Any] = {"customer": {}, "calendar": {}}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


def engine_verdicts(rule: Rule, namespaces: Sequence[Mapping[str, Any]],
                    engine: RuleEngine | None = None) -> list[bool]:
    engine = engine or RuleEngine([rule])
    fields = referenced_fields(rule.conditions)
    return engine.evaluate(rule.id, [flatten_facts(ns, fields) for ns in namespaces])


def explained(rule: Rule, namespaces: Sequence[Mapping[str, Any]]) -> list[bool]:
    return [explain(rule.conditions, ns).result for ns in namespaces]


def negated(condition: str) -> str:
    return f"not: {{{condition}}}"


# --------------------------------------------------------------------------- every operator

# (case id, condition, trigger, [(state, field values, expected verdict of the condition)])
OPERATOR_CASES: list[tuple[str, str, str, list[tuple[str, dict[str, Any], bool]]]] = [
    ("eq", "customer.tier: gold", SCHEDULED, [
        ("present_true", {"customer.tier": "gold"}, True),
        ("present_false", {"customer.tier": "regular"}, False),
        ("missing", {"customer.tier": None}, False)]),
    ("eq_true", "customer.rate_sensitive: true", SCHEDULED, [
        ("present_true", {"customer.rate_sensitive": True}, True),
        ("present_false", {"customer.rate_sensitive": False}, False),
        ("missing", {"customer.rate_sensitive": None}, False)]),
    ("eq_false", "customer.rate_sensitive: false", SCHEDULED, [
        ("present_true", {"customer.rate_sensitive": False}, True),
        ("present_false", {"customer.rate_sensitive": True}, False),
        ("missing", {"customer.rate_sensitive": None}, False)]),
    ("eq_zero", "customer.days_to_birthday: 0", SCHEDULED, [
        ("present_true", {"customer.days_to_birthday": 0}, True),
        ("present_false", {"customer.days_to_birthday": 1}, False),
        ("missing", {"customer.days_to_birthday": None}, False)]),
    ("ne", "customer.tier: {ne: restricted}", SCHEDULED, [
        ("present_true", {"customer.tier": "gold"}, True),
        ("present_false", {"customer.tier": "restricted"}, False),
        ("missing", {"customer.tier": None}, False)]),
    ("gt", "customer.age: {gt: 60}", SCHEDULED, [
        ("present_true", {"customer.age": 61}, True),
        ("present_false", {"customer.age": 60}, False),
        ("missing", {"customer.age": None}, False)]),
    ("gte", "customer.aum: {gte: 50000}", SCHEDULED, [
        ("present_true", {"customer.aum": Decimal("50000.00")}, True),
        ("present_false", {"customer.aum": Decimal("49999.99")}, False),
        ("missing", {"customer.aum": None}, False)]),
    ("lt", "customer.birth_date: {lt: 1990-01-01}", SCHEDULED, [
        ("present_true", {"customer.birth_date": dt.date(1989, 12, 31)}, True),
        ("present_false", {"customer.birth_date": dt.date(1990, 1, 1)}, False),
        ("missing", {"customer.birth_date": None}, False)]),
    ("lte", "customer.days_to_birthday: {lte: 7}", SCHEDULED, [
        ("present_true", {"customer.days_to_birthday": 7}, True),
        ("present_false", {"customer.days_to_birthday": 8}, False),
        ("missing", {"customer.days_to_birthday": None}, False)]),
    ("in", "customer.tier: {in: [diamond, gold]}", SCHEDULED, [
        ("present_true", {"customer.tier": "gold"}, True),
        ("present_false", {"customer.tier": "regular"}, False),
        ("missing", {"customer.tier": None}, False)]),
    ("not_in", "customer.tier: {not_in: [restricted, regular]}", SCHEDULED, [
        ("present_true", {"customer.tier": "gold"}, True),
        ("present_false", {"customer.tier": "restricted"}, False),
        ("missing", {"customer.tier": None}, False)]),
    ("between", "customer.age: {between: [18, 60]}", SCHEDULED, [
        ("present_true", {"customer.age": 60}, True),
        ("present_low", {"customer.age": 17}, False),
        ("present_high", {"customer.age": 61}, False),
        ("missing", {"customer.age": None}, False)]),
    ("between_dates", "customer.birth_date: {between: [1960-01-01, 1969-12-31]}", SCHEDULED, [
        ("present_true", {"customer.birth_date": dt.date(1964, 2, 29)}, True),
        ("present_false", {"customer.birth_date": dt.date(1970, 1, 1)}, False),
        ("missing", {"customer.birth_date": None}, False)]),
    ("contains", "customer.holds: {contains: TD1Y}", SCHEDULED, [
        ("present_true", {"customer.holds": ["TD1Y", "time_deposit"]}, True),
        ("present_false", {"customer.holds": ["WM-R2-09", "wealth"]}, False),
        ("empty", {"customer.holds": []}, False),
        ("missing", {"customer.holds": None}, False)]),
    ("exists_true", "customer.email: {exists: true}", SCHEDULED, [
        ("present", {"customer.email": "zhang.wei@example.com"}, True),
        ("missing", {"customer.email": None}, False)]),
    ("exists_false", "customer.email: {exists: false}", SCHEDULED, [
        ("present", {"customer.email": "zhang.wei@example.com"}, False),
        ("missing", {"customer.email": None}, True)]),
    ("exists_false_list", "customer.holds: {exists: false}", SCHEDULED, [
        ("empty", {"customer.holds": []}, True),
        ("missing", {"customer.holds": None}, True)]),
    ("ref_eq", "customer.customer_id: {ref: event.customer_id}", "event: large_transaction", [
        ("present_true", {"customer.customer_id": "C1", "event.customer_id": "C1"}, True),
        ("present_false", {"customer.customer_id": "C1", "event.customer_id": "C2"}, False),
        ("missing", {"customer.customer_id": None, "event.customer_id": "C1"}, False),
        ("ref_missing", {"customer.customer_id": "C1", "event.customer_id": None}, False)]),
    ("ref_ne", "customer.city: {ne: {ref: customer.branch}}", SCHEDULED, [
        ("present_true", {"customer.city": "上海", "customer.branch": "北京"}, True),
        ("present_false", {"customer.city": "上海", "customer.branch": "上海"}, False),
        ("missing", {"customer.city": None, "customer.branch": "北京"}, False)]),
    ("ref_gt", "event.amount: {gt: {ref: customer.aum}}", "event: large_transaction", [
        ("present_true", {"event.amount": Decimal("600000"), "customer.aum": Decimal("500000")}, True),
        ("present_false", {"event.amount": Decimal("500000"), "customer.aum": Decimal("500000")}, False),
        ("missing", {"event.amount": None, "customer.aum": Decimal("1")}, False),
        ("ref_missing", {"event.amount": Decimal("1"), "customer.aum": None}, False),
        ("both_missing", {"event.amount": None, "customer.aum": None}, False)]),
    ("ref_lt_date", "customer.birth_date: {lt: {ref: calendar.date}}", SCHEDULED, [
        ("present_true", {"customer.birth_date": dt.date(1960, 3, 15), "calendar.date": dt.date(2026, 3, 10)}, True),
        ("present_false", {"customer.birth_date": dt.date(2026, 3, 10), "calendar.date": dt.date(2026, 3, 10)}, False),
        ("missing", {"customer.birth_date": None, "calendar.date": dt.date(2026, 3, 10)}, False)]),
    ("ref_contains", "customer.holds: {contains: {ref: event.product_type}}", "event: rate_change", [
        ("present_true", {"customer.holds": ["TD1Y", "time_deposit"], "event.product_type": "time_deposit"}, True),
        ("present_false", {"customer.holds": ["WM-R2-09"], "event.product_type": "time_deposit"}, False),
        ("empty", {"customer.holds": [], "event.product_type": "time_deposit"}, False),
        ("missing", {"customer.holds": None, "event.product_type": "time_deposit"}, False),
        ("ref_missing", {"customer.holds": ["TD1Y"], "event.product_type": None}, False),
        ("both_missing", {"customer.holds": None, "event.product_type": None}, False)]),
]

OPERATOR_PARAMS = [
    pytest.param(condition, trigger, values, expected != under_not, under_not,
                 id=f"{case}-{'not-' if under_not else ''}{state}")
    for case, condition, trigger, states in OPERATOR_CASES
    for state, values, expected in states
    for under_not in (False, True)
]


@pytest.mark.parametrize(("condition", "trigger", "values", "expected", "under_not"), OPERATOR_PARAMS)
def test_rule_engine_operator_matches_explain_and_documented_semantics(condition, trigger, values,
                                                                      expected, under_not):
    rule = make_rule(negated(condition) if under_not else condition, trigger=trigger)
    ns = [facts(values)]
    assert explained(rule, ns) == [expected]
    assert engine_verdicts(rule, ns) == [expected]


def test_rule_engine_operators_decide_a_mixed_batch_in_order():
    """All states of one operator in a single batch: verdicts stay with their facts."""
    for case, condition, trigger, states in OPERATOR_CASES:
        rule = make_rule(condition, trigger=trigger)
        batch = [facts(values) for _, values, _ in states] * 3
        expected = [verdict for _, _, verdict in states] * 3
        assert engine_verdicts(rule, batch) == expected, case


# --------------------------------------------------------------------------- key cases, by hand

def test_rule_engine_ne_on_missing_field_is_false():
    rule = make_rule("customer.tier: {ne: restricted}")
    assert engine_verdicts(rule, [facts({"customer.tier": None})]) == [False]


def test_rule_engine_not_eq_on_missing_field_is_true():
    rule = make_rule("not: {customer.tier: restricted}")
    assert engine_verdicts(rule, [facts({"customer.tier": None})]) == [True]


def test_rule_engine_exists_false_on_missing_field_is_true():
    rule = make_rule("customer.email: {exists: false}")
    assert engine_verdicts(rule, [facts({"customer.email": None}), facts({})]) == [True, True]


def test_rule_engine_not_in_on_missing_field_is_false():
    rule = make_rule("customer.tier: {not_in: [restricted]}")
    assert engine_verdicts(rule, [facts({"customer.tier": None})]) == [False]


def test_rule_engine_absent_maturity_never_matches_a_maturity_window():
    rule = make_rule("customer.days_to_birthday: {between: [0, 7]}")
    assert engine_verdicts(rule, [facts({}), facts({"customer.days_to_birthday": None})]) == [False, False]


def test_rule_engine_empty_holds_does_not_contain_but_satisfies_not_contains():
    contains = make_rule("customer.holds: {contains: TD1Y}", rule_id="holds")
    not_contains = make_rule("not: {customer.holds: {contains: TD1Y}}", rule_id="lacks")
    empty = [facts({"customer.holds": []})]
    assert engine_verdicts(contains, empty) == [False]
    assert engine_verdicts(not_contains, empty) == [True]


def test_rule_engine_eq_ref_with_both_fields_missing_is_false():
    rule = make_rule("customer.city: {ref: customer.branch}")
    ns = [facts({"customer.city": None, "customer.branch": None})]
    assert explained(rule, ns) == [False]
    assert engine_verdicts(rule, ns) == [False]


def test_rule_engine_ne_ref_with_ref_missing_is_false():
    rule = make_rule("customer.city: {ne: {ref: customer.branch}}")
    ns = [facts({"customer.city": "上海", "customer.branch": None})]
    assert explained(rule, ns) == [False]
    assert engine_verdicts(rule, ns) == [False]


def test_rule_engine_eq_event_ref_with_both_missing_is_false_on_deposits():
    text = ("id: r\nname: r\ncategory: service\ntrigger:\n  event: rate_change\n  subject: deposit\n"
            "conditions:\n  deposit.product.type: {ref: event.product_type}\n"
            "channels: [sms]\ntemplate: t\n")
    [rule], _ = parse_rule_text(text, "r.yaml")
    ns = [{"customer": {}, "deposit": {"product": None}, "event": {"product_type": None,
                                                                    "product_code": "TD1Y"}}]
    assert explained(rule, ns) == [False]
    assert engine_verdicts(rule, ns) == [False]


@pytest.mark.parametrize("condition", ["customer.holds: {exists: true}",
                                       "not: {customer.holds: {exists: false}}"])
def test_rule_engine_exists_true_on_held_list_is_true(condition):
    rule = make_rule(condition)
    ns = [facts({"customer.holds": ["TD1Y", "time_deposit"]})]
    assert explained(rule, ns) == [True]
    assert engine_verdicts(rule, ns) == [True]


def test_rule_engine_exists_true_on_empty_or_missing_list_is_false():
    rule = make_rule("customer.holds: {exists: true}")
    batch = [facts({"customer.holds": []}), facts({"customer.holds": None})]
    assert engine_verdicts(rule, batch) == explained(rule, batch) == [False, False]


# --------------------------------------------------------------------------- any / several rules

def test_rule_engine_any_with_both_branches_true_gives_one_verdict():
    rule = make_rule("any:\n  - customer.tier: gold\n  - customer.aum: {gte: 50000}")
    both = facts({"customer.tier": "gold", "customer.aum": Decimal("60000")})
    one = facts({"customer.tier": "regular", "customer.aum": Decimal("60000")})
    neither = facts({"customer.tier": "regular", "customer.aum": Decimal("10")})
    assert engine_verdicts(rule, [both]) == [True]
    assert engine_verdicts(rule, [both, one, neither, both]) == [True, True, False, True]


def test_rule_engine_not_any_is_none_of():
    rule = make_rule("not:\n  any:\n    - customer.tier: gold\n    - customer.aum: {gte: 50000}")
    batch = [facts({"customer.tier": "gold", "customer.aum": Decimal("1")}),
             facts({"customer.tier": "regular", "customer.aum": Decimal("1")}),
             facts({"customer.tier": None, "customer.aum": None})]
    assert engine_verdicts(rule, batch) == explained(rule, batch) == [False, True, True]


def test_rule_engine_several_rules_each_get_their_own_verdicts():
    rules = [
        make_rule("customer.tier: {in: [gold, platinum]}", rule_id="tier"),
        make_rule("customer.days_to_birthday: 0", rule_id="birthday"),
        make_rule("customer.aum: {gte: 50000}", rule_id="wealthy"),
    ]
    engine = RuleEngine(rules)
    everything = facts({"customer.tier": "gold", "customer.days_to_birthday": 0,
                        "customer.aum": Decimal("80000")})
    birthday_only = facts({"customer.tier": "regular", "customer.days_to_birthday": 0,
                           "customer.aum": Decimal("100")})
    batch = [everything, birthday_only]
    for rule in rules:
        assert engine_verdicts(rule, batch, engine) == explained(rule, batch)
    assert engine_verdicts(rules[0], batch, engine) == [True, False]
    assert engine_verdicts(rules[1], batch, engine) == [True, True]
    assert engine_verdicts(rules[2], batch, engine) == [True, False]


def test_rule_engine_empty_batch_decides_nothing():
    rule = make_rule("customer.tier: gold")
    assert RuleEngine([rule]).evaluate(rule.id, []) == []


# --------------------------------------------------------------------------- randomized agreement

FIELD_VALUES: dict[str, list[Any]] = {
    "customer.age": [17, 18, 30, 59, 60, 61, 75],
    "customer.risk_rank": [1, 2, 3, 4, 5],
    "customer.aum": [Decimal("0"), Decimal("50000.00"), Decimal("50000.01"), Decimal("1000000"), 50000],
    "customer.tier": ["diamond", "platinum", "gold", "regular", "restricted"],
    "customer.city": ["上海", "北京", "深圳"],
    "customer.branch": ["上海", "北京"],
    "customer.rate_sensitive": [True, False],
    "customer.birth_date": [dt.date(1960, 3, 15), dt.date(1966, 3, 10), dt.date(1990, 1, 1),
                            dt.date(2000, 2, 29)],
    "calendar.date": [dt.date(1966, 3, 10), dt.date(2026, 3, 10)],
    "customer.holds": [[], ["TD1Y"], ["TD1Y", "time_deposit"], ["WM-R2-09", "wealth"], ["上海"]],
}
KIND = {
    "customer.age": "ordered", "customer.risk_rank": "ordered", "customer.aum": "ordered",
    "customer.birth_date": "ordered", "calendar.date": "ordered",
    "customer.tier": "text", "customer.city": "text", "customer.branch": "text",
    "customer.rate_sensitive": "bool", "customer.holds": "list",
}
REFS = {  # field -> (ref field, operators a ref may take there)
    "customer.age": ("customer.risk_rank", ("gt", "gte", "lt", "lte")),
    "customer.birth_date": ("calendar.date", ("gt", "gte", "lt", "lte")),
    "customer.holds": ("customer.city", ("contains",)),
}
EQ_REFS = {"customer.city": "customer.branch", "customer.age": "customer.risk_rank"}


def _literal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def random_predicate(rng: random.Random, *, with_refs_and_lists: bool) -> dict[str, Any]:
    """A random predicate; with_refs_and_lists adds eq/ne refs and `exists` on a list ."""
    field = rng.choice(list(KIND))
    kind = KIND[field]
    pick = lambda: _literal(rng.choice([v for v in FIELD_VALUES[field] if v != []]))  # noqa: E731
    roll = rng.random()
    if roll < 0.1 and (kind != "list" or with_refs_and_lists):
        return {field: {"exists": rng.choice([True, False])}}
    if with_refs_and_lists and field in EQ_REFS and roll < 0.4:
        return {field: {rng.choice(["eq", "ne"]): {"ref": EQ_REFS[field]}}}
    if field in REFS and roll < 0.3:
        other, ops = REFS[field]
        return {field: {rng.choice(ops): {"ref": other}}}
    if kind == "list":
        return {field: {"contains": rng.choice(["TD1Y", "time_deposit", "wealth", "上海"])}}
    if kind == "bool":
        return {field: {rng.choice(["eq", "ne"]): rng.choice([True, False])}}
    ops = ["eq", "ne", "in", "not_in"] + (["gt", "gte", "lt", "lte", "between"] if kind == "ordered" else [])
    op = rng.choice(ops)
    if op in ("in", "not_in"):
        return {field: {op: [pick() for _ in range(rng.randint(1, 3))]}}
    if op == "between":
        low, high = sorted([pick(), pick()])
        return {field: {op: [low, high]}}
    return {field: {op: pick()}}


def random_tree(rng: random.Random, depth: int = 0, *, with_refs_and_lists: bool = False) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.3:
        return random_predicate(rng, with_refs_and_lists=with_refs_and_lists)
    if roll < 0.5:
        return {"not": random_tree(rng, depth + 1, with_refs_and_lists=with_refs_and_lists)}
    key = "all" if roll < 0.75 else "any"
    return {key: [random_tree(rng, depth + 1, with_refs_and_lists=with_refs_and_lists) for _ in range(rng.randint(2, 3))]}


def random_facts(rng: random.Random) -> dict[str, Any]:
    return facts({field: None if rng.random() < 0.2 else rng.choice(values)
                  for field, values in FIELD_VALUES.items()})


def _disagreements(seed: int, trees: int, per_tree: int, *, with_refs_and_lists: bool) -> list[Any]:
    rng = random.Random(seed)
    found = []
    for n in range(trees):
        tree = random_tree(rng, with_refs_and_lists=with_refs_and_lists)
        rule = make_rule(json.dumps(tree, ensure_ascii=False), rule_id=f"random-{n}")
        batch = [random_facts(rng) for _ in range(per_tree)]
        got, want = engine_verdicts(rule, batch), explained(rule, batch)
        found += [(tree, flatten_facts(ns, referenced_fields(rule.conditions)), g, w)
                  for ns, g, w in zip(batch, got, want) if g != w]
    return found


def test_rule_engine_agrees_with_explain_on_random_conditions():
    """Random all/any/not trees over ten fields of mixed types; about 20% of values missing."""
    assert _disagreements(seed=20260310, trees=16, per_tree=500, with_refs_and_lists=False)[:5] == []


def test_rule_engine_agrees_with_explain_on_random_conditions_with_eq_ne_refs_and_list_exists():
    assert _disagreements(seed=20260311, trees=16, per_tree=500, with_refs_and_lists=True)[:5] == []


def test_random_tree_generator_exercises_every_operator():
    """Guard for the randomized test: the trees it draws use every operator and combinator."""
    rng = random.Random(20260310)
    text = json.dumps([random_tree(rng) for _ in range(16)])
    for word in ("all", "any", "not", "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in",
                 "between", "contains", "exists", "ref"):
        assert f'"{word}"' in text, word


# --------------------------------------------------------------------------- big batches

def test_rule_engine_repeated_big_batches_give_identical_results():
    """5 x 5,000 facts: no fact leaks from one batch into the next, no match is lost."""
    rule = make_rule("""
all:
  - customer.days_to_birthday: {between: [0, 7]}
  - any:
      - customer.tier: {in: [diamond, gold]}
      - customer.aum: {gte: 50000}
  - not: {customer.rate_sensitive: false}
""")
    engine = RuleEngine([rule])
    rng = random.Random(7)
    batch = [facts({
        "customer.days_to_birthday": None if rng.random() < 0.1 else rng.randint(0, 14),
        "customer.tier": rng.choice(FIELD_VALUES["customer.tier"]),
        "customer.aum": rng.choice(FIELD_VALUES["customer.aum"] + [None]),
        "customer.rate_sensitive": rng.choice([True, False, None]),
    }) for _ in range(5000)]
    expected = explained(rule, batch)
    assert 500 < sum(expected) < 4500
    runs = [engine_verdicts(rule, batch, engine) for _ in range(5)]
    assert all(run == expected for run in runs)


def test_batch_the_engine_failed_on_leaves_no_facts_behind_for_the_next(monkeypatch):
    """Found at 10M customers: one batch refused mid-way ("asserted twice") left its facts in the
    session, and every later batch of that rule was then decided against them."""
    from campaign_engine.evaluation import engine as engine_module

    rule = make_rule("customer.tier: {in: [gold, platinum]}")
    engine = RuleEngine([rule])
    batch = [facts({"customer.tier": tier}) for tier in ("gold", "regular", "platinum", "regular")]
    real_retract = engine_module.engine.retract_facts
    calls = {"n": 0}

    def retract_fails_once(handle, payload):  # asserted and drained, then refused: facts stay in
        calls["n"] += 1
        if calls["n"] == 1:
            return (2, None)
        return real_retract(handle, payload)

    monkeypatch.setattr(engine_module.engine, "retract_facts", retract_fails_once)
    assert engine_verdicts(rule, batch, engine) == [True, False, True, False]  # retried, fresh session
    for _ in range(3):  # later batches see only their own facts
        assert engine_verdicts(rule, batch, engine) == [True, False, True, False]


def test_batch_failing_twice_fails_the_rule_and_the_next_batch_is_still_right(monkeypatch):
    from campaign_engine.errors import EngineError
    from campaign_engine.evaluation import engine as engine_module

    rule = make_rule("customer.tier: gold")
    engine = RuleEngine([rule])
    batch = [facts({"customer.tier": tier}) for tier in ("gold", "regular")]
    real_retract = engine_module.engine.retract_facts
    failing = {"left": 2}

    def retract(handle, payload):
        if failing["left"]:
            failing["left"] -= 1
            return (2, None)
        return real_retract(handle, payload)

    monkeypatch.setattr(engine_module.engine, "retract_facts", retract)
    with pytest.raises(EngineError, match="asserted twice"):
        engine_verdicts(rule, batch, engine)
    assert engine_verdicts(rule, batch, engine) == [True, False]
