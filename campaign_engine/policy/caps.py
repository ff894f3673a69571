"""Pure: marketing frequency caps, counted in the customer's calendar days (the configured time zone)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Cap:
    """At most `max` marketing messages per customer and channel in any `days` calendar days."""

    days: int
    max: int


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
