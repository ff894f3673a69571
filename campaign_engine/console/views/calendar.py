"""The calendar screen: the official holidays and working days (调休) the rules see, with the lunar
date and festivals, a month at a time (facts.calendar.calendar_facts on the engine's own
HolidayCalendar from config/holidays.yaml), and which scheduled rules fire on each of the next 14
days (the scheduler's own trigger, triggers.rule_trigger, within the rules' `active` windows, and
the run's own calendar checks: workdays_only, an unannounced year). A year whose State Council notice is not in the file is
shown as not announced; nothing about it is guessed."""

from __future__ import annotations

import calendar as pycalendar
import datetime as dt
import re
from typing import Any

from flask import g, render_template, request, url_for

from ...api.auth import READ
from ...facts.calendar import calendar_facts
from ...pipeline.calendar_checks import needs_official_calendar, unannounced_year, workday_skip
from ...triggers import rule_trigger
from .. import auth
from ..blueprint import bp, t, today, tz
from ..i18n import catalogue

FIRST_YEAR, LAST_YEAR = 1901, 2099  # the lunar table's range (facts/lunar.py)
UPCOMING_DAYS = 14
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def holiday_name(name: str | None) -> str | None:
    """A holiday's or festival's name in the console's language (the file's own name when no word)."""
    if not name:
        return None
    key = f"calendar.name.{name}"
    return t(key) if key in catalogue() else name


def _month(problems: list[str]) -> tuple[int, int]:
    text = (request.args.get("month") or "").strip()
    current = today()
    if not text:
        return current.year, current.month
    found = _MONTH.fullmatch(text)
    if found and FIRST_YEAR <= int(found[1]) <= LAST_YEAR and 1 <= int(found[2]) <= 12:
        return int(found[1]), int(found[2])
    problems.append(t("calendar.bad_month", first=FIRST_YEAR, last=LAST_YEAR))
    return current.year, current.month


def _shift(year: int, month: int, by: int) -> tuple[int, int] | None:
    index = year * 12 + (month - 1) + by
    y, m = divmod(index, 12)
    return (y, m + 1) if FIRST_YEAR <= y <= LAST_YEAR else None


def month_weeks(year: int, month: int) -> list[list[dict[str, Any] | None]]:
    """The month as weeks Monday..Sunday, each day its calendar.* facts (None outside the month)."""
    holidays = g.services.holidays
    weeks = []
    for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append([calendar_facts(day, holidays) if day.month == month else None for day in week])
    return weeks


def _fire_days(rule: Any, start: dt.datetime, end: dt.datetime) -> dict[dt.date, dt.datetime]:
    """Local date -> the first time the scheduler's trigger for `rule` fires that day, in [start, end)."""
    trigger = rule_trigger(rule, tz())
    fires: dict[dt.date, dt.datetime] = {}
    moment = start
    for _ in range(UPCOMING_DAYS + 1):  # one fire a day counts (the scheduler runs a rule once per date)
        nxt = trigger.get_next_fire_time(None, moment)
        if nxt is None or nxt >= end:
            break
        day = nxt.astimezone(tz()).date()
        fires[day] = nxt
        moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz())  # the next local day
    return fires


def upcoming(first: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any], list[Any]]:
    """The next days (each its calendar.* facts), and per enabled scheduled rule what happens on each:
    {date: {at, state, why}} with state `runs` (a run starts; its conditions decide the audience then),
    `skipped` (workdays_only on an official day off: the run records it as skipped) or `blocked` (the
    rule needs the official calendar of a year not announced: it does not run). Then the event rules
    (they fire on events, not dates) and the rules whose cron cannot be scheduled."""
    services = g.services
    holidays = services.holidays
    start = dt.datetime.combine(first, dt.time(), tz())
    end = start + dt.timedelta(days=UPCOMING_DAYS)
    days = [{"date": first + dt.timedelta(days=n), "facts": calendar_facts(first + dt.timedelta(days=n), holidays)}
            for n in range(UPCOMING_DAYS)]
    rows, events, broken = [], [], []
    for rule in services.rulebook.enabled():
        if rule.trigger.schedule is None:
            events.append(rule)
            continue
        try:
            fire_days = _fire_days(rule, start, end)
        except ValueError:
            broken.append(rule)
            continue
        fires: dict[dt.date, dict[str, Any]] = {}
        for day, moment in fire_days.items():
            year = unannounced_year(day, holidays)
            if year is not None and needs_official_calendar(rule) is not None:
                state, why = "blocked", t("calendar.fire.blocked", year=year)
            elif year is None and workday_skip(rule, day, holidays):
                state, why = "skipped", t("calendar.fire.skipped")
            else:
                state, why = "runs", t("calendar.fire.runs")
            fires[day] = {"at": moment, "state": state, "why": why}
        first_time = min((f["at"].astimezone(tz()).time() for f in fires.values()), default=dt.time.max)
        rows.append({"rule": rule, "fires": fires, "order": (not fires, first_time, -rule.priority, rule.id)})
    rows.sort(key=lambda r: r["order"])
    return days, rows, sorted(events, key=lambda r: r.id), sorted(broken, key=lambda r: r.id)


@bp.route("/calendar")
@auth.requires(READ)
def calendar() -> Any:
    problems: list[str] = []
    year, month = _month(problems)
    holidays = g.services.holidays
    weeks = month_weeks(year, month)
    in_month = [d for week in weeks for d in week if d]
    unknown_years = sorted({y for d in in_month if (y := unannounced_year(d["date"], holidays)) is not None})
    named: list[dict[str, Any]] = []  # the month's holidays, each once, with its days off
    for d in in_month:
        if d["holiday"] and (not named or named[-1]["name"] != d["holiday"]):
            named.append({"name": d["holiday"], "days": []})
        if d["holiday"]:
            named[-1]["days"].append(d["date"])
    workdays = [d["date"] for d in in_month if d["is_workday"] and d["weekday"] >= 6]
    prev, nxt = _shift(year, month, -1), _shift(year, month, 1)
    days, schedule, events, broken = upcoming(today())
    return render_template(
        "console/calendar/index.html", year=year, month=month, weeks=weeks, problems=problems,
        unknown_years=unknown_years, named=named, adjusted=workdays, holiday_name=holiday_name,
        prev_url=url_for("console.calendar", month=f"{prev[0]:04d}-{prev[1]:02d}") if prev else None,
        next_url=url_for("console.calendar", month=f"{nxt[0]:04d}-{nxt[1]:02d}") if nxt else None,
        this_url=url_for("console.calendar"), days=days, schedule=schedule, events=events, broken=broken,
        source=holidays.source, today_date=today()), (400 if problems else 200)
