"""Schedules are parsed when a rule is loaded, so the scheduler never meets one it cannot run."""

from __future__ import annotations

import pytest

from campaign_engine.rulebook.cron import parse_crontab


@pytest.mark.parametrize("expr", ["0 9 * * *", "*/15 8-20 * * mon-fri", "0 9 1,15 * *", "30 7 * jan-mar 0",
                                  "0 9 ? * 7", "0 0 29 2 *"])
def test_parse_crontab_accepts_standard_expressions(expr):
    parse_crontab(expr)


@pytest.mark.parametrize("expr, reason", [
    ("0 9 * *", "5-field"),
    ("75 9 * * *", "minute"),
    ("0 24 * * *", "hour"),
    ("0 9 0 * *", "day of month"),
    ("0 9 L * *", "day of month"),
    ("0 9 * * 5#3", "day of week"),
    ("0 9 * 13 *", "month"),
    ("0 9 * * */0", "step"),
    ("0 20-8 * * *", "backwards"),
])
def test_parse_crontab_refuses_with_the_field_named(expr, reason):
    with pytest.raises(ValueError, match=reason):
        parse_crontab(expr)


def test_parse_crontab_fields_as_value_sets():
    crontab = parse_crontab("*/15 8-10 1,15 jan-mar *")
    assert crontab.minute.values == {0, 15, 30, 45} and not crontab.minute.restricted
    assert crontab.hour.values == {8, 9, 10} and crontab.hour.restricted and not crontab.hour.every
    assert crontab.day.values == {1, 15}
    assert crontab.month.values == {1, 2, 3}
    assert crontab.weekday.every and not crontab.weekday.restricted


@pytest.mark.parametrize("field, days", [("0", {0}), ("7", {0}), ("sun", {0}), ("SUN", {0}), ("5-7", {5, 6, 0}),
                                         ("1/2", {1, 3, 5, 0}), ("*/2", {0, 2, 4, 6}), ("0-6", set(range(7)))])
def test_parse_crontab_weekday_sunday_is_0_and_7(field, days):
    weekday = parse_crontab(f"0 9 * * {field}").weekday
    assert weekday.values == days and weekday.every == (len(days) == 7)


def test_parse_crontab_either_day_only_when_both_day_fields_are_restricted():
    assert parse_crontab("0 9 1 * 1").either_day
    assert not parse_crontab("0 9 1 * *").either_day
    assert not parse_crontab("0 9 */2 * 1").either_day  # a field starting with * is not a restriction
    assert not parse_crontab("0 9 ? * 1").either_day


def test_cron_trigger_schedules_every_expression_the_loader_accepts():
    from zoneinfo import ZoneInfo

    from campaign_engine.triggers import cron_trigger

    for expr in ["0 9 * * *", "*/15 8-20 * * mon-fri", "0 9 1,15 * *", "30 7 * jan-mar 0", "0 9 ? * 7"]:
        cron_trigger(parse_crontab(expr), ZoneInfo("Asia/Shanghai"))
