"""Derived date fields. 29 February birthdays fall on 28 February in common years.

Lunar birthdays follow lunar.py; payout dates and business days follow the official
calendar (official.py) and are None where it is not announced.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import lru_cache
from typing import Callable

from . import lunar
from .official import CalendarNotAnnounced, HolidayCalendar


def _birthday_in(year: int, birth: dt.date) -> dt.date:
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return birth.replace(year=year)


def age(birth: dt.date | None, today: dt.date) -> int | None:
    """Completed years on `today`."""
    if birth is None:
        return None
    years = today.year - birth.year
    return years - 1 if today < _birthday_in(today.year, birth) else years


def days_to_birthday(birth: dt.date | None, today: dt.date) -> int | None:
    """Days until the next birthday: 0 on the birthday itself, at most 365."""
    if birth is None:
        return None
    this_year = _birthday_in(today.year, birth)
    if this_year >= today:
        return (this_year - today).days
    return (_birthday_in(today.year + 1, birth) - today).days


def days_to_maturity(maturity: dt.date | None, today: dt.date) -> int | None:
    """Days until maturity: 0 on the maturity date, negative once matured."""
    return None if maturity is None else (maturity - today).days


def birth_mmdd(birth: dt.date | None) -> int | None:
    """month * 100 + day: the indexed column birthday windows select on."""
    return None if birth is None else birth.month * 100 + birth.day


def birthday_mmdd_window(today: dt.date, lo: int, hi: int) -> frozenset[int] | None:
    """birth_mmdd values covering everyone whose days_to_birthday lies in [lo, hi].

    Never misses a birthday; a window reaching 365 days may admit a few more (today's
    month-day comes round again), which the engine then rejects. None means the
    window covers the whole year (no narrowing possible).
    """
    lo = max(lo, 0)
    if hi < lo:
        return frozenset()
    if hi - lo >= 365:
        return None
    values: set[int] = set()
    for offset in range(lo, hi + 1):
        day = today + dt.timedelta(days=offset)
        values.add(day.month * 100 + day.day)
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            values.add(229)
    return frozenset(values)


# --------------------------------------------------------------------------- lunar birthdays

def days_to_lunar_birthday(birth: dt.date | None, today: dt.date) -> int | None:
    """Days until the next lunar birthday (lunar.py's rules for leap months and day 30): 0 on the day.

    None without a birth date, or for one before 1901 (outside the lunar table).
    """
    if birth is None or not lunar.FIRST_DAY <= birth <= lunar.LAST_DAY:
        return None
    return _days_to_key(_lunar_mmdd(birth), today)


@lru_cache(maxsize=1 << 12)
def _days_to_key(mmdd: int, today: dt.date) -> int:
    # On one run date the answer depends on the lunar (month, day) only: some 360 keys, each
    # converted once instead of once per candidate (13 us -> under 1 us a candidate).
    return (lunar.next_anniversary(divmod(mmdd, 100), today) - today).days


def lunar_birth_mmdd(birth: dt.date | None) -> int | None:
    """lunar month * 100 + lunar day (a leap month counted as the ordinary one): the column to index.

    None without a birth date, or for one outside the lunar table (1901-2099).
    """
    if birth is None or not lunar.FIRST_DAY <= birth <= lunar.LAST_DAY:
        return None
    return _lunar_mmdd(birth)


@lru_cache(maxsize=1 << 16)
def _lunar_mmdd(birth: dt.date) -> int:
    # Imports and the demo loader fill the column for every customer: a base of millions has a few
    # tens of thousands of distinct birth dates, so most conversions are a dictionary hit.
    month, day = lunar.lunar_birthday_key(birth)
    return month * 100 + day


def lunar_birthday_mmdd_window(today: dt.date, lo: int, hi: int) -> frozenset[int] | None:
    """lunar_birth_mmdd values covering everyone whose days_to_lunar_birthday lies in [lo, hi].

    Never misses one (day 29 of a 29-day month also selects day 30); a window reaching 354 days
    may admit a few more, which the engine then rejects. None: the window is the whole year.
    """
    lo = max(lo, 0)
    if hi < lo:
        return frozenset()
    if hi - lo >= 384:
        return None
    return frozenset(m * 100 + d for m, d in lunar.lunar_keys_between(today, lo, hi))


# --------------------------------------------------------------------------- business days

def payout_date(maturity: dt.date | None, calendar: HolidayCalendar) -> dt.date | None:
    """The maturity date rolled forward to the next official working day (itself when one).

    None without a maturity date, or while the official calendar of a day it needs is not
    announced (a maturity in 2027 before the 2027 notice): unknown, never guessed.
    """
    if maturity is None:
        return None
    try:
        return calendar.next_business_day(maturity)
    except CalendarNotAnnounced:
        return None


def business_days_to_maturity(maturity: dt.date | None, today: dt.date,
                              calendar: HolidayCalendar) -> int | None:
    """Working days from `today` to the payout date (a < d <= payout): 0 when paid out today,
    1 on the working day before; negative once paid out. None as for payout_date."""
    payout = payout_date(maturity, calendar)
    if payout is None:
        return None
    try:
        return calendar.business_days_between(today, payout)
    except CalendarNotAnnounced:
        return None


_SCAN_LIMIT = 800  # days a window's edge may lie from where its search starts (longer: unbounded)


def business_maturity_window(today: dt.date, lo: int | None, hi: int | None,
                             calendar: HolidayCalendar) -> tuple[dt.date | None, dt.date | None]:
    """The maturity dates [first, last] whose business_days_to_maturity lies in [lo, hi].

    business_days_to_maturity never decreases as the maturity date moves later, so the dates form
    one range: what candidate selection reads through ix_deposits_maturity_date. None for an
    unbounded side. Raises CalendarNotAnnounced when an edge depends on a day the official calendar
    does not know yet (a window reaching into next year before its notice): the rule is then
    reported, not silently short of the deposits it should have found.
    """
    def business_days(maturity: dt.date) -> int:
        return calendar.business_days_between(today, calendar.next_business_day(maturity))

    def walk(start: dt.date, step: int, keep_going: Callable[[dt.date], bool]) -> dt.date:
        day = start
        for _ in range(_SCAN_LIMIT):
            if not keep_going(day):
                return day
            day += dt.timedelta(days=step)
        raise ValueError(f"no edge within {_SCAN_LIMIT} days of {start}")

    first = last = None
    if hi is not None:  # the latest maturity still within hi business days
        # at today + k (k >= 1) at most k business days: start there and move later
        day = walk(today + dt.timedelta(days=hi), -1, lambda d: business_days(d) > hi)
        last = walk(day, 1, lambda d: business_days(d + dt.timedelta(days=1)) <= hi)
    if lo is not None:  # the earliest maturity at least lo business days away
        day = walk(today + dt.timedelta(days=lo), 1, lambda d: business_days(d) < lo)
        first = walk(day, -1, lambda d: business_days(d - dt.timedelta(days=1)) >= lo)
    return first, last
