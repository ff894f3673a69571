"""Derived date fields. 29 February birthdays fall on 28 February in common years."""

from __future__ import annotations

import calendar
import datetime as dt


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
