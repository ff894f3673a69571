"""Pure: the Chinese lunar calendar, festivals, solar terms and lunar birthdays, 1901-2099.

The one module that knows the lunar calendar. It reads a committed table (lunar_table.py,
generated from lunar-python: the solar date of each lunar year's 正月初一, its leap month
and month lengths, and the day of each solar term in Beijing time), so a conversion is a
binary search, with no library at run time. The table is built once, on first use.

Lunar birthdays: someone born in a leap month celebrates in the ordinary month of that
number; someone born on day 30 celebrates on day 29 in a year whose month has 29 days.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from functools import cache

from ..errors import CampaignEngineError
from . import lunar_table

FIRST_DAY = dt.date(1901, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)

TERM_NAMES: tuple[str, ...] = lunar_table.TERM_NAMES
FESTIVALS = ("除夕", "春节", "元宵", "清明", "端午", "七夕", "中秋", "重阳", "冬至", "腊八")
# festivals on an ordinary (not leap) lunar month and day; 除夕, 清明 and 冬至 are found otherwise
_LUNAR_FESTIVALS = {(1, 1): "春节", (1, 15): "元宵", (5, 5): "端午", (7, 7): "七夕", (8, 15): "中秋",
                    (9, 9): "重阳", (12, 8): "腊八"}
_TERM_FESTIVALS = ("清明", "冬至")  # solar terms that are festivals

_MONTH_NAMES = ("正", "二", "三", "四", "五", "六", "七", "八", "九", "十", "冬", "腊")
_DAY_TENS = ("初", "十", "廿", "三")
_DIGITS = ("十", "一", "二", "三", "四", "五", "六", "七", "八", "九")


class LunarRangeError(CampaignEngineError, ValueError):
    """A date outside the lunar table (solar 1901-01-01 .. 2099-12-31)."""

    def __init__(self, what: object):
        self.what = what
        super().__init__(f"the lunar calendar covers {FIRST_DAY} .. {LAST_DAY} only: {what}")


@dataclass(frozen=True, slots=True)
class LunarDate:
    """A lunar date: `month` 1..12, `leap` for the leap month that follows month `month`."""

    year: int
    month: int
    day: int
    leap: bool = False

    def chinese(self) -> str:
        """The date as printed on a calendar: 正月初一, 闰六月十五, 冬月初一, 腊月廿九 (冬月 = 十一月)."""
        return f"{'闰' if self.leap else ''}{month_name(self.month)}{day_name(self.day)}"


def month_name(month: int) -> str:
    """正月, 二月 .. 十月, 冬月, 腊月."""
    return f"{_MONTH_NAMES[month - 1]}月"


def day_name(day: int) -> str:
    """初一 .. 初十, 十一 .. 二十, 廿一 .. 三十."""
    if day == 10:
        return "初十"
    if day == 20:
        return "二十"
    if day == 30:
        return "三十"
    return _DAY_TENS[day // 10] + _DIGITS[day % 10]


@dataclass(frozen=True)
class _Table:
    starts: list[int]  # ordinal of each lunar month's first day, in order, plus the end sentinel
    months: list[tuple[int, int, bool]]  # (lunar year, month, leap) of each start
    first_month: dict[int, int]  # lunar year -> index of its 正月 in starts
    leap: dict[int, int]  # lunar year -> leap month (0 for none)
    new_years: frozenset[int]  # ordinals of every 正月初一
    terms: dict[int, str]  # ordinal -> solar term on that day


@cache
def _table() -> _Table:
    starts: list[int] = []
    months: list[tuple[int, int, bool]] = []
    first_month: dict[int, int] = {}
    leap_of: dict[int, int] = {}
    for year, first, leap, lengths in lunar_table.LUNAR_YEARS:
        day = dt.date.fromisoformat(first).toordinal()
        assert not starts or starts[-1] == day, year  # each year starts where the last one ended
        if starts:
            starts.pop()
        first_month[year], leap_of[year] = len(starts), leap
        numbers = [(m, False) for m in range(1, 13)]
        if leap:
            numbers.insert(leap, (leap, True))
        for (month, is_leap), length in zip(numbers, lengths, strict=True):
            starts.append(day)
            months.append((year, month, is_leap))
            day += length
        starts.append(day)
    terms = {dt.date(year, i // 2 + 1, d).toordinal(): TERM_NAMES[i]
             for year, days in lunar_table.SOLAR_TERMS.items() for i, d in enumerate(days)}
    return _Table(starts, months, first_month, leap_of,
                  frozenset(starts[i] for i in first_month.values()), terms)


def _ordinal(day: dt.date) -> int:
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"expected a datetime.date, got {type(day).__name__}")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise LunarRangeError(day)
    return day.toordinal()


def _month_index(lunar_year: int, month: int, leap: bool) -> int:
    table = _table()
    if lunar_year not in table.first_month:
        raise LunarRangeError(f"lunar year {lunar_year}")
    if not 1 <= month <= 12:
        raise ValueError(f"lunar month must be 1..12, got {month}")
    leap_month_ = table.leap[lunar_year]
    if leap and leap_month_ != month:
        raise ValueError(f"lunar year {lunar_year} has no leap month {month}"
                         + (f" (its leap month is {leap_month_})" if leap_month_ else " (no leap month)"))
    index = table.first_month[lunar_year] + month - 1
    return index + 1 if leap or (leap_month_ and month > leap_month_) else index


def to_lunar(day: dt.date) -> LunarDate:
    """The lunar date of a solar date."""
    ordinal = _ordinal(day)
    table = _table()
    i = bisect.bisect_right(table.starts, ordinal) - 1
    year, month, leap = table.months[i]
    return LunarDate(year, month, ordinal - table.starts[i] + 1, leap)


def month_days(lunar_year: int, month: int, leap: bool = False) -> int:
    """29 or 30: the length of a lunar month."""
    table = _table()
    i = _month_index(lunar_year, month, leap)
    return table.starts[i + 1] - table.starts[i]


def leap_month(lunar_year: int) -> int | None:
    """The number of the leap month of a lunar year, None when it has none."""
    table = _table()
    if lunar_year not in table.leap:
        raise LunarRangeError(f"lunar year {lunar_year}")
    return table.leap[lunar_year] or None


def to_solar(lunar_year: int, month: int, day: int, leap: bool = False) -> dt.date:
    """The solar date of a lunar date; ValueError for a day the month lacks (30 in a 29-day month)."""
    table = _table()
    i = _month_index(lunar_year, month, leap)
    length = table.starts[i + 1] - table.starts[i]
    if not 1 <= day <= length:
        raise ValueError(f"lunar {lunar_year} {'leap ' if leap else ''}month {month} has {length} days, not {day}")
    solar = dt.date.fromordinal(table.starts[i] + day - 1)
    if not FIRST_DAY <= solar <= LAST_DAY:
        raise LunarRangeError(f"lunar {lunar_year}-{month}-{day} is {solar}")
    return solar


def solar_term(day: dt.date) -> str | None:
    """The solar term (节气) falling on a day in Beijing time: 立春, 清明, 冬至 .., else None."""
    return _table().terms.get(_ordinal(day))


def festival(day: dt.date) -> str | None:
    """The traditional festival of a day, one of FESTIVALS, else None.

    除夕 is the last day of the 12th month (its 29th or 30th), the eve of 正月初一; 清明 and
    冬至 are solar terms. No two of them fall on one day in 1901-2099.
    """
    ordinal = _ordinal(day)
    table = _table()
    if ordinal + 1 in table.new_years:
        return "除夕"
    lunar = to_lunar(day)
    if not lunar.leap and (name := _LUNAR_FESTIVALS.get((lunar.month, lunar.day))):
        return name
    term = table.terms.get(ordinal)
    return term if term in _TERM_FESTIVALS else None


# --------------------------------------------------------------------------- lunar birthdays

def lunar_birthday_key(birth: dt.date) -> tuple[int, int]:
    """(lunar month, day) of a birth date, a leap month counted as the ordinary one: what to store."""
    lunar = to_lunar(birth)
    return lunar.month, lunar.day


def _anniversary_in(lunar_year: int, key: tuple[int, int]) -> dt.date:
    month, day = key
    return to_solar(lunar_year, month, min(day, month_days(lunar_year, month)))


def next_lunar_anniversary(birth: dt.date, today: dt.date) -> dt.date:
    """The first solar date on or after `today` that is the lunar anniversary of `birth`."""
    return next_anniversary(lunar_birthday_key(birth), today)


def next_anniversary(key: tuple[int, int], today: dt.date) -> dt.date:
    """The first solar date on or after `today` that is the anniversary of a lunar_birthday_key."""
    year = to_lunar(today).year
    this_year = _anniversary_in(year, key)
    return this_year if this_year >= today else _anniversary_in(year + 1, key)


def days_to_lunar_birthday(birth: dt.date, today: dt.date) -> int:
    """Days until the next lunar birthday: 0 on the day, at most 384."""
    return (next_lunar_anniversary(birth, today) - today).days


# A lunar year has at most 385 days: a window that long holds every ordinary month's every day.
_FULL_WINDOW = 385


def lunar_keys_between(today: dt.date, lo: int, hi: int) -> list[tuple[int, int]]:
    """The lunar_birthday_key values of everyone whose days_to_lunar_birthday lies in [lo, hi].

    On day 29 of a 29-day month both (month, 29) and (month, 30); no key on a leap-month
    day (those born in one celebrate in the ordinary month). Never misses anyone; exact while
    hi < 354, beyond which next year's anniversary may admit a few more (the engine rejects them).
    """
    lo = max(lo, 0)
    hi = min(hi, lo + _FULL_WINDOW - 1)
    keys: set[tuple[int, int]] = set()
    for offset in range(lo, hi + 1):
        lunar = to_lunar(today + dt.timedelta(days=offset))
        if lunar.leap:
            continue
        keys.add((lunar.month, lunar.day))
        if lunar.day == 29 and month_days(lunar.year, lunar.month) == 29:
            keys.add((lunar.month, 30))
    return sorted(keys)


def lunar_keys_for(today: dt.date, window_days: int) -> list[tuple[int, int]]:
    """The lunar_birthday_key values of everyone whose lunar birthday is 0..window_days away."""
    return lunar_keys_between(today, 0, window_days)
