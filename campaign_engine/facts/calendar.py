"""The calendar.* namespace: the day, its official status (official.py) and its lunar date (lunar.py).

The official fields (holiday, holiday_day, is_workday) exist only for a year whose State
Council notice is in config/holidays.yaml; for any other they are None, `announced` is
False, and calendar_problems() gives the sentence the run report shows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import Problem
from . import lunar
from .official import CalendarNotAnnounced, HolidayCalendar, load_holidays

__all__ = ["CalendarNotAnnounced", "HolidayCalendar", "OFFICIAL_FIELDS", "calendar_facts",
           "calendar_problems", "load_holidays"]

# the calendar.* fields that are None on a day whose official calendar is not announced
OFFICIAL_FIELDS = ("holiday", "holiday_day", "is_workday")


def calendar_facts(today: dt.date, holidays: HolidayCalendar) -> dict[str, Any]:
    """calendar.* for `today`.

    date, weekday (1 = Monday .. 7 = Sunday), month and day (fixed solar dates: 国庆 is 10-01);
    official: announced, holiday (the name on every day off of it), holiday_day (1 on its first
    day), is_workday; lunar: lunar_month (1..12), lunar_day (1..30), lunar_leap, lunar_date (the
    date in Chinese: 冬月初一), festival (春节, 中秋 .., see lunar.FESTIVALS), solar_term.
    """
    date = lunar.to_lunar(today)
    facts: dict[str, Any] = {
        "date": today,
        "weekday": today.isoweekday(),
        "month": today.month,
        "day": today.day,
        "announced": holidays.known(today),
        "holiday": None,
        "holiday_day": None,
        "is_workday": None,
        "lunar_month": date.month,
        "lunar_day": date.day,
        "lunar_leap": date.leap,
        "lunar_date": date.chinese(),
        "festival": lunar.festival(today),
        "solar_term": lunar.solar_term(today),
    }
    if facts["announced"]:
        facts.update(holiday=holidays.holiday(today), holiday_day=holidays.holiday_day(today),
                     is_workday=holidays.is_workday(today))
    return facts


def calendar_problems(today: dt.date, holidays: HolidayCalendar) -> list[Problem]:
    """What the run report should say about `today`'s calendar: [] when its official calendar is known."""
    try:
        holidays.is_workday(today)
    except CalendarNotAnnounced as exc:
        fields = ", ".join(f"calendar.{name}" for name in OFFICIAL_FIELDS)
        return [Problem(f"no official holidays and working days for {exc.year} yet (the State Council's "
                        f"notice for {exc.year} is not in the file): {fields} are null on {today} and "
                        "conditions on them do not match", file=holidays.source)]
    return []
