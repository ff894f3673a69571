"""The dashboard: what runs today and tomorrow, the last runs, 14 days of messages and opt-outs,
and the failures that need someone (READ; a relationship manager lands on their task list)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app, g, redirect, render_template

from ...api.auth import READ, TASKS
from ...pipeline.calendar_checks import unannounced_year, workday_skip
from ...triggers import first_fire
from ...store import console_stats, outbox
from ...store import runs as run_store
from ...vocabulary import PHONE_CONSENT, Channel, MessageStatus
from .. import auth, charts
from ..blueprint import bp, t, today
from .core import landing
from .runs import with_times

DAYS = 14
LAST_RUNS = 8
FAILED_SHOWN = 10
CHART_WIDTH = 580  # about its width on the page at 1280 px: the axis text stays legible
# stacked from the bottom: what went out first, then what is waiting, then what did not go
STATUS_ORDER = (("delivered", "c1"), ("sent", "c0"), ("sending", "c7"), ("queued", "c5"), ("scheduled", "c6"),
                ("failed", "c3"), ("suppressed", "c2"), ("held_out", "c4"))
OPT_OUT_CHANNELS = ((Channel.SMS.value, "c0"), (Channel.EMAIL.value, "c1"), (PHONE_CONSENT, "c2"))


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=g.services.settings.tz).astimezone(dt.timezone.utc)


def day_bounds(last_day: dt.date, days: int) -> tuple[list[dt.date], list[dt.datetime]]:
    """The `days` local days ending with `last_day`, and their midnights (one more) as UTC."""
    first = last_day - dt.timedelta(days=days - 1)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    return dates, [local_midnight(d) for d in [*dates, last_day + dt.timedelta(days=1)]]


def upcoming(day_list: list[dt.date]) -> list[dict[str, Any]]:
    """The enabled scheduled rules whose cron fires on each day (as the scheduler's trigger has it),
    with the rule's last recorded run's matched count as the estimate and the day's fire if any."""
    services = g.services
    tz = services.settings.tz
    rules = [r for r in services.rulebook.enabled() if r.trigger.schedule is not None]
    with services.db.connect() as conn:
        last = console_stats.last_matched(conn, [r.id for r in rules])
        fired = console_stats.fires_on(conn, [r.id for r in rules], day_list)
    out = []
    for day in day_list:
        start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
        for rule in rules:
            at = first_fire(rule, tz, start, end)
            if at is None:
                continue
            skip = None
            if rule.trigger.workdays_only and unannounced_year(day, services.holidays) is None:
                skip = workday_skip(rule, day, services.holidays)
            out.append({"day": day, "at": at, "rule": rule, "last": last.get(rule.id), "skip": skip,
                        "fired": (rule.id, day) in fired, "run_id": fired.get((rule.id, day))})
    out.sort(key=lambda u: (u["at"], u["rule"].priority, u["rule"].id))
    return out


@bp.route("/")
@auth.requires(TASKS)
def dashboard() -> Any:
    if not auth.can(READ):
        return redirect(landing())
    services = g.services
    now = auth.now()
    day = today()
    dates, bounds = day_bounds(day, DAYS)
    with services.db.connect() as conn:
        recent = with_times(run_store.list_runs(conn, limit=LAST_RUNS))
        totals = console_stats.run_totals(conn, [r["run_id"] for r in recent])
        by_status = console_stats.messages_by_status_per_day(conn, bounds)
        opt_outs = console_stats.opt_outs_per_day(conn, bounds, [c for c, _ in OPT_OUT_CHANNELS])
        failed = outbox.query_messages(conn, status=MessageStatus.FAILED.value, limit=FAILED_SHOWN)
        failed_total = console_stats.failed_messages_count(conn, bounds[0])
    labels = [d.strftime("%m-%d") for d in dates]
    status_series = [charts.Series(t("status." + s), by_status.get(s, [0] * DAYS), css)
                     for s, css in STATUS_ORDER]
    opt_series = [charts.Series(t("channel." + c), opt_outs[c], css) for c, css in OPT_OUT_CHANNELS]
    messages_total = sum(sum(s.values) for s in status_series)
    opt_total = sum(sum(s.values) for s in opt_series)
    status_series = [s for s in status_series if any(s.values)]  # colours stay fixed per status
    return render_template(
        "console/dashboard.html", now=now, day=day, tomorrow=day + dt.timedelta(days=1),
        upcoming=upcoming([day, day + dt.timedelta(days=1)]), recent=recent, totals=totals,
        messages_chart=charts.stacked_bars(labels, status_series, width=CHART_WIDTH, title=t(
            "dashboard.messages_chart", days=DAYS, n=messages_total)),
        messages_legend=charts.legend(status_series), messages_total=messages_total,
        opt_chart=charts.stacked_bars(labels, opt_series, width=CHART_WIDTH,
                                      title=t("dashboard.opt_chart", days=DAYS, n=opt_total)),
        opt_legend=charts.legend(opt_series), opt_total=opt_total,
        failed=failed, failed_total=failed_total, days=DAYS,
        has_messages="console.messages" in current_app.view_functions)
