"""The wall clock, read only by entry points (the pipeline is given `now`)."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
