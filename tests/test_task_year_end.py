"""Manager tasks at the end of a year whose successor the holiday file does not announce yet.

config/holidays.yaml stops at 2026. Its last days (29-31 December) stay unknown until 2027's notice
is in (that notice may make them days off, as 2019's 元旦 did with 2018-12-30 and -31), so the
planning uses the business days it knows, in order, and stops at the first one it does not: a task
that needs no unknown day is planned; one whose known days are full falls to the rule's next
channel; only a rule whose very first due day is unknown is reported, naming the day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from campaign_engine.facts.official import CalendarNotAnnounced, load_holidays
from campaign_engine.pipeline.task_planning import business_days, known_business_days
from campaign_engine.vocabulary import EventType
from factories import customer, fire_event
from test_manager_tasks import calls, large_move, local, manager, tasks  # noqa: F401 (the fixture)

HOLIDAYS = Path(__file__).resolve().parent.parent / "config" / "holidays.yaml"
NOTICE_2027 = """
2027:
  holidays:
    元旦: 2027-01-01 .. 2027-01-03
  workdays: []
"""


@pytest.fixture
def official():
    return load_holidays(HOLIDAYS)


def test_business_days_are_lazy_and_stop_only_where_an_unknown_day_is_needed(official):
    days = business_days(dt.date(2026, 12, 24), 3, official)
    assert [next(days), next(days)] == [dt.date(2026, 12, 24), dt.date(2026, 12, 25)]
    with pytest.raises(CalendarNotAnnounced) as raised:  # 2026-12-28 is known, the day after it is not
        list(business_days(dt.date(2026, 12, 28), 2, official))
    assert raised.value.day == dt.date(2026, 12, 29)
    assert known_business_days(dt.date(2026, 12, 25), 3, official) == [dt.date(2026, 12, 25), dt.date(2026, 12, 28)]
    assert known_business_days(dt.date(2026, 12, 23), 3, official) == [
        dt.date(2026, 12, 23), dt.date(2026, 12, 24), dt.date(2026, 12, 25)]


def test_a_horizon_reaching_into_an_unannounced_year_plans_on_the_known_days(calls, world, engine):
    # Thursday 2026-12-24: the horizon is 12-25, 12-28 and 12-29 (unknown); 12-25 has room
    report = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-xmas"), now=local(2026, 12, 24, 10, 0))
    [stats] = report["rules"]
    assert stats["error"] is None and stats["tasks"] == 1
    [task] = tasks(engine)
    assert (task["manager_id"], task["due_at"]) == ("M1", local(2026, 12, 25, 10, 0))
    assert world.messages() == []


def test_when_the_known_days_are_full_the_call_falls_back_to_the_sms(world, engine):
    world.template("big", {"sms.txt.j2": "{{ customer.name }}，您的大额入账已到账", "task.txt.j2": "电联{{ customer.name }}"})
    from test_manager_tasks import CALL_RULE

    world.rule("big.yaml", CALL_RULE)
    world.add("customers", *[customer(f"C{i}", tier="diamond", manager_id="M1", mobile=f"1380000000{i}")
                             for i in (1, 2, 3)])
    manager(engine, "M1", calls=1)
    services = world.services()
    for cid in ("C1", "C2", "C3"):  # one call a day: 12-25, 12-28, then 12-29 is not announced
        report = fire_event(services, EventType.LARGE_TRANSACTION, large_move(cid, f"lt-{cid}"),
                            now=local(2026, 12, 24, 10, 0))
        assert report["rules"][0]["error"] is None, report
    assert [(t["customer_id"], t["due_at"]) for t in tasks(engine)] == [
        ("C1", local(2026, 12, 25, 10, 0)), ("C2", local(2026, 12, 28, 10, 0))]
    [sms] = world.messages()
    assert (sms.customer_id, sms.channel) == ("C3", "sms")


def test_a_rule_whose_first_due_day_is_unknown_is_reported_naming_that_day(calls, world, engine):
    report = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-ye"), now=local(2026, 12, 29, 10, 0))
    [stats] = report["rules"]
    assert stats["error"].startswith("the official calendar for 2027 is not announced yet: whether its manager "
                                     "tasks (call, visit) can be due on 2026-12-30 is unknown, so the rule did "
                                     "not run")
    assert " on on " not in stats["error"]
    assert tasks(engine) == [] and world.messages() == []


def test_a_repeated_alert_still_merges_at_the_year_end_it_needs_no_business_day(calls, engine):
    first = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-1"), now=local(2026, 12, 24, 9, 0))
    assert first["rules"][0]["tasks"] == 1
    again = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-2"), now=local(2026, 12, 29, 9, 0))
    [stats] = again["rules"]
    assert (stats["error"], stats["merged"]) == (None, 1)
    [task] = tasks(engine)
    assert task["alerts"] == 2


def test_an_urgent_rule_needs_the_run_date_itself(world, engine):
    from test_manager_tasks import CALL_RULE, TASK_TEXT

    world.template("big", {"sms.txt.j2": "x", "task.txt.j2": TASK_TEXT})
    world.rule("big.yaml", CALL_RULE.replace("priority: 50", "priority: 95"))
    world.add("customers", customer("C1", tier="diamond", manager_id="M1"))
    manager(engine, "M1")
    report = fire_event(world.services(), EventType.LARGE_TRANSACTION, large_move("C1", "u"),
                        now=local(2026, 12, 29, 10, 0))
    assert "whether its manager tasks (call, visit) can be due on 2026-12-29 is unknown" in report["rules"][0]["error"]


def test_with_the_next_notice_in_the_file_12_29_plans_on_12_30(world, engine, tmp_path):
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(HOLIDAYS.read_text(encoding="utf-8") + NOTICE_2027, encoding="utf-8")
    world.settings = world.settings.replace(holidays_file=holidays)
    from test_manager_tasks import CALL_RULE, TASK_TEXT

    world.template("big", {"sms.txt.j2": "x", "task.txt.j2": TASK_TEXT})
    world.rule("big.yaml", CALL_RULE)
    world.add("customers", customer("C1", tier="diamond", manager_id="M1"), customer("C2", tier="diamond",
                                                                                     manager_id="M1"))
    manager(engine, "M1", calls=1)
    services = world.services()
    for cid in ("C1", "C2"):
        fire_event(services, EventType.LARGE_TRANSACTION, large_move(cid, f"lt-{cid}"), now=local(2026, 12, 29, 10, 0))
    assert [t["due_at"] for t in tasks(engine)] == [local(2026, 12, 30, 10, 0), local(2026, 12, 31, 10, 0)]
