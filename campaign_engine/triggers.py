"""When a scheduled rule fires: its crontab and campaign window as an APScheduler trigger.

The scheduler's jobs and the console's "next runs" (dashboard, calendar) read the same trigger,
so what a marketer sees planned is what the scheduler will do. Rule schedules are standard
5-field crontab: day of week 0 and 7 are Sunday, and when both day of month and day of week are
restricted either one matching is enough. APScheduler 3 counts weekdays from Monday and requires
both, so `cron_trigger` builds its trigger from the rulebook's parsed `Crontab` (rulebook/cron.py,
the one crontab parser), never from the text.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from .rulebook.cron import WEEKDAYS, CronField, Crontab, parse_crontab
from .rulebook.model import Rule


def _aps_values(field: CronField) -> str:
    """A crontab field's values as APScheduler text: `*`, or numbers and runs (`1-5,9`)."""
    if field.every:
        return "*"
    runs: list[list[int]] = []
    for value in sorted(field.values):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs)


def _aps_weekdays(field: CronField) -> str:
    """Crontab weekdays (0 = Sunday) as APScheduler weekday names: it numbers from Monday."""
    return "*" if field.every else ",".join(WEEKDAYS[d] for d in sorted(field.values))


def cron_trigger(schedule: Crontab | str, tz: ZoneInfo, *, active_from: dt.date | None = None,
                 active_until: dt.date | None = None) -> BaseTrigger:
    """The APScheduler trigger of a crontab schedule (parsed by the rulebook) in a time zone.

    With a campaign window (the rule's `active`, inclusive local dates) it fires from the start of
    `active_from` to the end of `active_until` in `tz` only: no next run after the window, the
    first fire on or after `active_from` before it.
    Raises ValueError when `schedule` is text the rulebook's parser refuses.
    """
    crontab = parse_crontab(schedule) if isinstance(schedule, str) else schedule
    minute, hour, day, month = map(_aps_values, (crontab.minute, crontab.hour, crontab.day, crontab.month))
    weekday = _aps_weekdays(crontab.weekday)
    start = dt.datetime.combine(active_from, dt.time(), tzinfo=tz) if active_from else None
    end = dt.datetime.combine(active_until, dt.time(23, 59, 59), tzinfo=tz) if active_until else None

    def cron(day_: str, weekday_: str) -> CronTrigger:
        return CronTrigger(minute=minute, hour=hour, day=day_, month=month, day_of_week=weekday_,
                           timezone=tz, start_date=start, end_date=end)

    if crontab.either_day:  # crontab: either the day of month or the day of week matches
        return OrTrigger([cron(day, "*"), cron("*", weekday)])
    return cron(day, weekday)


# --------------------------------------------------------------------------- firing


def rule_trigger(rule: Rule, tz: ZoneInfo) -> BaseTrigger:
    """The trigger of a scheduled rule: its schedule within its campaign window (`active`).
    Raises ValueError for a rule without a schedule or with one the parser refuses."""
    if rule.trigger.schedule is None:
        raise ValueError(f"rule {rule.id} has no schedule")
    return cron_trigger(rule.trigger.schedule, tz, active_from=rule.active_from, active_until=rule.active_until)


def first_fire(rule: Rule, tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> dt.datetime | None:
    """When the scheduler fires `rule` first in [start, end), or None (no fire, or no schedule it can keep)."""
    try:
        at = rule_trigger(rule, tz).get_next_fire_time(None, start.astimezone(tz))
    except ValueError:
        return None
    return at if at is not None and at < end else None
