"""The starter pack's holiday greeting: 春节, 端午, 中秋 from the lunar calendar and 国庆 on 10-01, in
any year 1901-2099, once on the day (not on every day off of the official holiday block)."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from factories import customer, run_day

from campaign_engine.facts.calendar import calendar_facts
from campaign_engine.facts.official import load_holidays
from campaign_engine.rulebook.loader import load_rulebook
from campaign_engine.selection.plan import plan_candidates
from campaign_engine.settings import PROJECT_ROOT

D = dt.date
UTC = dt.timezone.utc


@pytest.fixture
def greeting_world(world):
    """The starter holiday rule and template, and three customers (one restricted)."""
    shutil.copy(PROJECT_ROOT / "rules" / "holiday.yaml", world.settings.rules_dir)
    shutil.copytree(PROJECT_ROOT / "templates" / "holiday", world.settings.templates_dir / "holiday")
    world.add("customers", customer("C1"), customer("C2", name="李娜", gender="F"),
              customer("C3", tier="restricted"))
    return world


def greet(world, day: dt.date) -> tuple[dict, list]:
    now = dt.datetime.combine(day, dt.time(1, 0), tzinfo=UTC)  # 09:00 in Shanghai
    report = run_day(world.services(), today=day, now=now)
    return report, [m for m in world.messages() if m.created_at and m.run_id == report["run_id"]]


@pytest.mark.parametrize(("day", "wish"), [
    (D(2031, 10, 1), "值此国庆中秋双节之际"),  # 中秋 2031 falls on 国庆
    (D(2040, 2, 12), "新春快乐"),  # 春节 2040: no official calendar for 2040, the lunar one suffices
    (D(2026, 2, 17), "新春快乐"),
    (D(2026, 6, 19), "端午安康"),
    (D(2026, 9, 25), "中秋快乐"),
    (D(2026, 10, 1), "国庆快乐"),
])
def test_holiday_greeting_fires_on_the_festival_day(greeting_world, day, wish):
    report, messages = greet(greeting_world, day)
    [stats] = report["rules"]
    assert report["status"] == "completed" and stats["error"] is None
    assert (stats["candidates"], stats["queued"]) == (2, 2)  # the restricted customer is not read
    assert sorted(m.customer_id for m in messages) == ["C1", "C2"]
    assert all(wish in m.body and m.body.endswith("回复TD退订") for m in messages)
    assert any(m.body.startswith("【XX银行】李女士，") for m in messages)


@pytest.mark.parametrize("day", [
    D(2026, 2, 18),  # 正月初二: still a day off of the 春节 holiday, no second greeting
    D(2026, 2, 16),  # 除夕
    D(2026, 10, 2),  # 国庆节 day 2
    D(2026, 3, 10),
])
def test_holiday_greeting_reads_nothing_on_other_days(greeting_world, day):
    report, messages = greet(greeting_world, day)
    [stats] = report["rules"]
    assert (stats["candidates"], stats["queued"], messages) == (0, 0, [])


def test_holiday_greeting_fires_on_four_days_a_year_1901_2099():
    """Every day of 1901-2099: the rule reads candidates on 春节, 端午, 中秋 and 10-01 only, each
    once (three days in a year whose 中秋 falls on 10-01)."""
    rule = load_rulebook(PROJECT_ROOT / "rules").rules["holiday-greeting"]
    official = load_holidays(PROJECT_ROOT / "config" / "holidays.yaml")
    day, end = D(1901, 1, 1), D(2099, 12, 31)
    fired: dict[int, list[tuple[str, ...]]] = {}
    while day <= end:
        calendar = calendar_facts(day, official)
        if not plan_candidates(rule, day, {"calendar": calendar}).never:
            names = tuple(n for n in (calendar["festival"], f"{day:%m-%d}") if n in ("春节", "端午", "中秋", "10-01"))
            fired.setdefault(day.year, []).append(names)
        day += dt.timedelta(days=1)
    assert sorted(fired) == list(range(1901, 2100))
    double = []
    for year, days in fired.items():
        assert all(days), (year, days)  # every day it fires is one of them
        assert sorted(n for names in days for n in names) == sorted(["春节", "端午", "中秋", "10-01"]), (year, days)
        if len(days) == 3:
            double.append(year)
    assert double == [y for y in range(1901, 2100)
                      if calendar_facts(D(y, 10, 1), official)["festival"] == "中秋"]
    assert {2001, 2020, 2031} <= set(double)
