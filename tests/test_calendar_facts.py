"""calendar.* facts (lunar and official) and the derived lunar-birthday and business-day fields."""

from __future__ import annotations

import datetime as dt

import pytest

from campaign_engine.facts.calendar import OFFICIAL_FIELDS, calendar_facts, calendar_problems
from campaign_engine.facts.derived import (business_days_to_maturity, days_to_lunar_birthday,
                                           lunar_birth_mmdd, lunar_birthday_mmdd_window, payout_date)
from campaign_engine.facts.namespaces import flatten_facts
from campaign_engine.facts.official import load_holidays
from campaign_engine.settings import PROJECT_ROOT

D = dt.date


@pytest.fixture(scope="module")
def official():
    return load_holidays(PROJECT_ROOT / "config" / "holidays.yaml")


# --------------------------------------------------------------------------- calendar_facts

def test_calendar_facts_on_chuxi_2026(official):
    assert calendar_facts(D(2026, 2, 16), official) == {
        "date": D(2026, 2, 16), "weekday": 1, "month": 2, "day": 16, "announced": True,
        "holiday": "春节", "holiday_day": 2, "is_workday": False,
        "lunar_month": 12, "lunar_day": 29, "lunar_leap": False, "lunar_date": "腊月廿九",
        "festival": "除夕", "solar_term": None,
    }


def test_calendar_facts_on_a_saturday_worked(official):
    facts = calendar_facts(D(2026, 2, 14), official)
    assert (facts["weekday"], facts["is_workday"], facts["holiday"], facts["holiday_day"]) == (6, True, None, None)


def test_calendar_facts_on_qingming_2026(official):
    facts = calendar_facts(D(2026, 4, 5), official)
    assert (facts["holiday"], facts["holiday_day"], facts["festival"], facts["solar_term"]) == ("清明节", 2, "清明", "清明")


def test_calendar_facts_in_a_leap_month(official):
    facts = calendar_facts(D(2025, 7, 25), official)
    assert (facts["lunar_month"], facts["lunar_day"], facts["lunar_leap"]) == (6, 1, True)


def test_calendar_facts_unannounced_year_official_fields_are_none_and_reported(official):
    facts = calendar_facts(D(2027, 2, 6), official)
    assert facts["announced"] is False
    assert [facts[name] for name in OFFICIAL_FIELDS] == [None, None, None]
    assert facts["festival"] == "春节" and facts["weekday"] == 6  # the lunar side is astronomy: known
    [problem] = calendar_problems(D(2027, 2, 6), official)
    assert problem.file == official.source
    assert "2027" in problem.reason and "calendar.is_workday" in problem.reason


def test_calendar_problems_none_on_an_announced_day(official):
    assert calendar_problems(D(2026, 2, 16), official) == []


def test_calendar_facts_last_days_of_december_wait_for_next_year(official):
    assert calendar_facts(D(2026, 12, 28), official)["announced"] is True
    facts = calendar_facts(D(2026, 12, 30), official)
    assert facts["announced"] is False and facts["is_workday"] is None
    assert "2027" in calendar_problems(D(2026, 12, 30), official)[0].reason


def test_calendar_facts_flatten_for_the_engine(official):
    ns = {"calendar": calendar_facts(D(2026, 2, 17), official)}
    fact = flatten_facts(ns, ["calendar.festival", "calendar.holiday_day", "calendar.is_workday", "calendar.lunar_leap"])
    assert fact == {"calendar__festival": "春节", "calendar__holiday_day": 3, "calendar__is_workday": False,
                    "calendar__lunar_leap": False}


# --------------------------------------------------------------------------- lunar birthdays

def test_days_to_lunar_birthday_delegates_and_handles_missing_birth_dates():
    assert days_to_lunar_birthday(D(1954, 11, 25), D(2026, 12, 9)) == 0
    assert days_to_lunar_birthday(None, D(2026, 12, 9)) is None
    assert days_to_lunar_birthday(D(1899, 5, 1), D(2026, 12, 9)) is None  # before the lunar table


def test_lunar_birth_mmdd_counts_a_leap_month_as_the_ordinary_one():
    assert lunar_birth_mmdd(D(1954, 11, 25)) == 1101
    assert lunar_birth_mmdd(D(2020, 5, 23)) == 401  # 闰四月初一
    assert lunar_birth_mmdd(None) is None


def test_lunar_birthday_mmdd_window_selects_day_30_on_a_short_29th():
    assert lunar_birthday_mmdd_window(D(2026, 2, 16), 0, 0) == {1229, 1230}
    assert lunar_birthday_mmdd_window(D(2026, 2, 16), 0, 2) == {1229, 1230, 101, 102}


def test_lunar_birthday_mmdd_window_empty_and_whole_year():
    assert lunar_birthday_mmdd_window(D(2026, 2, 16), 5, 4) == frozenset()
    assert lunar_birthday_mmdd_window(D(2026, 2, 16), 0, 400) is None


def test_lunar_birthday_mmdd_window_never_misses_a_birthday():
    today = D(2026, 1, 20)
    window = lunar_birthday_mmdd_window(today, 3, 40)
    births = [D(1950, 1, 1) + dt.timedelta(days=i) for i in range(0, 365 * 40, 7)]
    for birth in births:
        if 3 <= days_to_lunar_birthday(birth, today) <= 40:
            assert lunar_birth_mmdd(birth) in window, birth


# --------------------------------------------------------------------------- business days

@pytest.mark.parametrize("maturity, payout", [
    (D(2026, 3, 9), D(2026, 3, 9)),  # a Monday: that day
    (D(2026, 3, 7), D(2026, 3, 9)),  # a Saturday: the Monday
    (D(2026, 2, 14), D(2026, 2, 14)),  # a Saturday worked (调休)
    (D(2026, 2, 16), D(2026, 2, 24)),  # 春节: after the holiday
    (D(2026, 10, 3), D(2026, 10, 8)),
])
def test_payout_date_rolls_to_the_next_business_day(official, maturity, payout):
    assert payout_date(maturity, official) == payout


def test_payout_date_none_when_unknown(official):
    assert payout_date(None, official) is None
    assert payout_date(D(2027, 2, 6), official) is None  # 2027 not announced: not guessed


def test_business_days_to_maturity(official):
    assert business_days_to_maturity(D(2026, 3, 9), D(2026, 3, 9), official) == 0
    assert business_days_to_maturity(D(2026, 3, 9), D(2026, 3, 6), official) == 1  # Friday before
    assert business_days_to_maturity(D(2026, 3, 7), D(2026, 3, 6), official) == 1  # Saturday: paid Monday
    assert business_days_to_maturity(D(2026, 2, 16), D(2026, 2, 13), official) == 2  # 02-14 worked, then 02-24
    assert business_days_to_maturity(D(2026, 3, 6), D(2026, 3, 9), official) == -1


def test_business_days_to_maturity_none_when_unknown(official):
    assert business_days_to_maturity(None, D(2026, 3, 9), official) is None
    assert business_days_to_maturity(D(2027, 3, 9), D(2026, 3, 9), official) is None
    assert business_days_to_maturity(D(2026, 3, 9), D(2027, 3, 9), official) is None

