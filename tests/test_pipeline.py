"""The whole path on a real database: rule files -> candidates -> engine -> policy -> templates -> outbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text

from campaign_engine.bootstrap import open_services
from campaign_engine.errors import EventPayloadError
from campaign_engine.pipeline import EventConflict, preview, validate_rules
from campaign_engine.rendering.environment import build_environment
from campaign_engine.rulebook.loader import load_rulebook
from campaign_engine.store.models import CampaignRun
from campaign_engine.store.sql_store import SqlStore
from campaign_engine.vocabulary import EventType
from factories import (BIRTHDAY, NOW, TODAY, World, customer, deposit, fire_event, publish_rules, rule_yaml,
                       run_day)


def validate_folder(world: World, catalogue: Any = None) -> list[Any]:
    """validate_rules on the world's rule and template folders, as `rules validate` checks them."""
    settings = world.settings
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    return validate_rules(rulebook, build_environment(settings.templates_dir), settings, catalogue)


def rule_counts(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == rule_id)


def test_run_birthday_queues_sms_with_signature_and_opt_out(world):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)),
              customer("C2", birth_date=dt.date(1970, 3, 11)))
    report = run_day(world.services(), today=TODAY, now=NOW)
    counts = rule_counts(report, "birthday")
    assert (counts["candidates"], counts["matched"], counts["queued"]) == (1, 1, 1)
    [msg] = world.messages()
    assert msg.customer_id == "C1" and msg.channel == "sms" and msg.status == "queued"
    assert msg.body == "【XX银行】张先生，测试birthday。回复TD退订"
    assert msg.sms_segments == 1
    assert msg.consent_source == "test"  # proof of the consent the marketing message relied on


def test_run_same_date_twice_writes_no_second_message(world):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))
    services = world.services()
    run_day(services, today=TODAY, now=NOW)
    second = run_day(services, today=TODAY, now=NOW)
    assert rule_counts(second, "birthday")["queued"] == 0
    assert rule_counts(second, "birthday")["duplicates"] == 1
    assert len(world.messages()) == 1


def test_run_deposit_rule_sends_once_per_maturity_on_several_matching_days(world):
    world.rule("td.yaml", rule_yaml("td", "  deposit.days_to_maturity: {between: [0, 7]}\n",
                                    category="service", trigger='{schedule: "0 9 * * *", subject: deposit}'))
    world.add("customers", customer("C1"))
    world.add("deposits", deposit("D1", "C1", maturity_date=TODAY + dt.timedelta(days=7)))
    services = world.services()
    for offset in range(8):  # matches on each of the 8 days up to maturity
        run_day(services, today=TODAY + dt.timedelta(days=offset), now=NOW)
    assert [(m.subject_id, m.subject_type) for m in world.messages()] == [("D1", "deposit")]


def test_run_deposit_rule_sends_again_after_renewal_to_a_new_maturity(world):
    world.rule("td.yaml", rule_yaml("td", "  deposit.days_to_maturity: {between: [0, 7]}\n",
                                    category="service", trigger='{schedule: "0 9 * * *", subject: deposit}'))
    world.add("customers", customer("C1"))
    world.add("deposits", deposit("D1", "C1", maturity_date=TODAY))
    services = world.services()
    run_day(services, today=TODAY, now=NOW)
    world.add("deposits", deposit("D1", "C1", maturity_date=dt.date(2027, 3, 10)))
    run_day(services, today=dt.date(2027, 3, 5), now=NOW)
    assert len(world.messages()) == 2


def test_run_maturity_window_edges(world):
    world.rule("td.yaml", rule_yaml("td", "  deposit.days_to_maturity: {between: [0, 7]}\n",
                                    category="service", trigger='{schedule: "0 9 * * *", subject: deposit}'))
    world.add("customers", customer("C1"))
    world.add("deposits", *(deposit(f"D{d}", "C1", maturity_date=TODAY + dt.timedelta(days=d))
                            for d in (-1, 0, 7, 8)), deposit("DX", "C1", maturity_date=None))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert sorted(m.subject_id for m in world.messages()) == ["D0", "D7"]
    assert rule_counts(report, "td")["candidates"] == 2  # the SQL window read only those two


def test_run_several_rules_fire_for_one_customer(world):
    world.rule("a.yaml", rule_yaml("rule-a", BIRTHDAY))
    world.rule("b.yaml", rule_yaml("rule-b", "  customer.tier: gold\n", category="service"))
    world.rule("c.yaml", rule_yaml("rule-c", "  any:\n    - customer.aum: {gte: 100}\n    - customer.age: {gte: 18}\n"))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))
    run_day(world.services(), today=TODAY, now=NOW)
    assert sorted(m.rule_id for m in world.messages()) == ["rule-a", "rule-b", "rule-c"]


def test_run_counts_each_suppression_reason(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers",
              customer("C1"),
              customer("C2", do_not_contact=True),
              customer("C3", sms_consent=False),
              customer("C4", mobile=None))
    report = run_day(world.services(), today=TODAY, now=NOW)
    counts = rule_counts(report, "mkt")
    assert counts["queued"] == 1
    assert counts["suppressed"] == {"do_not_contact": 1, "no_consent": 1, "no_contact_address": 1}


def test_run_service_rule_needs_no_marketing_consent_but_respects_do_not_contact(world):
    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", category="service", channels="[sms]"))
    world.add("customers", customer("C1", sms_consent=False), customer("C2", do_not_contact=True))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert [m.customer_id for m in world.messages()] == ["C1"]
    assert world.messages()[0].body == "【XX银行】张先生，测试svc"  # no opt-out line on service SMS
    assert rule_counts(report, "svc")["suppressed"] == {"do_not_contact": 1}


def test_run_marketing_falls_back_to_email_without_sms_consent(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n"))
    world.add("customers", customer("C1", sms_consent=False))
    run_day(world.services(), today=TODAY, now=NOW)
    [msg] = world.messages()
    assert (msg.channel, msg.recipient, msg.subject) == ("email", "c1@example.com", "测试mkt")


def test_run_holiday_rule_reads_no_candidates_on_an_ordinary_day(world):
    world.rule("h.yaml", rule_yaml("holiday", "  calendar.holiday: {in: [春节, 中秋节]}\n"))
    world.add("customers", customer("C1"), customer("C2"))
    services = world.services()
    ordinary = run_day(services, today=TODAY, now=NOW)
    assert rule_counts(ordinary, "holiday")["candidates"] == 0
    festival = run_day(services, today=dt.date(2026, 2, 17), now=NOW)
    assert rule_counts(festival, "holiday")["queued"] == 2


def test_run_template_error_fails_one_message_not_the_run(world):
    # renders against the sample context (tier gold), fails on a platinum customer's data
    world.template("fragile", {"sms.txt.j2": "{% if customer.tier == 'platinum' %}{{ customer.nickname }}{% endif %}您好"})
    world.rule("f.yaml", rule_yaml("fragile", "  customer.aum: {gte: 0}\n", category="service",
                                   channels="[sms]", template="fragile"))
    world.add("customers", customer("C1", tier="platinum"), customer("C2", tier="regular"))
    report = run_day(world.services(), today=TODAY, now=NOW)
    counts = rule_counts(report, "fragile")
    assert (counts["queued"], counts["failed"]) == (1, 1)
    failed = world.messages(status="failed")[0]
    assert failed.customer_id == "C1" and "nickname" in failed.error and failed.body is None
    assert report["status"] == "completed_with_errors"  # the run finished, and says a message failed
    assert "1 message(s) failed: fragile 1" in report["error"]


def test_run_sandbox_escape_in_template_fails_the_message(world):
    # on the sample context (tier gold) it renders, so the rule is live; on C1's data it escapes
    world.template("evil", {"sms.txt.j2": "{% if customer.tier == 'platinum' %}{{ ''.__class__.__mro__ }}{% endif %}您好"})
    world.rule("e.yaml", rule_yaml("evil", "  customer.tier: platinum\n", category="service",
                                   channels="[sms]", template="evil"))
    world.add("customers", customer("C1", tier="platinum"))
    run_day(world.services(), today=TODAY, now=NOW)
    [msg] = world.messages()
    assert msg.status == "failed" and "object" not in (msg.body or "")


def test_run_failing_rule_does_not_stop_the_others(world):
    # publishing refuses an unknown product; a product removed after the rule went live fails that rule only
    world.add("products", dict(product_code="GONE-1", name="下架理财", type="wealth", risk_level="R1", rate=None,
                               min_amount=Decimal("1"), launch_date=dt.date(2024, 1, 1)))
    world.rule("p.yaml", rule_yaml("promo", "  customer.tier: gold\n", extra="product: GONE-1\n"))
    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", category="service"))
    world.add("customers", customer("C1"))
    services = world.services()
    with world.engine.begin() as conn:
        conn.execute(text("DELETE FROM products WHERE product_code = 'GONE-1'"))
    report = run_day(services, today=TODAY, now=NOW)
    assert report["status"] == "completed_with_errors"
    assert "GONE-1" in rule_counts(report, "promo")["error"]
    assert rule_counts(report, "svc")["queued"] == 1


def test_run_scheduled_product_promotion_respects_suitability(world):
    world.rule("p.yaml", rule_yaml("promo", "  customer.tier: gold\n", extra="product: FUND-EQ01\n"))
    world.add("customers", customer("C1", risk_level="C4"), customer("C2", risk_level="C3"),
              customer("C3", risk_level=None))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert [m.customer_id for m in world.messages()] == ["C1"]
    assert rule_counts(report, "promo")["suppressed"] == {"suitability": 2}


def test_run_dry_run_writes_nothing(world):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))
    report = run_day(world.services(), today=TODAY, now=NOW, dry_run=True)
    assert rule_counts(report, "birthday")["queued"] == 1 and report["run_id"] is None
    assert world.messages() == []
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CampaignRun)).scalar_one() == 0


LAUNCH = {"event_id": "pl-1", "launch_date": "2026-03-15",
          "product": {"code": "WM-R3-01", "name": "稳健理财", "type": "wealth", "risk_level": "R3",
                      "rate": 3.1, "min_amount": 10000}}


def launch_rule(world: World) -> None:
    world.rule("l.yaml", rule_yaml("launch", "  customer.tier: {in: [gold, platinum, diamond]}\n",
                                   trigger="{event: product_launch}"))


def test_event_product_launch_never_reaches_unsuitable_customers(world):
    launch_rule(world)
    world.add("customers", customer("C1", risk_level="C3"), customer("C2", risk_level="C2"))
    report = fire_event(world.services(), EventType.PRODUCT_LAUNCH, LAUNCH, now=NOW)
    assert [m.customer_id for m in world.messages()] == ["C1"]
    assert rule_counts(report, "launch")["suppressed"] == {"suitability": 1}


def test_event_replay_writes_nothing_and_returns_the_first_run(world):
    launch_rule(world)
    world.add("customers", customer("C1"))
    services = world.services()
    first = fire_event(services, EventType.PRODUCT_LAUNCH, LAUNCH, now=NOW)
    again = fire_event(services, EventType.PRODUCT_LAUNCH, LAUNCH, now=NOW)
    assert again["replayed"] is True and again["run_id"] == first["run_id"]
    assert len(world.messages()) == 1
    with pytest.raises(EventConflict):
        fire_event(services, EventType.PRODUCT_LAUNCH, {**LAUNCH, "launch_date": "2026-04-01"}, now=NOW)


def test_event_missing_field_is_a_clear_error_and_writes_nothing(world):
    launch_rule(world)
    world.add("customers", customer("C1"))
    bad = {k: v for k, v in LAUNCH.items() if k != "launch_date"}
    with pytest.raises(EventPayloadError) as err:
        fire_event(world.services(), EventType.PRODUCT_LAUNCH, bad, now=NOW)
    assert [p.field for p in err.value.problems] == ["launch_date"]
    assert world.messages() == []


def test_event_large_transaction_concerns_only_its_customer(world):
    world.rule("t.yaml", rule_yaml("big", "  event.amount: {gte: 500000}\n", category="service",
                                   trigger="{event: large_transaction}", channels="[sms]"))
    world.add("customers", customer("C1"), customer("C2"))
    payload = {"event_id": "lt-1", "customer_id": "C2", "account_no": "6222020012345678",
               "amount": 800000, "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}
    report = fire_event(world.services(), EventType.LARGE_TRANSACTION, payload, now=NOW)
    assert rule_counts(report, "big")["candidates"] == 1
    assert [m.customer_id for m in world.messages()] == ["C2"]


def test_event_rate_change_reaches_holders_of_the_product_type(world):
    world.rule("r.yaml", rule_yaml(
        "rates", "  all:\n    - customer.rate_sensitive: true\n"
                 "    - customer.holds: {contains: {ref: event.product_type}}\n",
        category="service", trigger="{event: rate_change}"))
    world.add("customers", customer("C1", rate_sensitive=True), customer("C2", rate_sensitive=True),
              customer("C3", rate_sensitive=False), customer("C4", rate_sensitive=True))
    world.add("deposits", deposit("D1", "C1"), deposit("D3", "C3"))
    world.add("holdings", dict(customer_id="C4", product_code="FUND-EQ01", amount=Decimal("1000")))
    payload = {"event_id": "rc-1", "product_type": "time_deposit", "old_rate": 1.65, "new_rate": 1.45,
               "effective_date": "2026-03-20"}
    report = fire_event(world.services(), EventType.RATE_CHANGE, payload, now=NOW)
    assert [m.customer_id for m in world.messages()] == ["C1"]
    assert rule_counts(report, "rates")["candidates"] == 1  # SQL read only rate-sensitive holders


def test_template_reading_holds_gets_them_though_no_condition_does(world):
    world.template("held", {"sms.txt.j2": "{{ customer.name }}：您持有{{ customer.holds | join('、') }}"})
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY, channels="[sms]", template="held"))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))
    world.add("deposits", deposit("D1", "C1"))
    run_day(world.services(), today=TODAY, now=NOW)
    [msg] = world.messages()
    assert "TD1Y、time_deposit" in msg.body


def test_preview_explains_each_condition_and_writes_nothing(world):
    world.rule("b.yaml", rule_yaml("birthday", "  all:\n    - customer.days_to_birthday: 0\n"
                                               "    - not: {customer.city: 上海}\n"))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)),
              customer("C2", birth_date=dt.date(1970, 3, 10), city="上海"))
    services = world.services()
    yes = preview(services, "birthday", today=TODAY, now=NOW, customer_id="C1")["subjects"][0]
    no = preview(services, "birthday", today=TODAY, now=NOW, customer_id="C2")["subjects"][0]
    assert yes["matches"] is True and yes["body"].startswith("【XX银行】张先生")
    assert no["matches"] is False
    assert [c["result"] for c in no["conditions"]["children"]] == [True, False]
    summary = preview(services, "birthday", today=TODAY, now=NOW)
    assert summary["counts"]["matched"] == 1 and len(summary["sample"]) == 1
    assert world.messages() == []


def test_validate_rules_reports_undefined_template_variable_with_rule_and_line(world):
    world.template("typo", {"sms.txt.j2": "您好\n{{ customer.nam }}"})
    world.rule("t.yaml", rule_yaml("typo", "  customer.tier: gold\n", channels="[sms]", template="typo"))
    [problem] = validate_folder(world)
    assert problem.rule == "typo" and problem.file == "t.yaml"
    assert "sms.txt.j2:2" in problem.reason and "nam" in problem.reason

    services = world.services()  # publishing runs the same check: the file is an invalid draft, not live
    [draft] = world.drafts
    assert draft["status"] == "invalid" and world.problems == [problem.as_dict()]
    assert "typo" not in services.rulebook.rules


def test_starter_pack_runs_on_demo_data(world, settings):
    from campaign_engine.demo.loader import load_demo_data

    load_demo_data(world.engine, 3000, seed=7, today=TODAY, now=NOW)
    assert {draft["status"] for draft in publish_rules(settings)} == {"live"}
    services = open_services(settings)
    world.opened.append(services)
    report = run_day(services, today=TODAY, now=NOW)
    assert report["status"] == "completed"
    td = rule_counts(report, "td-maturity-reminder")
    assert td["queued"] > 0 and td["failed"] == 0
    assert validate_rules(services.rulebook, build_environment(settings.templates_dir), services.settings) == []


def test_event_with_longest_event_id_writes_bounded_idempotent_keys(world):
    launch_rule(world)
    world.add("customers", customer("C1"))
    payload = {**LAUNCH, "event_id": "x" * 128}
    services = world.services()
    report = fire_event(services, EventType.PRODUCT_LAUNCH, payload, now=NOW)
    assert rule_counts(report, "launch")["queued"] == 1
    [msg] = world.messages()
    assert len(msg.dedupe_key) <= 255
    assert fire_event(services, EventType.PRODUCT_LAUNCH, payload, now=NOW)["replayed"] is True


def test_caps_highest_priority_wins_and_the_other_is_suppressed(world):
    world.rule("low.yaml", rule_yaml("low", "  customer.tier: gold\n", channels="[sms]", priority=10))
    world.rule("high.yaml", rule_yaml("high", "  customer.tier: gold\n", channels="[sms]", priority=90))
    world.add("customers", customer("C1"))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert [m.rule_id for m in world.messages()] == ["high"]
    assert rule_counts(report, "low")["suppressed"] == {"frequency_cap": 1}


def test_caps_a_capped_channel_falls_back_to_the_next(world):
    world.rule("a.yaml", rule_yaml("first", "  customer.tier: gold\n", channels="[sms, email]", priority=90))
    world.rule("b.yaml", rule_yaml("second", "  customer.tier: gold\n", channels="[sms, email]", priority=10))
    world.add("customers", customer("C1"))
    run_day(world.services(), today=TODAY, now=NOW)
    assert [(m.rule_id, m.channel) for m in world.messages()] == [("first", "sms"), ("second", "email")]


def test_caps_three_marketing_messages_in_seven_days(world):
    world.rule("m.yaml", rule_yaml("daily", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C1"))
    services = world.services()
    reports = [run_day(services, today=TODAY + dt.timedelta(days=d), now=NOW + dt.timedelta(days=d))
               for d in range(5)]
    assert [rule_counts(r, "daily")["queued"] for r in reports] == [1, 1, 1, 0, 0]
    assert rule_counts(reports[3], "daily")["suppressed"] == {"frequency_cap": 1}
    later = run_day(services, today=TODAY + dt.timedelta(days=7), now=NOW + dt.timedelta(days=7))
    assert rule_counts(later, "daily")["queued"] == 1  # the first one left the 7-day window


def test_caps_do_not_apply_to_service_messages(world):
    world.rule("a.yaml", rule_yaml("svc-a", "  customer.tier: gold\n", category="service", channels="[sms]"))
    world.rule("b.yaml", rule_yaml("svc-b", "  customer.tier: gold\n", category="service", channels="[sms]"))
    world.add("customers", customer("C1"))
    run_day(world.services(), today=TODAY, now=NOW)
    assert len(world.messages()) == 2


def test_quiet_hours_at_night_schedule_sms_for_the_morning(world):
    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", category="service", channels="[sms]"))
    world.add("customers", customer("C1"))
    late = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.timezone.utc)  # 23:30 in Shanghai
    report = run_day(world.services(), today=TODAY, now=late)
    assert (rule_counts(report, "svc")["queued"], rule_counts(report, "svc")["scheduled"]) == (0, 1)
    [msg] = world.messages()
    assert msg.status == "scheduled"
    assert msg.due_at == dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.timezone.utc)  # 08:00 next morning


def test_quiet_hours_do_not_hold_email(world):
    world.rule("e.yaml", rule_yaml("svc", "  customer.tier: gold\n", category="service", channels="[email]"))
    world.add("customers", customer("C1"))
    late = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.timezone.utc)
    run_day(world.services(), today=TODAY, now=late)
    [msg] = world.messages()
    assert (msg.status, msg.due_at) == ("queued", late)


def test_caps_count_scheduled_messages_on_their_sending_day(world):
    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C1"))
    services = world.services()
    late = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.timezone.utc)  # 23:30: due 08:00 on the 11th
    run_day(services, today=TODAY, now=late)
    next_morning = dt.datetime(2026, 3, 11, 1, 0, tzinfo=dt.timezone.utc)
    report = run_day(services, today=TODAY + dt.timedelta(days=1), now=next_morning)
    assert rule_counts(report, "mkt")["suppressed"] == {"frequency_cap": 1}


def test_suppression_list_blocks_an_address_whatever_the_consent(world):
    from campaign_engine.store import suppression

    world.rule("s.yaml", rule_yaml("svc", "  customer.tier: gold\n", category="service", channels="[sms, email]"))
    world.add("customers", customer("C1", mobile="13900000001"), customer("C2", mobile="13900000002"))
    with world.engine.begin() as conn:
        suppression.add(conn, channel="sms", address="+86 139-0000-0001", reason="complaint", source="test",
                        now=NOW)
    run_day(world.services(), today=TODAY, now=NOW)
    assert [(m.customer_id, m.channel) for m in world.messages()] == [("C1", "email"), ("C2", "sms")]


def test_report_shows_where_each_rules_messages_stand_now(world):
    from campaign_engine.store.customers import withdraw_marketing
    from campaign_engine.store.runs import get_run

    world.rule("m.yaml", rule_yaml("mkt", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C1"), customer("C2"), customer("C3"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    with world.engine.begin() as conn:
        withdraw_marketing(conn, "C2", "sms", source="reply TD", now=NOW)
        report = get_run(conn, run_id)
    [rule] = report["rules"]
    assert rule["queued"] == 3  # when the run wrote them
    assert rule["delivery"] == {"queued": 2, "suppressed": {"opted_out": 1}}  # now


def test_validate_rules_checks_product_references_against_the_store_catalogue(world):
    from campaign_engine.pipeline.validate import catalogue_warnings, read_catalogue

    world.rule("p.yaml", rule_yaml("promo", "  customer.holds: {contains: time_depost}\n", extra="product: FUND-EQ01\n"))
    catalogue = read_catalogue(SqlStore(world.engine))
    [problem] = validate_folder(world, catalogue)
    assert (problem.rule, problem.line, problem.field) == ("promo", 7, "conditions.customer.holds.contains")
    assert problem.reason == "no product has the code or type 'time_depost' (did you mean 'time_deposit'?)"
    rulebook = load_rulebook(world.settings.rules_dir, world.settings.templates_dir)
    assert catalogue_warnings(rulebook, catalogue) == []  # FUND-EQ01 is in the catalogue

    services = world.services()  # publishing checks the same references: an invalid draft, not live
    assert world.problems == [problem.as_dict()] and "promo" not in services.rulebook.rules


def test_starter_pack_validates_against_the_demo_catalogue(world, settings):
    from campaign_engine.demo.loader import load_demo_data
    from campaign_engine.pipeline.validate import catalogue_warnings, read_catalogue

    load_demo_data(world.engine, 50, seed=7, today=TODAY, now=NOW)
    drafts = publish_rules(settings)  # publishing checks every rule against the products just loaded
    assert [(d["status"], d["problems"]) for d in drafts] == [("live", [])] * len(drafts)
    services = open_services(settings)
    world.opened.append(services)
    catalogue = read_catalogue(services.store)
    assert catalogue.checkable
    live = services.rulebook
    assert sorted(live.rules) == sorted(load_rulebook(settings.rules_dir).rules)  # the whole pack is live
    assert validate_rules(live, build_environment(settings.templates_dir), services.settings, catalogue) == []
    assert catalogue_warnings(live, catalogue) == []


def test_event_rule_runs_are_not_recorded_for_an_unknown_customer_but_a_known_one_runs(world):
    world.rule("t.yaml", rule_yaml("big", "  event.amount: {gte: 500000}\n", category="service",
                                   trigger="{event: large_transaction}", channels="[sms]"))
    world.add("customers", customer("C1"))
    payload = {"event_id": "lt-9", "customer_id": "C2", "account_no": "6222020012345678",
               "amount": 800000, "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}
    services = world.services()
    with pytest.raises(EventPayloadError):
        fire_event(services, EventType.LARGE_TRANSACTION, payload, now=NOW)
    report = fire_event(services, EventType.LARGE_TRANSACTION, {**payload, "customer_id": "C1"}, now=NOW)
    assert rule_counts(report, "big")["queued"] == 1  # the same event id, now valid, is a first run
