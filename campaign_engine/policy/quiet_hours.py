"""Pure: quiet hours, as each channel's sending window in local time (the configured time zone)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


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
