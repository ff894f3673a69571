"""The lunar calendar (campaign_engine.facts.lunar): conversions, festivals, solar terms, lunar birthdays.

Dates written out below are published ones, checked by hand, not computed: 春节 2025-01-29,
2026-02-17, 2027-02-06, 2031-01-23, 2040-02-12; 除夕 2025-01-28 and 2026-02-16 (both 腊月廿九:
years "without 年三十"); 中秋 2025-10-06, 2026-09-25, 2031-10-01 (with 国庆, as in 2001 and
2020); 端午 2025-05-31, 2026-06-19, 2027-06-09; 清明 2025-04-04, 2026-04-05; 冬至 2025-12-21,
2026-12-22; leap months 闰四月 2020, 闰六月 2025, 闰十一月 2033. Every day 1901-2099 is also
compared with two independent libraries (tests/test_calendar_crosscheck.py).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from campaign_engine.facts import lunar
from campaign_engine.facts.lunar import (FESTIVALS, TERM_NAMES, LunarDate, LunarRangeError,
                                         days_to_lunar_birthday, festival, leap_month,
                                         lunar_birthday_key, lunar_keys_between, lunar_keys_for,
                                         month_days, next_lunar_anniversary, solar_term, to_lunar,
                                         to_solar)

D = dt.date
GOLDEN = Path(__file__).parent / "data" / "festivals_2025_2035.csv"


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


# --------------------------------------------------------------------------- conversions

@pytest.mark.parametrize("solar, expected, text", [
    (D(2026, 2, 16), LunarDate(2025, 12, 29), "腊月廿九"),
    (D(2026, 2, 17), LunarDate(2026, 1, 1), "正月初一"),
    (D(1954, 11, 25), LunarDate(1954, 11, 1), "冬月初一"),
    (D(2025, 7, 25), LunarDate(2025, 6, 1, leap=True), "闰六月初一"),
    (D(2024, 2, 9), LunarDate(2023, 12, 30), "腊月三十"),
    (D(1901, 1, 1), LunarDate(1900, 11, 11), "冬月十一"),
    (D(2099, 12, 31), LunarDate(2099, 11, 20), "冬月二十"),
])
def test_to_lunar_known_dates(solar, expected, text):
    assert to_lunar(solar) == expected
    assert expected.chinese() == text


def test_to_solar_round_trips_every_day_of_a_leap_year_and_its_neighbours():
    for day in _days(D(2024, 1, 1), D(2026, 12, 31)):
        lunar_date = to_lunar(day)
        assert to_solar(lunar_date.year, lunar_date.month, lunar_date.day, lunar_date.leap) == day


def test_to_solar_leap_month_comes_after_the_ordinary_month():
    assert to_solar(2025, 6, 1) == D(2025, 6, 25)
    assert to_solar(2025, 6, 1, leap=True) == D(2025, 7, 25)
    assert to_solar(2025, 7, 1) == D(2025, 8, 23)


def test_leap_month_of_known_years():
    assert [leap_month(y) for y in (2017, 2020, 2023, 2024, 2025, 2033)] == [6, 4, 2, None, 6, 11]


def test_month_days_are_29_or_30_and_leap_months_count():
    assert month_days(2025, 12) == 29  # so 除夕 2026 is 腊月廿九
    assert month_days(2023, 12) == 30
    assert month_days(2025, 6, leap=True) == 29
    lengths = {month_days(y, m) for y in range(1901, 2100) for m in range(1, 13)}
    assert lengths == {29, 30}


def test_to_solar_rejects_a_day_30_the_month_lacks():
    with pytest.raises(ValueError, match="29 days"):
        to_solar(2025, 12, 30)


def test_to_solar_rejects_a_leap_month_the_year_lacks():
    with pytest.raises(ValueError, match="no leap month 5"):
        to_solar(2025, 5, 1, leap=True)


@pytest.mark.parametrize("call", [
    lambda: to_lunar(D(1900, 12, 31)),
    lambda: to_lunar(D(2100, 1, 1)),
    lambda: festival(D(2100, 1, 1)),
    lambda: solar_term(D(1900, 6, 21)),
    lambda: to_solar(2100, 1, 1),
    lambda: to_solar(1900, 1, 1),  # lunar 1900 starts in solar 1900
    lambda: leap_month(2100),
    lambda: next_lunar_anniversary(D(1960, 3, 1), D(2099, 12, 1)),  # the next one is in 2100
])
def test_outside_1901_2099_raises_lunar_range_error(call):
    with pytest.raises(LunarRangeError, match="1901-01-01 .. 2099-12-31"):
        call()


def test_to_lunar_refuses_a_datetime():
    with pytest.raises(TypeError):
        to_lunar(dt.datetime(2026, 2, 17, 8, 0))


# --------------------------------------------------------------------------- festivals and terms

def test_festival_dates_2025_2035_equal_the_golden_file():
    with GOLDEN.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    golden = {D.fromisoformat(r["date"]): (r["festival"], r["lunar"]) for r in rows}
    ours = {d: (festival(d), to_lunar(d).chinese()) for d in _days(D(2025, 1, 1), D(2035, 12, 31)) if festival(d)}
    assert ours == golden
    assert len(golden) == 11 * len(FESTIVALS)  # each festival once a solar year in 2025-2035


@pytest.mark.parametrize("day, name", [
    (D(2025, 1, 29), "春节"), (D(2026, 2, 17), "春节"), (D(2027, 2, 6), "春节"), (D(2040, 2, 12), "春节"),
    (D(2025, 1, 28), "除夕"), (D(2026, 2, 16), "除夕"), (D(2024, 2, 9), "除夕"),
    (D(2025, 10, 6), "中秋"), (D(2026, 9, 25), "中秋"), (D(2031, 10, 1), "中秋"),
    (D(2025, 5, 31), "端午"), (D(2026, 6, 19), "端午"), (D(2027, 6, 9), "端午"),
    (D(2025, 4, 4), "清明"), (D(2026, 4, 5), "清明"), (D(2025, 12, 21), "冬至"), (D(2026, 12, 22), "冬至"),
    (D(2026, 3, 3), "元宵"), (D(2026, 8, 19), "七夕"), (D(2026, 10, 18), "重阳"), (D(2026, 1, 26), "腊八"),
])
def test_festival_published_dates(day, name):
    assert festival(day) == name


def test_festival_none_on_an_ordinary_day_and_on_a_leap_month_double():
    assert festival(D(2026, 3, 10)) is None
    # 2028 has a leap 5th month: 端午 is 五月初五 of the ordinary month only
    assert festival(to_solar(2028, 5, 5)) == "端午"
    assert festival(to_solar(2028, 5, 5, leap=True)) is None


def test_festival_no_two_fall_on_one_day_1901_2099():
    lunar_days = {(1, 1), (1, 15), (5, 5), (7, 7), (8, 15), (9, 9), (12, 8)}
    day, one = lunar.FIRST_DAY, dt.timedelta(days=1)
    while day < lunar.LAST_DAY:
        date, tomorrow = to_lunar(day), to_lunar(day + one)
        hits = [not date.leap and (date.month, date.day) in lunar_days,
                (tomorrow.month, tomorrow.day, tomorrow.leap) == (1, 1, False),
                solar_term(day) in ("清明", "冬至")]
        assert sum(hits) <= 1, day
        day += one


def test_chuxi_2026_belongs_to_lunar_year_2025():
    assert to_lunar(D(2026, 2, 16)).year == 2025 and festival(D(2026, 2, 16)) == "除夕"


def test_solar_term_every_solar_year_has_each_term_once():
    for year in (1901, 1979, 2026, 2099):
        terms = [t for d in _days(D(year, 1, 1), D(year, 12, 31)) if (t := solar_term(d))]
        assert terms == list(TERM_NAMES)


def test_solar_term_known_days():
    assert solar_term(D(2026, 2, 4)) == "立春"
    assert solar_term(D(2026, 4, 5)) == "清明"
    assert solar_term(D(2026, 12, 22)) == "冬至"
    assert solar_term(D(2026, 4, 6)) is None


# --------------------------------------------------------------------------- lunar birthdays

def test_lunar_birthday_1954_11_25_greeted_on_11th_month_1st_each_year():
    birth = D(1954, 11, 25)
    assert to_lunar(birth) == LunarDate(1954, 11, 1)
    expected = [D(2025, 12, 20), D(2026, 12, 9), D(2027, 11, 28), D(2028, 12, 16), D(2029, 12, 5)]
    got = [next_lunar_anniversary(birth, D(year, 1, 1)) for year in range(2025, 2030)]
    assert got == expected
    assert all(to_lunar(d) == LunarDate(d.year, 11, 1) for d in got)  # lunar year = solar year here


def test_lunar_birthday_day_30_falls_on_29_in_a_short_month():
    birth = D(2024, 2, 9)  # 腊月三十 of lunar 2023
    assert next_lunar_anniversary(birth, D(2024, 3, 1)) == D(2025, 1, 28)  # lunar 2024: 腊月廿九
    assert next_lunar_anniversary(birth, D(2026, 1, 1)) == D(2026, 2, 16)  # 腊月廿九, 除夕
    assert days_to_lunar_birthday(birth, D(2026, 2, 16)) == 0
    assert to_lunar(D(2026, 2, 16)).chinese() == "腊月廿九"


def test_lunar_birthday_day_30_stays_30_in_a_long_month():
    birth = D(2024, 2, 9)
    assert month_days(2028, 12) == 29 and month_days(2029, 12) == 30
    assert next_lunar_anniversary(birth, D(2029, 3, 1)) == to_solar(2029, 12, 30)


def test_lunar_birthday_born_in_leap_month_celebrates_in_the_ordinary_month():
    birth = D(2020, 5, 23)  # 闰四月初一
    assert to_lunar(birth) == LunarDate(2020, 4, 1, leap=True)
    assert next_lunar_anniversary(birth, D(2021, 1, 1)) == to_solar(2021, 4, 1) == D(2021, 5, 12)
    assert lunar_birthday_key(birth) == (4, 1)


def test_lunar_birthday_not_in_the_leap_month_of_a_later_year():
    birth = D(2006, 7, 5)  # lunar 2006 六月初十 (ordinary)
    assert to_lunar(birth) == LunarDate(2006, 6, 10)
    # 2025 has a leap 6th month: the birthday is in the ordinary one, then next year
    assert next_lunar_anniversary(birth, D(2025, 6, 1)) == to_solar(2025, 6, 10)
    assert next_lunar_anniversary(birth, to_solar(2025, 6, 11)) == to_solar(2026, 6, 10)


def test_days_to_lunar_birthday_zero_on_the_day_then_counts_down():
    birth = D(1954, 11, 25)
    assert days_to_lunar_birthday(birth, D(2026, 12, 9)) == 0
    assert days_to_lunar_birthday(birth, D(2026, 12, 8)) == 1
    assert days_to_lunar_birthday(birth, D(2026, 12, 10)) == (D(2027, 11, 28) - D(2026, 12, 10)).days


def _births() -> list[dt.date]:
    # two birth years with a leap month (2020, 2023) and one with a 30-day 12th month (2023)
    return _days(D(2020, 1, 1), D(2020, 12, 31)) + _days(D(2023, 1, 1), D(2024, 2, 10))


@pytest.mark.parametrize("today", [D(2026, 1, 10), D(2026, 2, 10), D(2025, 7, 20), D(2025, 8, 20),
                                   D(2028, 6, 1), D(2033, 12, 10)])
@pytest.mark.parametrize("window", [0, 1, 7, 30])
def test_lunar_keys_for_selects_exactly_the_birthdays_in_the_window(today, window):
    keys = set(lunar_keys_for(today, window))
    births = _births()
    selected = {b for b in births if lunar_birthday_key(b) in keys}
    due = {b for b in births if days_to_lunar_birthday(b, today) <= window}
    assert selected == due


def test_lunar_keys_between_day_29_of_a_short_month_selects_day_30():
    assert lunar_keys_for(D(2026, 2, 16), 0) == [(12, 29), (12, 30)]


def test_lunar_keys_between_no_key_on_a_leap_month_day():
    assert lunar_keys_for(D(2025, 7, 25), 0) == []  # 闰六月初一


def test_lunar_keys_between_a_long_window_covers_every_key():
    keys = lunar_keys_between(D(2026, 3, 1), 0, 1000)
    assert len(keys) == 12 * 30 and keys == sorted(keys)


def test_lunar_keys_between_skips_the_days_before_lo():
    assert lunar_keys_between(D(2026, 2, 17), 1, 1) == [(1, 2)]
    assert lunar_keys_between(D(2026, 2, 17), 3, 2) == []


def test_lunar_table_loads_once():
    assert lunar._table() is lunar._table()
