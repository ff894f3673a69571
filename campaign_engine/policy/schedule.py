"""Pure: frequency caps and quiet hours, in the customer's calendar (the configured time zone)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Cap:
    """At most `max` marketing messages per customer and channel in any `days` calendar days."""

    days: int
    max: int


@dataclass(frozen=True)
class Window:
    """Sending hours [start, end) in local time; start > end means the window spans midnight."""

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def next_send_time(now: dt.datetime, window: Window | None, tz: ZoneInfo) -> dt.datetime:
    """`now` when inside the sending window, else the next window start (never dropped, never at night)."""
    if window is None:
        return now
    local = now.astimezone(tz)
    if window.contains(local.time()):
        return now
    start_today = dt.datetime.combine(local.date(), window.start, tzinfo=tz)
    start = start_today if start_today > local else start_today + dt.timedelta(days=1)
    return start.astimezone(dt.timezone.utc)


def cap_window_start(day: dt.date, caps: Sequence[Cap]) -> dt.date:
    """The first calendar day any cap looks back to from `day`."""
    return day - dt.timedelta(days=max((c.days for c in caps), default=1) - 1)


def is_capped(day: dt.date, earlier: Iterable[dt.date], caps: Sequence[Cap]) -> bool:
    """Whether one more message on `day` would exceed a cap, given the days of earlier ones.

    `earlier` holds the local calendar day of each message already planned for this
    customer and channel (queued, scheduled, sending, sent or delivered).
    """
    days = list(earlier)
    for cap in caps:
        first = day - dt.timedelta(days=cap.days - 1)
        if sum(1 for d in days if first <= d <= day) >= cap.max:
            return True
    return False
