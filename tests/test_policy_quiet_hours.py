"""Quiet hours: each channel's sending window, in the customer's calendar (Asia/Shanghai)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from campaign_engine.policy.quiet_hours import Window, next_send_time

SH = ZoneInfo("Asia/Shanghai")
DAY = Window(dt.time(8), dt.time(21))
NIGHT = Window(dt.time(22), dt.time(6))  # spans midnight


def local(y, m, d, h, mi=0):
    return dt.datetime(y, m, d, h, mi, tzinfo=SH)


def test_next_send_time_inside_the_window_is_now():
    now = local(2026, 3, 10, 9)
    assert next_send_time(now, DAY, SH) == now


def test_next_send_time_in_the_evening_waits_for_next_morning():
    assert next_send_time(local(2026, 3, 10, 21, 0), DAY, SH) == local(2026, 3, 11, 8)
    assert next_send_time(local(2026, 3, 10, 23, 30), DAY, SH) == local(2026, 3, 11, 8)


def test_next_send_time_after_midnight_waits_for_the_same_morning():
    assert next_send_time(local(2026, 3, 11, 0, 30), DAY, SH) == local(2026, 3, 11, 8)
    assert next_send_time(local(2026, 3, 11, 7, 59), DAY, SH) == local(2026, 3, 11, 8)


def test_window_spanning_midnight_contains_the_night_and_waits_in_the_day():
    assert NIGHT.contains(dt.time(23)) and NIGHT.contains(dt.time(5, 59)) and not NIGHT.contains(dt.time(12))
    assert next_send_time(local(2026, 3, 10, 12), NIGHT, SH) == local(2026, 3, 10, 22)
    assert next_send_time(local(2026, 3, 11, 1), NIGHT, SH) == local(2026, 3, 11, 1)


def test_next_send_time_without_a_window_is_now():
    now = local(2026, 3, 10, 3)
    assert next_send_time(now, None, SH) == now
