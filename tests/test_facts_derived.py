"""Derived date fields: age, days_to_birthday, days_to_maturity and the SQL birthday window.

29 February birthdays fall on 28 February in common years, everywhere: in
days_to_birthday, in age, and in the birth_mmdd window SQL selects on.
"""

from __future__ import annotations

import datetime as dt

import pytest

from campaign_engine.facts import (age, birth_mmdd, birthday_mmdd_window, days_to_birthday,
                                   days_to_maturity)

D = dt.date


def _days_of(year: int) -> list[dt.date]:
    day, out = D(year, 1, 1), []
    while day.year == year:
        out.append(day)
        day += dt.timedelta(days=1)
    return out


# Birth dates around the awkward corners of the calendar.
BIRTHS = (
    D(1980, 1, 1), D(1981, 2, 28), D(1980, 2, 29), D(2000, 2, 29), D(1981, 3, 1),
    D(1975, 6, 15), D(1985, 12, 25), D(1990, 12, 31),
)


# --------------------------------------------------------------------------- days_to_birthday

def test_days_to_birthday_zero_on_the_birthday():
    assert days_to_birthday(D(1960, 3, 15), D(2026, 3, 15)) == 0


def test_days_to_birthday_one_on_the_day_before():
    assert days_to_birthday(D(1960, 3, 15), D(2026, 3, 14)) == 1


def test_days_to_birthday_next_year_once_passed():
    assert days_to_birthday(D(1960, 3, 15), D(2026, 3, 16)) == 364


def test_days_to_birthday_wraps_over_new_year():
    assert days_to_birthday(D(1990, 1, 1), D(2026, 12, 31)) == 1


def test_days_to_birthday_feb29_on_feb28_of_common_year():
    assert days_to_birthday(D(1980, 2, 29), D(2026, 2, 28)) == 0


def test_days_to_birthday_feb29_on_feb29_of_leap_year():
    assert days_to_birthday(D(1980, 2, 29), D(2028, 2, 29)) == 0


def test_days_to_birthday_feb29_on_feb28_of_leap_year_is_tomorrow():
    assert days_to_birthday(D(1980, 2, 29), D(2028, 2, 28)) == 1


def test_days_to_birthday_feb29_on_mar1_of_common_year_waits_for_next_year():
    # Celebrated on 28 Feb 2026 already; next is 28 Feb 2027.
    assert days_to_birthday(D(1980, 2, 29), D(2026, 3, 1)) == 364


def test_days_to_birthday_none_without_birth_date():
    assert days_to_birthday(None, D(2026, 3, 10)) is None


# --------------------------------------------------------------------------- age

def test_age_increments_on_the_birthday():
    birth = D(1966, 3, 10)
    assert age(birth, D(2026, 3, 9)) == 59
    assert age(birth, D(2026, 3, 10)) == 60


def test_age_feb29_birth_turns_older_on_feb28_in_common_year():
    birth = D(1964, 2, 29)
    assert age(birth, D(2025, 2, 27)) == 60
    assert age(birth, D(2025, 2, 28)) == 61


def test_age_feb29_birth_turns_older_on_feb29_in_leap_year():
    birth = D(1964, 2, 29)
    assert age(birth, D(2028, 2, 28)) == 63
    assert age(birth, D(2028, 2, 29)) == 64


def test_age_none_without_birth_date():
    assert age(None, D(2026, 3, 10)) is None


# --------------------------------------------------------------------------- days_to_maturity

@pytest.mark.parametrize(("maturity", "expected"), [
    (D(2026, 3, 10), 0),
    (D(2026, 3, 17), 7),
    (D(2026, 3, 9), -1),
    (D(2026, 2, 28), -10),
])
def test_days_to_maturity_counts_from_today(maturity, expected):
    assert days_to_maturity(maturity, D(2026, 3, 10)) == expected


def test_days_to_maturity_none_without_maturity_date():
    assert days_to_maturity(None, D(2026, 3, 10)) is None


# --------------------------------------------------------------------------- birthday_mmdd_window

def test_birthday_mmdd_window_today_only():
    assert birthday_mmdd_window(D(2026, 3, 10), 0, 0) == {310}


def test_birthday_mmdd_window_includes_feb29_on_feb28_of_common_year():
    assert birthday_mmdd_window(D(2026, 2, 28), 0, 0) == {228, 229}


def test_birthday_mmdd_window_includes_feb29_when_range_covers_feb28_of_common_year():
    assert birthday_mmdd_window(D(2026, 2, 25), 0, 7) == {225, 226, 227, 228, 229, 301, 302, 303, 304}


def test_birthday_mmdd_window_feb28_of_leap_year_is_only_feb28():
    assert birthday_mmdd_window(D(2028, 2, 28), 0, 0) == {228}


def test_birthday_mmdd_window_spans_new_year():
    assert birthday_mmdd_window(D(2026, 12, 29), 0, 5) == {1229, 1230, 1231, 101, 102, 103}


def test_birthday_mmdd_window_none_for_whole_year():
    assert birthday_mmdd_window(D(2026, 3, 10), 0, 365) is None
    assert birthday_mmdd_window(D(2026, 3, 10), -30, 400) is None


def test_birthday_mmdd_window_empty_when_high_below_low():
    assert birthday_mmdd_window(D(2026, 3, 10), 7, 3) == frozenset()
    assert birthday_mmdd_window(D(2026, 3, 10), -9, -1) == frozenset()


WINDOWS = ((0, 0), (1, 1), (0, 7), (3, 10), (0, 30), (25, 60), (300, 364), (0, 364), (-5, 2), (7, 3))


@pytest.mark.parametrize("year", [2026, 2028])
def test_birthday_mmdd_window_agrees_with_days_to_birthday(year):
    """birth_mmdd in window <=> lo <= days_to_birthday <= hi: SQL never misses a birthday."""
    disagreements = []
    for today in _days_of(year):
        for lo, hi in WINDOWS:
            window = birthday_mmdd_window(today, lo, hi)
            assert window is not None
            for birth in BIRTHS:
                in_range = lo <= days_to_birthday(birth, today) <= hi
                if (birth_mmdd(birth) in window) != in_range:
                    disagreements.append((today, lo, hi, birth))
    assert disagreements == []


@pytest.mark.parametrize("year", [2026, 2027, 2028])
def test_birthday_mmdd_window_up_to_365_days_never_misses_a_birthday(year):
    """A window ending at 365 days may hold extra dates (mmdd repeats after a year), never fewer."""
    misses = []
    for today in _days_of(year):
        for lo in (0, 1, 100, 364, 365):
            window = birthday_mmdd_window(today, lo, 365)
            for birth in BIRTHS:
                if lo <= days_to_birthday(birth, today) <= 365 and window is not None \
                        and birth_mmdd(birth) not in window:
                    misses.append((today, lo, birth))
    assert misses == []


def test_birth_mmdd_is_month_times_100_plus_day():
    assert birth_mmdd(D(1980, 2, 29)) == 229
    assert birth_mmdd(D(1990, 12, 31)) == 1231
    assert birth_mmdd(None) is None
