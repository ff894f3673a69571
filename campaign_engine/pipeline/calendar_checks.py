"""What a rule's run date needs from the official calendar, decided once before any candidate is read.

The official calendar (facts/official.py) knows a year only once the State Council's notice for it
is in config/holidays.yaml. A rule that reads an official field on a day it does not know is
reported with the year and the fields, never run as if every such field were false; a
`workdays_only` schedule on an official non-working day is skipped, with the reason in the run
report. Pure: values in, values out.
"""

from __future__ import annotations

import datetime as dt

from ..errors import CampaignEngineError
from ..facts.calendar import OFFICIAL_FIELDS
from ..facts.namespaces import BUSINESS_DAY_FIELDS
from ..facts.official import CalendarNotAnnounced, HolidayCalendar
from ..vocabulary import TASK_CHANNELS
from ..rulebook.model import Rule, referenced_fields

CALENDAR_FIELDS_OFFICIAL = tuple(f"calendar.{name}" for name in OFFICIAL_FIELDS)
# a rule that reads this decides for itself what a day of an unannounced year means
ANNOUNCED_FIELD = "calendar.announced"
# what a task rule needs of a day ("... on 2026-12-30 is unknown"): whether it is a business day
TASK_DAYS = "whether its manager tasks (call, visit) can be due"
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class OfficialCalendarUnknown(CampaignEngineError):
    """A rule needs the official calendar of a year whose notice is not in the holiday file."""

    def __init__(self, year: int, day: dt.date, what: str, source: str | None):
        self.year = year
        self.day = day
        where = source or "the holiday file"
        super().__init__(
            f"the official calendar for {year} is not announced yet: {what} on {day} is unknown, so the "
            f"rule did not run (add the State Council's notice for {year} to {where}: "
            f"python -m campaign_engine.facts.official_update import {year}, or by hand)")


def unannounced_year(day: dt.date, holidays: HolidayCalendar) -> int | None:
    """The year whose notice `day` waits for (its own, or the next for 29-31 December), None when known."""
    try:
        holidays.is_workday(day)
    except CalendarNotAnnounced as exc:
        return exc.year
    return None


def official_fields_read(rule: Rule) -> tuple[str, ...]:
    """The official-calendar fields a rule's conditions read (calendar.holiday .., the business days)."""
    return tuple(f for f in referenced_fields(rule.conditions)
                 if f in CALENDAR_FIELDS_OFFICIAL or f in BUSINESS_DAY_FIELDS)


def needs_official_calendar(rule: Rule, urgent_priority: int | None = None) -> str | None:
    """What of the official calendar a rule cannot do without on its run date, or None: it runs on
    working days only, or its conditions read an official field without also reading
    calendar.announced, or it plans manager tasks that may be due that same day.

    A rule that plans tasks needs the run date itself only when it may plan them for today (its
    priority is `urgent_priority` or more; without the threshold, any task rule is counted so, as
    the day after an unknown day is unknown too); the business days its tasks are due on later
    are decided by the planning, one day at a time (task_planning.find_slot)."""
    if rule.trigger.workdays_only:
        return "whether it is an official working day (the rule has workdays_only)"
    if any(c in TASK_CHANNELS for c in rule.channels) and (urgent_priority is None
                                                           or rule.priority >= urgent_priority):
        return TASK_DAYS
    fields = official_fields_read(rule)
    if fields and ANNOUNCED_FIELD not in referenced_fields(rule.conditions):
        return ", ".join(fields)
    return None


def check_official_calendar(rule: Rule, today: dt.date, holidays: HolidayCalendar,
                            urgent_priority: int | None = None) -> None:
    """Raise OfficialCalendarUnknown when the rule cannot be decided on `today` for want of a notice."""
    year = unannounced_year(today, holidays)
    what = needs_official_calendar(rule, urgent_priority) if year is not None else None
    if year is not None and what is not None:
        raise OfficialCalendarUnknown(year, today, what, holidays.source)


def workday_skip(rule: Rule, today: dt.date, holidays: HolidayCalendar) -> str | None:
    """Why a `workdays_only` rule does not run on `today` (an official non-working day), else None.

    Call after check_official_calendar: `today` is known then.
    """
    if not rule.trigger.workdays_only or holidays.is_workday(today):
        return None
    holiday = holidays.holiday(today)
    if holiday is not None:
        why = f"{holiday}, day {holidays.holiday_day(today)} of the holiday"
    else:
        why = f"a {_WEEKDAYS[today.weekday()]}"
    return f"{today} is not an official working day ({why}) and the rule runs on working days only (workdays_only)"
