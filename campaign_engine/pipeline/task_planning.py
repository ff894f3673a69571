"""Manager tasks in a run: who (the customer's manager, else the branch queue), which business day
(the manager's capacity, rolled to later business days up to the horizon), and the repeated alert
that joins the customer's open task instead of adding one.

Called by batch.decide_and_render for a match whose policy decision is a call or a visit; the
reservation of a manager's day is one conditional UPDATE in the store (never overbooked across
shards and workers); a dry run (preview, draft diff) only counts, writing nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..facts.official import CalendarNotAnnounced, HolidayCalendar
from ..policy.caps import cap_window_start, is_capped
from ..rulebook.model import Rule
from ..settings import Settings, TaskSettings
from ..vocabulary import TASK_CHANNELS, Channel
from .ports import RunStore

QUEUE_PREFIX = "branch:"  # the load owner of a branch queue (no capacity limit)


@dataclass(frozen=True)
class Owner:
    """Whose list a task goes on: the customer's active manager, else their branch's queue."""

    key: str  # the manager id, or `branch:<name>`
    manager_id: str | None
    name: str | None
    branch: str | None
    capacity: int | None  # a day's calls or visits; None: a queue, unlimited

    def view(self) -> dict[str, Any]:
        return {"id": self.manager_id, "name": self.name, "branch": self.branch, "queue": self.manager_id is None}


@dataclass(frozen=True)
class Slot:
    owner: Owner
    day: dt.date
    due_at: dt.datetime


@dataclass
class TaskPlan:
    """What one batch needs to plan tasks: its customers' managers, the rule's open tasks of them,
    their marketing tasks (the caps), and (dry runs) the days' loads with this batch's own."""

    managers: Mapping[str, Mapping[str, Any]]
    open: Mapping[tuple[str, str], Mapping[str, Any]]
    planned: dict[tuple[str, str], list[dt.datetime]]
    load: dict[tuple[str, dt.date, str], int] = field(default_factory=dict)  # read from the store (dry runs)
    taken: Counter[tuple[str, dt.date, str]] = field(default_factory=Counter)  # by this batch (dry runs)


def plans_tasks(rule: Rule) -> bool:
    return any(c in TASK_CHANNELS for c in rule.channels)


def task_plan(store: RunStore, rule: Rule, customers: Sequence[Mapping[str, Any]], settings: Settings,
              now: dt.datetime) -> TaskPlan:
    ids = sorted({c["customer_id"] for c in customers})
    planned: dict[tuple[str, str], list[dt.datetime]] = {}
    caps = [cap for channel in rule.channels if channel in TASK_CHANNELS for cap in settings.tasks.caps.get(channel.value, ())]
    if rule.is_marketing and caps and ids:
        since_day = cap_window_start(now.astimezone(settings.tz).date(), tuple(caps))
        planned = store.planned_tasks(ids, dt.datetime.combine(since_day, dt.time(), tzinfo=settings.tz))
    return TaskPlan(managers=store.task_managers(str(c["manager_id"]) for c in customers if c.get("manager_id")),
                    open=store.open_tasks(rule.id, ids), planned=planned)


def capped(plan: TaskPlan, settings: Settings, customer_id: str, channel: Channel, day: dt.date) -> bool:
    """Would one more marketing task of this type for the customer exceed `tasks.caps`?"""
    caps = settings.tasks.caps.get(channel.value, ())
    earlier = [t.astimezone(settings.tz).date() for t in plan.planned.get((customer_id, channel.value), ())]
    return bool(caps) and is_capped(day, earlier, caps)


def owner_of(customer: Mapping[str, Any], plan: TaskPlan, channel: Channel) -> Owner:
    manager = plan.managers.get(customer.get("manager_id") or "")
    if manager is not None and manager["active"]:
        capacity = manager["daily_call_capacity" if channel is Channel.CALL else "daily_visit_capacity"]
        return Owner(manager["manager_id"], manager["manager_id"], manager["name"], manager["branch"], int(capacity))
    branch = customer.get("branch")
    return Owner(f"{QUEUE_PREFIX}{branch or '-'}", None, None, branch, None)


def business_days(first: dt.date, count: int, holidays: HolidayCalendar) -> Iterator[dt.date]:
    """Up to `count` official business days from `first` (itself one), in order and only as they
    are asked for: the calendar is consulted for a day when the planning reaches it, so a horizon
    reaching into a year the holiday file does not announce yet raises CalendarNotAnnounced only
    if every known day before it was full."""
    day = first
    for n in range(count):
        if n:
            day = holidays.next_business_day(day + dt.timedelta(days=1))
        yield day


def known_business_days(first: dt.date, count: int, holidays: HolidayCalendar) -> list[dt.date]:
    """business_days up to the first day the calendar does not know (that day and later left out)."""
    days: list[dt.date] = []
    try:
        days.extend(business_days(first, count, holidays))
    except CalendarNotAnnounced:
        pass
    return days


def first_due(now: dt.datetime, priority: int, tasks: TaskSettings, tz: dt.tzinfo,
              holidays: HolidayCalendar) -> tuple[dt.date, dt.datetime]:
    """The first day a task may be due and when: today (inside the call window, from now on) for a
    rule of priority >= urgent_priority on a business day before the window closes; else the next
    business day at `tasks.hour`. CalendarNotAnnounced when that first day is of a year the
    holiday file does not announce (today itself only for an urgent rule)."""
    local = now.astimezone(tz)
    today = local.date()
    if priority >= tasks.urgent_priority and holidays.is_workday(today) and local.time() < tasks.window.end:
        start = dt.datetime.combine(today, tasks.window.start, tzinfo=tz)
        return today, max(local, start)
    day = holidays.next_business_day(today + dt.timedelta(days=1))
    return day, dt.datetime.combine(day, tasks.hour, tzinfo=tz)


def find_slot(store: RunStore, plan: TaskPlan, owner: Owner, channel: Channel, *, now: dt.datetime, priority: int,
              settings: Settings, holidays: HolidayCalendar, dry: bool) -> Slot | None:
    """The first day up to the horizon with room on the owner's list, reserved (a real run) or
    counted (a dry run); None when every day is full.

    The days are taken in order as first_due and business_days give them: a day of a year whose
    official calendar is not announced yet ends the search there (None: the rule's next channel,
    as for a full horizon; nothing is guessed about that day). Only when the very first day a task
    could be due is unknown does CalendarNotAnnounced reach the caller (the rule is reported)."""
    tz, tasks = settings.tz, settings.tasks
    day, due = first_due(now, priority, tasks, tz, holidays)
    days: Iterable[dt.date] = business_days(day, tasks.horizon_days, holidays)
    if dry and owner.capacity is not None:
        days = known_business_days(day, tasks.horizon_days, holidays)  # one read of their loads
        missing = [d for d in days if (owner.key, d, channel.value) not in plan.load]
        if missing:
            found = store.task_load([owner.key], missing, channel.value)
            for d in missing:
                plan.load[(owner.key, d, channel.value)] = found.get((owner.key, d), 0)
    try:
        for d in days:
            key = (owner.key, d, channel.value)
            if dry:
                ok = owner.capacity is None or plan.load[key] + plan.taken[key] < owner.capacity
                if ok:
                    plan.taken[key] += 1
            else:
                ok = store.reserve_task_slot(owner.key, d, channel.value, owner.capacity)
            if ok:
                return Slot(owner, d, due if d == day else dt.datetime.combine(d, tasks.hour, tzinfo=tz))
    except CalendarNotAnnounced:  # the known days were full; the next one is not announced yet
        return None
    return None


__all__ = ["Owner", "Slot", "TaskPlan", "plans_tasks", "task_plan", "capped", "owner_of",
           "business_days", "known_business_days", "first_due", "find_slot"]
