"""Holdouts in a run (issue #11): decided after the whole contact policy, recorded as held_out rows
that are never sent, that take the frequency-cap slot, and that run reports count."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from campaign_engine.effect.assignment import held_out, holdout_salt
from campaign_engine.errors import ConfigError
from campaign_engine.rulebook.loader import parse_rule_text
from campaign_engine.rulebook.model import Goal, Holdout
from campaign_engine.settings import ControlGroup, load_settings
from campaign_engine.store import claims
from campaign_engine.vocabulary import ConversionType
from factories import NOW, TODAY, customer, rule_yaml, run_day

CUSTOMERS = [f"C{i:05d}" for i in range(1, 201)]


def counts(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == rule_id)


def held(rule_id: str, percent: float, ids=CUSTOMERS, salt: str | None = None) -> set[str]:
    return {c for c in ids if held_out(c, holdout_salt(rule_id, salt), percent)}


def in_and_out(rule_id: str, percent: float) -> tuple[str, str]:
    """A customer id held out of the rule, and one that is not."""
    out = sorted(held(rule_id, percent))[0]
    kept = sorted(set(CUSTOMERS) - held(rule_id, percent))[0]
    return out, kept


# --------------------------------------------------------------------------- rule files and settings


def test_rulebook_holdout_and_goal_parse_into_the_rule():
    [rule], problems = parse_rule_text(rule_yaml("r", "  customer.tier: gold\n", extra=(
        "holdout: {percent: 12.5, salt: spring}\n"
        "goal: {type: product_purchase, product_type: fund, min_amount: 1000, within_days: 30}\n")), "r.yaml")
    assert problems == []
    assert rule.holdout == Holdout(12.5, "spring")
    assert rule.goal == Goal(ConversionType.PRODUCT_PURCHASE, 30, "fund", None, rule.goal.min_amount)
    assert str(rule.goal.min_amount) == "1000"
    [plain], _ = parse_rule_text(rule_yaml("p", "  customer.tier: gold\n", extra="goal: {type: deposit_open}\n"),
                                 "p.yaml")
    assert plain.holdout is None and plain.goal == Goal(ConversionType.DEPOSIT_OPEN, 14)


@pytest.mark.parametrize(("extra", "field", "reason"), [
    ("holdout: {percent: 0}\n", "holdout.percent", "1 to 50 percent"),
    ("holdout: {percent: 51}\n", "holdout.percent", "1 to 50 percent"),
    ("holdout: {percent: 10.001}\n", "holdout.percent", "two decimals"),
    ("holdout: {percent: 10, sal: x}\n", "holdout.sal", "did you mean 'salt'"),
    ("holdout: {salt: x}\n", "holdout.percent", "required"),
    ("holdout: {percent: 10, salt: 'control_group:v1'}\n", "holdout.salt", "control group"),
    ("goal: {type: sale}\n", "goal.type", "Must be one of"),
    ("goal: {type: custom, within_days: 0}\n", "goal.within_days", "greater than or equal to 1"),
    ("goal: {type: custom, within_days: 91}\n", "goal.within_days", "less than or equal to 90"),
    ("goal: {type: custom, min_amount: -5}\n", "goal.min_amount", "greater than or equal to 0"),
    ("goal: {type: custom, product_type: Fund}\n", "goal.product_type", "a-z"),
])
def test_rulebook_bad_holdout_or_goal_names_the_field(extra, field, reason):
    text = rule_yaml("r", "  customer.tier: gold\n", extra=extra)
    rules, problems = parse_rule_text(text, "r.yaml")
    assert rules == []
    assert [p.field for p in problems] == [field]
    assert reason in problems[0].reason and problems[0].rule == "r"
    assert problems[0].line == text.splitlines().index(extra.strip()) + 1


def test_settings_control_group_off_by_default_and_parsed_from_env():
    assert load_settings(env={}).control_group is None
    group = load_settings(env={"CAMPAIGN_ENGINE_CONTROL_GROUP": '{"percent": 5, "salt": "2026"}'}).control_group
    assert group == ControlGroup(5.0, "2026") and group.hash_salt == "control_group:2026"
    assert load_settings(env={"CAMPAIGN_ENGINE_CONTROL_GROUP": '{"percent": 0}'}).control_group is None


@pytest.mark.parametrize("value", ['{"percent": 60}', '{"percent": 5, "size": 1}', '{"percent": "x"}', '[5]'])
def test_settings_bad_control_group_is_a_config_error(value):
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"CAMPAIGN_ENGINE_CONTROL_GROUP": value})
    assert [p.field for p in raised.value.problems] == ["control_group"]


# --------------------------------------------------------------------------- runs


def test_holdout_customers_get_a_held_out_row_with_its_due_time_and_nothing_to_send(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 20}\n"))
    world.add("customers", *(customer(c) for c in CUSTOMERS))
    report = run_day(world.services(), today=TODAY, now=NOW)
    expected = held("mkt", 20)
    assert 20 < len(expected) < 60  # about 40 of 200
    assert counts(report, "mkt")["held_out"] == len(expected)
    assert counts(report, "mkt")["queued"] == len(CUSTOMERS) - len(expected)
    rows = world.messages(rule_id="mkt", status="held_out")
    assert {m.customer_id for m in rows} == expected
    for m in rows:
        assert (m.held_out_by, m.body, m.subject, m.recipient, m.channel) == ("rule", None, None, None, "sms")
        assert m.due_at == NOW and m.consent_source == "test"  # when it would have been sent, on what consent
    sent = {m.customer_id for m in world.messages(rule_id="mkt", status="queued")}
    assert sent == set(CUSTOMERS) - expected


def test_holdout_rows_are_never_claimed_for_delivery(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 50}\n"))
    world.add("customers", *(customer(c) for c in CUSTOMERS[:40]))
    run_day(world.services(), today=TODAY, now=NOW)
    later = NOW + dt.timedelta(days=30)
    with world.engine.begin() as conn:
        claimed = claims.claim_due(conn, worker="w", now=later, limit=1000, lease=dt.timedelta(minutes=5),
                                   channels=["sms", "email"])
    held_ids = {m.id for m in world.messages(status="held_out")}
    assert held_ids and claimed and not held_ids & {row["id"] for row in claimed}
    assert len(claimed) == 40 - len(held_ids)


def test_holdout_is_decided_after_the_contact_policy(world):
    out, _ = in_and_out("mkt", 50)
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 50}\n"))
    world.add("customers", customer(out, sms_consent=False))  # the policy refuses it first
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert counts(report, "mkt")["suppressed"] == {"no_consent": 1}
    assert counts(report, "mkt")["held_out"] == 0 and world.messages() == []


def test_holdout_takes_the_frequency_cap_slot_from_lower_priority_rules(world):
    out, kept = in_and_out("high", 50)
    world.rule("h.yaml", rule_yaml("high", "  customer.tier: gold\n", channels="[sms]", priority=90,
                                   extra="holdout: {percent: 50}\n"))
    world.rule("l.yaml", rule_yaml("low", "  customer.tier: gold\n", channels="[sms]", priority=10))
    world.add("customers", customer(out), customer(kept))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert counts(report, "high")["held_out"] == 1 and counts(report, "high")["queued"] == 1
    # the held-out customer does not receive the lower-priority campaign in its place
    assert counts(report, "low")["suppressed"] == {"frequency_cap": 2}
    assert {(m.customer_id, m.rule_id, m.status) for m in world.messages()} == {
        (out, "high", "held_out"), (kept, "high", "queued")}
    # a later run sees the held-out slot in the outbox too (the caps read held_out rows)
    world.rule("l2.yaml", rule_yaml("later", "  customer.tier: gold\n", channels="[sms]", priority=5))
    again = run_day(world.services(), today=TODAY, now=NOW + dt.timedelta(hours=2), rule_ids=["later"])
    assert counts(again, "later")["suppressed"] == {"frequency_cap": 2}


def test_control_group_holds_out_marketing_rules_only(world):
    group = ControlGroup(50.0, "t")
    members = {c for c in CUSTOMERS[:60] if held_out(c, group.hash_salt, group.percent)}
    world.settings = world.settings.replace(control_group=group)
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]"))
    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", channels="[sms]", category="service"))
    world.add("customers", *(customer(c) for c in CUSTOMERS[:60]))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert 10 < len(members) < 50
    assert counts(report, "mkt")["held_out"] == len(members)
    assert counts(report, "svc")["held_out"] == 0 and counts(report, "svc")["queued"] == 60
    assert {m.customer_id for m in world.messages(rule_id="mkt", status="held_out")} == members
    assert {m.held_out_by for m in world.messages(status="held_out")} == {"control_group"}


def test_control_group_wins_over_the_rules_own_holdout(world):
    group = ControlGroup(30.0, "t")
    world.settings = world.settings.replace(control_group=group)
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 30}\n"))
    world.add("customers", *(customer(c) for c in CUSTOMERS))
    run_day(world.services(), today=TODAY, now=NOW)
    by = {m.customer_id: m.held_out_by for m in world.messages(status="held_out")}
    control = {c for c in CUSTOMERS if held_out(c, group.hash_salt, 30)}
    assert {c for c, g in by.items() if g == "control_group"} == control
    assert {c for c, g in by.items() if g == "rule"} == held("mkt", 30) - control


def test_holdout_service_rule_may_declare_one(world):
    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", channels="[sms]", category="service",
                                   extra="holdout: {percent: 10, salt: maturity-2026}\n"))
    world.add("customers", *(customer(c) for c in CUSTOMERS))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert counts(report, "svc")["held_out"] == len(held("svc", 10, salt="maturity-2026")) > 0


def test_holdout_rerun_and_dry_run_count_held_out(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 20}\n"))
    world.add("customers", *(customer(c) for c in CUSTOMERS[:50]))
    services = world.services()
    dry = run_day(services, today=TODAY, now=NOW, dry_run=True)
    assert counts(dry, "mkt")["held_out"] == len(held("mkt", 20, CUSTOMERS[:50])) > 0
    first = run_day(services, today=TODAY, now=NOW)
    assert counts(first, "mkt")["held_out"] == counts(dry, "mkt")["held_out"]
    second = run_day(services, today=TODAY, now=NOW)
    assert counts(second, "mkt")["held_out"] == 0 and counts(second, "mkt")["duplicates"] == 50


def test_holdout_raising_the_percent_only_adds_customers(world):
    small, large = held("mkt", 10), held("mkt", 25)
    assert small < large


def test_preview_of_a_held_out_customer_says_held_out_not_a_message(world):
    world.rule("h.yaml", rule_yaml("promo", "  customer.tier: gold\n", channels="[sms]",
                                   extra="holdout: {percent: 50}\n"))
    out, kept = in_and_out("promo", 50)
    world.add("customers", customer(out), customer(kept, mobile="13800000009"))
    from campaign_engine.pipeline import preview

    services = world.services()
    [held_view] = preview(services, "promo", today=TODAY, now=NOW, customer_id=out)["subjects"]
    assert held_view["held_out"] == "rule" and "body" not in held_view
    [sent_view] = preview(services, "promo", today=TODAY, now=NOW, customer_id=kept)["subjects"]
    assert "held_out" not in sent_view and sent_view["body"]
