"""Frequency caps, in the customer's calendar days."""

from __future__ import annotations

import datetime as dt

from campaign_engine.policy.caps import Cap, cap_window_start, is_capped

CAPS = (Cap(1, 1), Cap(7, 3))


def test_is_capped_one_a_day():
    day = dt.date(2026, 3, 10)
    assert not is_capped(day, [], CAPS)
    assert is_capped(day, [day], CAPS)
    assert not is_capped(day, [day - dt.timedelta(days=1)], CAPS)


def test_is_capped_three_in_any_seven_calendar_days():
    day = dt.date(2026, 3, 10)
    three = [day - dt.timedelta(days=n) for n in (1, 3, 6)]
    assert is_capped(day, three, CAPS)
    assert not is_capped(day, [day - dt.timedelta(days=n) for n in (1, 3, 7)], CAPS)  # 7 days back is outside


def test_cap_window_start_reaches_the_longest_cap():
    assert cap_window_start(dt.date(2026, 3, 10), CAPS) == dt.date(2026, 3, 4)
