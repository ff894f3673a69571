"""Rules that plan calls and visits for the customer's relationship manager (issue #12): who, which
business day, capacity rolling over to the horizon and then the next channel, repeated alerts
merging, the branch queue, and the contact policy applied to tasks as to messages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from campaign_engine.store.models import Consent, Manager, Task
from campaign_engine.vocabulary import EventType
from factories import NOW, customer, deposit, fire_event, publish_rules, rule_yaml, run_day

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
TASK_TEXT = "电联{{ customer.name }}：{{ event.amount | money }}；经理 {{ manager.name or '队列' }}；{{ task.due_at }}"
CALL_RULE = rule_yaml("big-move", "  customer.customer_id: {ref: event.customer_id}\n  event.amount: {gte: 500000}\n",
                      category="service", channels="[call, sms]", template="big",
                      trigger="{event: large_transaction, subject: customer}")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def manager(engine: Any, manager_id: str, *, calls: int = 25, visits: int = 4, active: bool = True,
            branch: str = "北京分行") -> None:
    with engine.begin() as conn:
        conn.execute(insert(Manager).values(manager_id=manager_id, name=f"经理{manager_id}", branch=branch,
                                            mobile="13900000000", email=f"{manager_id.lower()}@bank.example",
                                            daily_call_capacity=calls, daily_visit_capacity=visits, active=active,
                                            updated_at=NOW, source="test"))


def tasks(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Task).order_by(Task.id)).mappings()]


def large_move(customer_id: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer_id, "account_no": "6222020012345678", "amount": 800000,
            "direction": "in", "occurred_at": "2026-03-13T09:30:00+08:00", **extra}


@pytest.fixture
def calls(world, engine):
    world.template("big", {"sms.txt.j2": "{{ customer.name }}，您的大额入账已到账", "task.txt.j2": TASK_TEXT})
    world.rule("big.yaml", CALL_RULE)
    world.add("customers", customer("C1", tier="diamond", manager_id="M1"),
              customer("C2", tier="diamond", manager_id=None, branch="上海分行"),
              customer("C3", tier="diamond", manager_id="GONE"), customer("C4", tier="diamond", manager_id="M2"))
    manager(engine, "M1")
    manager(engine, "M2", active=False, branch="广州分行")
    return world.services()


def test_a_large_move_plans_one_call_for_the_manager_due_the_next_business_day_across_a_weekend(calls, world, engine):
    friday = local(2026, 3, 13, 15, 0)  # a Friday afternoon: the next business day is Monday
    report = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-1"), now=friday)
    [stats] = report["rules"]
    assert (stats["tasks"], stats["queued"], stats["merged"]) == (1, 0, 0)
    [task] = tasks(engine)
    assert (task["manager_id"], task["type"], task["status"], task["customer_id"]) == ("M1", "call", "open", "C1")
    assert task["due_at"] == local(2026, 3, 16, 10, 0)
    assert task["talking_points"] == "电联张伟：¥800,000.00；经理 经理M1；2026-03-16 10:00"
    assert task["run_id"] == report["run_id"] and task["rule_version"] == 1
    assert world.messages() == []  # a call, not an SMS


def test_across_the_national_day_holiday_the_call_is_due_on_the_first_working_day_after_it(calls, engine):
    # 2026: 国庆 10-01 .. 10-07 off (official calendar); 2026-09-30 is a Wednesday
    fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-nd"), now=local(2026, 9, 30, 11, 0))
    [task] = tasks(engine)
    assert task["due_at"] == local(2026, 10, 8, 10, 0)


def test_a_working_weekend_counts_as_a_business_day(calls, engine):
    # 2026-02-13 (Friday) -> 2026-02-14 is an adjusted working Saturday (调休) before 春节
    fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-ws"), now=local(2026, 2, 13, 16, 0))
    [task] = tasks(engine)
    assert task["due_at"] == local(2026, 2, 14, 10, 0)


def test_a_repeated_alert_merges_into_the_open_task(calls, engine):
    first = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-1"), now=local(2026, 3, 10, 9, 0))
    again = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-2", amount=1200000),
                       now=local(2026, 3, 10, 11, 0))
    assert (first["rules"][0]["tasks"], again["rules"][0]["tasks"], again["rules"][0]["merged"]) == (1, 0, 1)
    [task] = tasks(engine)
    assert task["alerts"] == 2 and "¥1,200,000.00" in task["talking_points"]
    assert task["last_alert_at"] == local(2026, 3, 10, 11, 0)


def test_a_customer_without_an_active_manager_lands_in_the_branch_queue(calls, engine):
    for cid in ("C2", "C3", "C4"):  # no manager, an unknown one, an inactive one
        fire_event(calls, EventType.LARGE_TRANSACTION, large_move(cid, f"lt-{cid}"), now=local(2026, 3, 10, 9, 0))
    assert [(t["customer_id"], t["manager_id"], t["branch"]) for t in tasks(engine)] == [
        ("C2", None, "上海分行"), ("C3", None, "北京分行"), ("C4", None, "北京分行")]
    assert all("经理 队列" in t["talking_points"] for t in tasks(engine))


def test_an_urgent_rule_plans_the_call_for_today_inside_the_call_window(world, engine):
    world.template("big", {"sms.txt.j2": "x", "task.txt.j2": TASK_TEXT})
    world.rule("big.yaml", CALL_RULE.replace("priority: 50", "priority: 95"))
    world.add("customers", customer("C1", tier="diamond", manager_id="M1"))
    manager(engine, "M1")
    services = world.services()
    fire_event(services, EventType.LARGE_TRANSACTION, large_move("C1", "early"), now=local(2026, 3, 10, 7, 30))
    fire_event(services, EventType.LARGE_TRANSACTION, large_move("C1", "late"), now=local(2026, 3, 10, 19, 0))
    with engine.begin() as conn:
        conn.execute(Task.__table__.delete())
    fire_event(services, EventType.LARGE_TRANSACTION, large_move("C1", "noon"), now=local(2026, 3, 10, 12, 15))
    [task] = tasks(engine)
    assert task["due_at"] == local(2026, 3, 10, 12, 15)


def test_a_full_manager_rolls_to_the_next_business_day_then_the_rule_falls_back_to_sms(world, engine):
    world.template("big", {"sms.txt.j2": "{{ customer.name }}，感谢您的信任", "task.txt.j2": "电联{{ customer.name }}"})
    world.rule("daily.yaml", rule_yaml("top-call", "  customer.tier: diamond\n", category="service",
                                       channels="[call, sms]", template="big"))
    world.add("customers", *[customer(f"C{i:03d}", tier="diamond", manager_id="M1", mobile=f"138{i:08d}")
                             for i in range(1, 81)])
    manager(engine, "M1", calls=25)
    services = world.services()
    report = run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))  # a Tuesday
    [stats] = report["rules"]
    assert (stats["tasks"], stats["queued"]) == (75, 5)  # 25 a day for 1 + horizon (2 more) business days
    days = [t["due_at"].astimezone(SHANGHAI).date() for t in tasks(engine)]
    assert {d: days.count(d) for d in sorted(set(days))} == {
        dt.date(2026, 3, 11): 25, dt.date(2026, 3, 12): 25, dt.date(2026, 3, 13): 25}
    by_customer = {t["customer_id"]: t["due_at"].astimezone(SHANGHAI).date() for t in tasks(engine)}
    assert by_customer["C026"] == dt.date(2026, 3, 12)  # the 26th call rolls to the next business day
    assert sorted(m.customer_id for m in world.messages()) == ["C076", "C077", "C078", "C079", "C080"]
    assert {m.channel for m in world.messages()} == {"sms"}


def test_past_the_horizon_with_no_next_channel_a_match_is_suppressed_manager_capacity(world, engine):
    world.template("big", {"task.txt.j2": "电联{{ customer.name }}"})
    world.rule("daily.yaml", rule_yaml("top-call", "  customer.tier: diamond\n", category="service",
                                       channels="[call]", template="big"))
    world.add("customers", *[customer(f"C{i}", tier="diamond", manager_id="M1") for i in range(1, 6)])
    manager(engine, "M1", calls=1)
    services = world.services()
    [stats] = run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))["rules"]
    assert stats["tasks"] == 3 and stats["suppressed"] == {"manager_capacity": 2}
    # a dry run counts the same and reserves nothing
    dry = run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0), dry_run=True)
    assert dry["rules"][0]["duplicates"] == 3 and dry["rules"][0]["suppressed"] == {"manager_capacity": 2}


def test_do_not_contact_and_missing_phone_consent_suppress_tasks_like_messages(world, engine):
    world.template("big", {"task.txt.j2": "电联{{ customer.name }}"})
    world.rule("daily.yaml", rule_yaml("promo-call", "  customer.tier: diamond\n", category="marketing",
                                       channels="[call]", template="big"))
    world.add("customers", customer("C1", tier="diamond", manager_id="M1", do_not_contact=True),
              customer("C2", tier="diamond", manager_id="M1"), customer("C3", tier="diamond", manager_id="M1"))
    manager(engine, "M1")
    with engine.begin() as conn:
        conn.execute(insert(Consent).values(customer_id="C3", channel="phone", granted=True, source="branch form",
                                            recorded_at=NOW))
    services = world.services()
    [stats] = run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))["rules"]
    assert stats["tasks"] == 1 and stats["suppressed"] == {"do_not_contact": 1, "no_consent": 1}
    [task] = tasks(engine)
    assert (task["customer_id"], task["consent_source"]) == ("C3", "branch form")
    # at most one marketing call a week (tasks.caps): the next day's run plans none for C3
    with engine.begin() as conn:
        conn.execute(Task.__table__.update().values(status="done"))
    [again] = run_day(services, today=dt.date(2026, 3, 11), now=local(2026, 3, 11, 9, 0))["rules"]
    assert again.get("tasks", 0) == 0 and again["suppressed"]["frequency_cap"] == 1


def test_suitability_applies_to_a_product_call(world, engine):
    world.template("fund", {"task.txt.j2": "推荐{{ product.name }}（{{ suitability.suitable }}）"})
    world.rule("fund.yaml", rule_yaml("fund-call", "  customer.tier: diamond\n", category="service",
                                      channels="[call]", template="fund", extra="product: FUND-EQ01\n"))
    world.add("customers", customer("C1", tier="diamond", manager_id="M1", risk_level="C5"),
              customer("C2", tier="diamond", manager_id="M1", risk_level="C2"))
    manager(engine, "M1")
    [stats] = run_day(world.services(), today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))["rules"]
    assert stats["tasks"] == 1 and stats["suppressed"] == {"suitability": 1}
    [task] = tasks(engine)
    assert task["customer_id"] == "C1" and task["talking_points"] == "推荐成长股票基金（True）"


def test_a_rule_with_call_but_no_task_template_is_refused_at_publish(world, engine):
    world.template("big", {"sms.txt.j2": "x"})
    world.rule("big.yaml", CALL_RULE)
    world.publish()
    assert [p["reason"] for p in world.problems] == ["template big has no call part"]


def test_the_starter_pack_calls_top_tiers_texts_the_others_and_plans_visits_for_big_deposits(settings, engine):
    from campaign_engine.bootstrap import open_services
    from campaign_engine.store.upsert import upsert_rows
    from factories import PRODUCTS

    with engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        # large-transaction-call is marketing: the top tiers' calls need their phone-marketing consent
        upsert_rows(conn, "customers", [customer("C1", tier="diamond", manager_id="M1", phone_consent=True),
                                        customer("C2", tier="platinum", manager_id="M1", phone_consent=True),
                                        customer("C3", tier="gold", manager_id="M1")], now=NOW, source="test")
        upsert_rows(conn, "deposits", [
            deposit("D1", "C1", amount=Decimal("1500000"), maturity_date=dt.date(2026, 3, 20)),
            deposit("D2", "C1", amount=Decimal("900000"), maturity_date=dt.date(2026, 3, 20)),
            deposit("D3", "C2", amount=Decimal("2000000"), maturity_date=dt.date(2026, 3, 20))], now=NOW, source="test")
    manager(engine, "M1")
    assert all(d["status"] == "live" for d in publish_rules(settings))
    services = open_services(settings)
    try:
        for cid in ("C1", "C2", "C3"):
            fire_event(services, EventType.LARGE_TRANSACTION, large_move(cid, f"lt-{cid}"), now=local(2026, 3, 10, 9, 0))
        run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0), rule_ids=["td-maturity-visit"])
    finally:
        services.close()
    planned = [(t["rule_id"], t["customer_id"], t["type"], t["subject_id"]) for t in tasks(engine)]
    assert planned == [("large-transaction-call", "C1", "call", "C1"), ("large-transaction-call", "C2", "call", "C2"),
                       ("td-maturity-visit", "C1", "visit", "D1")]
    with engine.connect() as conn:
        from campaign_engine.store.models import Message

        texts = [tuple(r) for r in conn.execute(select(Message.rule_id, Message.customer_id, Message.channel))]
    assert texts == [("large-transaction-followup", "C3", "sms")]
    [visit] = [t for t in tasks(engine) if t["type"] == "visit"]
    assert "面谈" in visit["talking_points"] and "¥1,500,000.00" in visit["talking_points"]


def test_refused_stops_the_next_marketing_call_and_every_phone_marketing_rule(world, engine):
    from campaign_engine.pipeline.tasks import OutcomeRequest, Viewer, record_outcome
    from campaign_engine.vocabulary import TaskOutcome

    world.template("big", {"task.txt.j2": "电联{{ customer.name }}"})
    world.rule("a.yaml", rule_yaml("fund-call", "  customer.tier: diamond\n", category="marketing",
                                   channels="[call]", template="big"))
    world.rule("b.yaml", rule_yaml("insurance-visit", "  customer.tier: diamond\n", category="marketing",
                                   channels="[visit]", template="big", priority=40))
    world.add("customers", customer("C1", tier="diamond", manager_id="M1"))
    manager(engine, "M1")
    with engine.begin() as conn:
        conn.execute(insert(Consent).values(customer_id="C1", channel="phone", granted=True, source="branch form",
                                            recorded_at=NOW))
    services = world.services()
    run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))
    call, visit = tasks(engine)
    assert (call["rule_id"], visit["rule_id"], visit["status"]) == ("fund-call", "insurance-visit", "open")
    record_outcome(services, call["id"], OutcomeRequest(TaskOutcome.REFUSED, note="不要再打电话"),
                   Viewer("key:m1#1", "manager", "M1"), now=local(2026, 3, 11, 10, 30))
    call, visit = tasks(engine)
    assert (call["status"], call["outcome"]) == ("done", "refused")
    assert visit["status"] == "cancelled"  # the customer's other open marketing task goes with the consent
    with engine.connect() as conn:
        [consent] = conn.execute(select(Consent.granted, Consent.source).where(Consent.channel == "phone")).all()
    assert tuple(consent) == (False, f"task:{call['id']}")
    [a, b] = run_day(services, today=dt.date(2026, 3, 18), now=local(2026, 3, 18, 9, 0))["rules"]
    assert a["suppressed"] == {"no_consent": 1} and b["suppressed"] == {"no_consent": 1}
    assert len(tasks(engine)) == 2


def test_the_effect_of_a_task_rule_counts_its_calls_as_the_treated_arm(world, engine):
    from campaign_engine.pipeline.effect import EffectRequest, effect_report, rules_with_goals
    from campaign_engine.pipeline.tasks import OutcomeRequest, Viewer, record_outcome
    from campaign_engine.store.conversions import insert_conversions
    from campaign_engine.vocabulary import TaskOutcome

    world.template("big", {"task.txt.j2": "电联{{ customer.name }}"})
    world.rule("a.yaml", rule_yaml("vip-call", "  customer.tier: diamond\n", category="service", channels="[call]",
                                   template="big", extra="goal: {type: custom, within_days: 14}\nholdout: {percent: 50}\n"))
    world.add("customers", *[customer(f"C{i:03d}", tier="diamond", manager_id="M1") for i in range(1, 41)])
    manager(engine, "M1", calls=100)
    services = world.services()
    assert rules_with_goals(services) == ["vip-call"]
    [stats] = run_day(services, today=dt.date(2026, 3, 10), now=local(2026, 3, 10, 9, 0))["rules"]
    planned = tasks(engine)
    held = [m.customer_id for m in world.messages(status="held_out")]
    assert stats["tasks"] == len(planned) > 0 and stats["held_out"] == len(held) > 0
    assert len(planned) + len(held) == 40 and {m.channel for m in world.messages()} == {"call"}
    manager_m1 = Viewer("key:m1#1", "manager", "M1")
    for task in planned[:4]:  # four calls convert; two reached, not converted; the rest not worked yet
        record_outcome(services, task["id"], OutcomeRequest(TaskOutcome.CONVERTED), manager_m1,
                       now=local(2026, 3, 11, 11, 0))
    for task in planned[4:6]:
        record_outcome(services, task["id"], OutcomeRequest(TaskOutcome.DECLINED), manager_m1,
                       now=local(2026, 3, 11, 11, 0))
    with engine.begin() as conn:  # one held-out customer converts on their own
        insert_conversions(conn, [{"conversion_id": "branch-1", "customer_id": held[0], "type": "custom",
                                   "product_code": None, "amount": None, "occurred_at": local(2026, 3, 12, 10, 0)}],
                           source="test", now=NOW)
    counts = services.store.effect_counts(rule_id="vip-call", goal=services.rulebook.rules["vip-call"].goal,
                                          holdout_group="rule", since=None, until=None, run_id=None,
                                          now=local(2026, 3, 30, 9, 0), with_tasks=True)
    assert (counts.treated.n, counts.treated.conversions) == (len(planned), 4)
    assert (counts.holdout.n, counts.holdout.conversions) == (len(held), 1)
    assert (counts.contacted, counts.contacted_conversions) == (6, 4)  # the calls where the manager spoke with them
    report = effect_report(services, EffectRequest("vip-call"), now=local(2026, 3, 30, 9, 0))
    assert report is not None
