"""What a draft does to its rule's audience: the live version and the draft dry-run through the batch
path, compared subject by subject (pipeline.draft_diff)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from campaign_engine.effect.assignment import held_out, holdout_salt
from campaign_engine.errors import ValidationFailed
from campaign_engine.evaluation.engine import RuleEngine
from campaign_engine.events import parse_event
from campaign_engine.pipeline.draft_diff import audience_diff
from campaign_engine.pipeline.services import Services
from campaign_engine.rulebook.loader import Rulebook, build_rulebook
from campaign_engine.vocabulary import EventType
from factories import (EMAIL_PARTS, GREETING_SMS, NOW, TODAY, World, customer, deposit, rule_yaml, run_day)

TEMPLATES = {"greet/sms.txt.j2": GREETING_SMS, **{f"greet/{part}": text for part, text in EMAIL_PARTS.items()}}
RATE_CHANGE = {"event_id": "rc-1", "product_type": "time_deposit", "old_rate": 1.65, "new_rate": 1.45,
               "effective_date": "2026-03-20"}


def book(*texts: str) -> Rulebook:
    built = build_rulebook({f"r{i}.yaml": text for i, text in enumerate(texts)}, TEMPLATES)
    assert not built.problems, built.problems
    return built


def live_services(world: World, *texts: str) -> Services:
    """The world's services with these rule texts live (and their templates)."""
    live_book = book(*texts)
    return replace(world.services(), rulebook=live_book, engine=RuleEngine(live_book.rules.values()))


def diff(world: World, live_text: str | None, draft_text: str, rule_id: str = "promo",
         **options: Any) -> dict[str, Any]:
    """The draft's diff against a live version built from `live_text` (None: a new rule)."""
    services = live_services(world, *([live_text] if live_text is not None else []))
    live_book = services.rulebook
    draft_book = book(draft_text)
    draft = draft_book.get(rule_id)
    assert draft is not None
    options.setdefault("today", TODAY)
    options.setdefault("now", NOW)
    return audience_diff(services, live_book.get(rule_id), draft, draft_book, **options)


def reasons(result: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """by_reason, without the outcomes no version has."""
    return {k: (v["live"], v["draft"], v["delta"]) for k, v in result["by_reason"].items()
            if v["live"] or v["draft"]}


def test_a_one_line_tier_change_adds_exactly_the_platinum_customers(world):
    world.add("customers", customer("C1"), customer("C2", tier="platinum"), customer("C3", tier="regular"),
              customer("C4", tier="platinum"), customer("C5", tier="diamond"))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: {in: [gold, platinum]}\n"))
    assert (result["rule"], result["date"], "event" not in result) == ("promo", "2026-03-10", True)
    assert (result["added"], result["removed"]) == (2, 0)
    assert (result["sample_added"], result["sample_removed"]) == (["C2", "C4"], [])
    assert reasons(result) == {"sent": (1, 3, 2)}
    assert (result["live"]["matched"], result["draft"]["matched"]) == (1, 3)
    assert (result["live"]["queued"], result["draft"]["queued"]) == (1, 3)
    # the changed condition, for each sampled customer: the live one false, the draft's true
    assert result["explain"] == {c: [
        {"condition": "customer.tier eq gold (value: platinum)", "live": False, "draft": None},
        {"condition": "customer.tier in [gold, platinum] (value: platinum)", "live": None, "draft": True},
    ] for c in ("C2", "C4")}
    assert world.messages() == []  # a dry run: nothing written


def test_an_aum_threshold_change_removes_exactly_those_below_and_explains_only_that_condition(world):
    world.add("customers", *(customer(f"C{n}", aum=Decimal(aum)) for n, aum in
                             enumerate(("50000", "200000", "300000", "800000", "499999.99"), start=1)),
              customer("C6", aum=Decimal("900000"), tier="regular"))
    live = "  all:\n    - customer.tier: gold\n    - customer.aum: {gte: 100000}\n"
    result = diff(world, rule_yaml("promo", live), rule_yaml("promo", live.replace("100000", "500000")))
    assert (result["added"], result["removed"]) == (0, 3)
    assert result["sample_removed"] == ["C2", "C3", "C5"]
    assert reasons(result) == {"sent": (4, 1, -3)}
    assert result["explain"]["C2"] == [  # the tier condition held in both: not listed
        {"condition": "customer.aum gte 100000.0 (value: 200000.0)", "live": True, "draft": None},
        {"condition": "customer.aum gte 500000.0 (value: 200000.0)", "live": None, "draft": False}]
    assert sorted(result["explain"]) == ["C2", "C3", "C5"]


def test_samples_and_explanations_are_bounded_and_sorted(world):
    world.add("customers", *(customer(f"C{n:02d}", tier="platinum") for n in range(12, 0, -1)))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: {in: [gold, platinum]}\n"), sample=4, explain_limit=2)
    assert result["added"] == 12
    assert result["sample_added"] == ["C01", "C02", "C03", "C04"]
    assert list(result["explain"]) == ["C01", "C02"]


def test_adding_a_riskier_product_only_moves_customers_between_suppression_reasons(world):
    no_consent = dict(sms_consent=False, email_consent=False)
    world.add("customers", customer("C1", risk_level="C4"), customer("C2", risk_level="C3", **no_consent),
              customer("C3", risk_level="C4", **no_consent))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: gold\n", extra="product: FUND-EQ01\n"))
    assert (result["added"], result["removed"], result["sample_added"], result["sample_removed"]) == (0, 0, [], [])
    assert reasons(result) == {"sent": (1, 1, 0), "suppressed:no_consent": (2, 1, -1),
                               "suppressed:suitability": (0, 1, 1)}
    assert result["draft"]["suppressed"] == {"no_consent": 1, "suitability": 1}
    assert result["explain"] == {}


def test_the_policy_verdict_is_named_when_the_conditions_did_not_change(world):
    world.add("customers", customer("C1", risk_level="C4"), customer("C2", risk_level="C3"))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: gold\n", extra="product: FUND-EQ01\n"))
    assert (result["added"], result["removed"], result["sample_removed"]) == (0, 1, ["C2"])
    assert result["explain"] == {"C2": [{"policy": {"live": "sent", "draft": "suppressed:suitability"}}]}


def test_a_draft_outside_its_campaign_window_on_the_date_removes_everyone(world):
    world.add("customers", customer("C1"), customer("C2"))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: gold\n", extra="active: {from: 2026-04-01}\n"))
    assert (result["added"], result["removed"], result["sample_removed"]) == (0, 2, ["C1", "C2"])
    assert "campaign window" in result["draft"]["skipped"] and result["draft"]["candidates"] == 0
    assert result["explain"]["C1"] == [{"policy": {"live": "sent", "draft": "skipped"}}]


def test_a_new_rule_adds_its_whole_audience(world):
    world.add("customers", customer("C1"), customer("C2", do_not_contact=True), customer("C3", tier="regular"))
    result = diff(world, None, rule_yaml("promo", "  customer.tier: gold\n"))
    assert (result["live"], result["added"], result["removed"]) == (None, 1, 0)
    assert result["sample_added"] == ["C1"]
    assert reasons(result) == {"sent": (0, 1, 1), "suppressed:do_not_contact": (0, 1, 1)}
    assert result["draft"]["candidates"] == 2  # its SQL plan read the gold customers only
    assert result["explain"] == {"C1": [{"condition": "customer.tier eq gold (value: gold)", "live": None,
                                         "draft": True}]}


def test_adding_a_holdout_keeps_the_audience_and_moves_the_held_out_from_sent(world):
    ids = [f"C{n:02d}" for n in range(1, 31)]
    world.add("customers", *(customer(c) for c in ids))
    kept = {c for c in ids if held_out(c, holdout_salt("promo", None), 50)}
    assert 0 < len(kept) < len(ids)
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: gold\n", extra="holdout: {percent: 50}\n"))
    assert (result["added"], result["removed"]) == (0, 0)  # held out is in the audience: the policy allows it
    assert reasons(result) == {"sent": (30, 30 - len(kept), -len(kept)), "held_out": (0, len(kept), len(kept))}
    assert result["draft"]["held_out"] == len(kept)


def test_an_event_rule_is_diffed_on_one_event_for_both_versions(world):
    world.add("customers", customer("C1", rate_sensitive=True), customer("C2", rate_sensitive=False),
              customer("C3", rate_sensitive=False), customer("C4", rate_sensitive=True))
    world.add("deposits", deposit("D1", "C1"), deposit("D2", "C2"))
    live = ("  all:\n    - customer.rate_sensitive: true\n"
            "    - customer.holds: {contains: {ref: event.product_type}}\n")
    draft = "  customer.holds: {contains: {ref: event.product_type}}\n"
    trigger = "{event: rate_change}"
    event = parse_event(EventType.RATE_CHANGE, RATE_CHANGE)
    result = diff(world, rule_yaml("rates", live, category="service", trigger=trigger),
                  rule_yaml("rates", draft, category="service", trigger=trigger), "rates", event=event)
    assert result["event"] == "rate_change:rc-1"
    assert (result["added"], result["removed"], result["sample_added"]) == (1, 0, ["C2"])
    assert reasons(result) == {"sent": (1, 2, 1)}
    assert result["explain"] == {"C2": [{"condition": "customer.rate_sensitive eq true (value: false)",
                                         "live": False, "draft": None}]}
    with pytest.raises(ValidationFailed) as missing:
        diff(world, rule_yaml("rates", live, category="service", trigger=trigger),
             rule_yaml("rates", draft, category="service", trigger=trigger), "rates")
    assert [p.field for p in missing.value.problems] == ["event"]


def test_a_deposit_rule_diffs_deposits(world):
    world.add("customers", customer("C1"), customer("C2"))
    world.add("deposits", deposit("D1", "C1", maturity_date=TODAY + dt.timedelta(days=2)),
              deposit("D2", "C1", maturity_date=TODAY + dt.timedelta(days=6)),
              deposit("D3", "C2", maturity_date=TODAY + dt.timedelta(days=5)),
              deposit("D4", "C2", maturity_date=TODAY + dt.timedelta(days=20)))
    trigger = '{schedule: "0 9 * * *", subject: deposit}'
    result = diff(world, rule_yaml("maturity", "  deposit.days_to_maturity: {between: [0, 7]}\n",
                                   category="service", trigger=trigger),
                  rule_yaml("maturity", "  deposit.days_to_maturity: {between: [0, 3]}\n",
                            category="service", trigger=trigger), "maturity")
    assert (result["added"], result["removed"], result["sample_removed"]) == (0, 2, ["D2", "D3"])
    assert result["explain"]["D2"] == [
        {"condition": "deposit.days_to_maturity between [0, 7] (value: 6)", "live": True, "draft": None},
        {"condition": "deposit.days_to_maturity between [0, 3] (value: 6)", "live": None, "draft": False}]


def test_what_a_run_already_wrote_is_a_duplicate_in_both_versions(world):
    world.add("customers", customer("C1"), customer("C2", tier="platinum"))
    # the live version ran today: C1 has its message
    run_day(live_services(world, rule_yaml("promo", "  customer.tier: gold\n")), today=TODAY, now=NOW)
    assert [m.customer_id for m in world.messages()] == ["C1"]
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
                  rule_yaml("promo", "  customer.tier: {in: [gold, platinum]}\n"))
    assert reasons(result) == {"duplicate": (1, 1, 0), "sent": (0, 1, 1)}
    assert (result["added"], result["removed"], result["sample_added"]) == (1, 0, ["C2"])


@pytest.mark.parametrize("draft_trigger", ["{event: rate_change}", '{schedule: "0 9 * * *", subject: deposit}'])
def test_a_draft_that_changes_the_trigger_is_refused(world, draft_trigger):
    world.add("customers", customer("C1"))
    with pytest.raises(ValidationFailed) as refused:
        diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
             rule_yaml("promo", "  customer.tier: gold\n", trigger=draft_trigger))
    [problem] = refused.value.problems
    assert (problem.field, problem.rule) == ("trigger", "promo")
    assert "like with like" in problem.reason


def test_a_draft_that_changes_the_event_type_is_refused(world):
    live = rule_yaml("rates", "  customer.rate_sensitive: true\n", category="service", trigger="{event: rate_change}")
    draft = rule_yaml("rates", "  customer.rate_sensitive: true\n", category="service",
                      trigger="{event: product_launch}")
    with pytest.raises(ValidationFailed) as refused:
        diff(world, live, draft, "rates", event=parse_event(EventType.RATE_CHANGE, RATE_CHANGE))
    assert [p.field for p in refused.value.problems] == ["trigger"]
    assert "event rate_change, subject customer -> event product_launch" in refused.value.problems[0].reason


def test_a_stopped_live_version_contacts_nobody_so_an_enable_adds_its_whole_audience(world):
    world.add("customers", customer("C1"), customer("C2", tier="platinum"), customer("C3"))
    text = rule_yaml("promo", "  customer.tier: gold\n")
    services = live_services(world, text)
    live = replace(services.rulebook.rules["promo"], enabled=False)
    stopped = replace(services.rulebook, rules={"promo": live},
                      stopped={"promo": "disabled by cli:carol at 2026-03-09 18:00+08:00: wrong rate"})
    services = replace(services, rulebook=stopped)
    draft_book = book(text)
    enabled = audience_diff(services, live, draft_book.rules["promo"], draft_book, today=TODAY, now=NOW, enable=True)
    assert (enabled["added"], enabled["removed"], enabled["sample_added"]) == (2, 0, ["C1", "C3"])
    assert reasons(enabled) == {"sent": (0, 2, 2)}
    assert enabled["live"]["skipped"] == "disabled by cli:carol at 2026-03-09 18:00+08:00: wrong rate"
    assert enabled["explain"]["C1"] == [{"policy": {"live": "disabled", "draft": "sent"}}]
    assert "Approving this enable switches it on" in enabled["note"]
    # a new version of the stopped rule stays stopped once approved: nobody before, nobody after
    new_book = book(rule_yaml("promo", "  customer.tier: {in: [gold, platinum]}\n"))
    stays = audience_diff(services, live, new_book.rules["promo"], new_book, today=TODAY, now=NOW)
    assert (stays["added"], stays["removed"], stays["sample_added"]) == (0, 0, [])
    assert (stays["live"]["matched"], stays["draft"]["matched"]) == (0, 0)
    assert stays["draft"]["skipped"].startswith("stays disabled by cli:carol")
    assert "stays stopped when approved" in stays["note"]
    assert world.messages() == []


def test_a_live_version_with_enabled_false_is_an_empty_audience(world):
    world.add("customers", customer("C1"))
    result = diff(world, rule_yaml("promo", "  customer.tier: gold\n", extra="enabled: false\n"),
                  rule_yaml("promo", "  customer.tier: gold\n"))
    assert (result["added"], result["sample_added"]) == (1, ["C1"])
    assert "switches it on" in result["note"]
    off = diff(world, rule_yaml("promo", "  customer.tier: gold\n"),
               rule_yaml("promo", "  customer.tier: gold\n", extra="enabled: false\n"))
    assert (off["added"], off["removed"], off["sample_removed"]) == (0, 1, ["C1"])
    assert off["explain"] == {"C1": [{"policy": {"live": "sent", "draft": "disabled"}}]}
