"""Schedules are checked when a rule is loaded, so the scheduler never meets one it cannot run."""

from __future__ import annotations

import pytest

from campaign_engine.rulebook.cron import check_crontab


@pytest.mark.parametrize("expr", ["0 9 * * *", "*/15 8-20 * * mon-fri", "0 9 1,15 * *", "30 7 * jan-mar 0",
                                  "0 9 ? * 7", "0 0 29 2 *"])
def test_check_crontab_accepts_standard_expressions(expr):
    check_crontab(expr)


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
def test_check_crontab_refuses_with_the_field_named(expr, reason):
    with pytest.raises(ValueError, match=reason):
        check_crontab(expr)


def test_cron_trigger_schedules_every_expression_the_loader_accepts():
    from zoneinfo import ZoneInfo

    from campaign_engine.scheduler import cron_trigger

    for expr in ["0 9 * * *", "*/15 8-20 * * mon-fri", "0 9 1,15 * *", "30 7 * jan-mar 0", "0 9 ? * 7"]:
        check_crontab(expr)
        cron_trigger(expr, ZoneInfo("Asia/Shanghai"))
