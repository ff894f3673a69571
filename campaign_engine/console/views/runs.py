"""The runs screen: the list of runs (READ), starting scheduled rules now (RUN), one run's funnel,
per-rule counts, shard progress while it runs, and its failed messages with a retry (RUN)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from types import SimpleNamespace
from typing import Any

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for

from ...api.auth import READ, RUN
from ...errors import CampaignEngineError, NotFound
from ...pipeline import ScheduledRunRequest, get_report, start_run
from ...pipeline.effect import EffectRequest, effect_report
from ...pipeline.report import RunReport, ShardProgress
from ...pipeline.retry import RetryRequest, RetrySkip, retry_messages
from ...store import audit, console_stats, outbox
from ...store import runs as run_store
from ...vocabulary import MessageStatus, RunKind, RunStatus, SuppressionReason
from .. import auth, charts
from ..blueprint import bp, t, today

PAGE = 25
FAILED_SHOWN = 50
MAX_ID = 2**63 - 1
MAX_RULES = 200
SHARD_COUNTS = ("total", "pending", "running", "completed", "failed")
REASONS = frozenset(r.value for r in SuppressionReason)  # each has its words (reason.<value>)
SKIPS = frozenset(s.value for s in RetrySkip)  # each has its words (runs.skip.<value>)


def _record(action: str, target: str, details: dict[str, Any]) -> None:
    """The audit entry the API writes for the same change, with the console user as actor."""
    with g.services.db.begin() as conn:
        audit.record(conn, actor=g.actor, action=action, target=target, now=auth.now(), details=details)


def _scheduled_rules() -> list[Any]:
    return sorted((r for r in g.services.rulebook.enabled() if r.trigger.schedule is not None),
                  key=lambda r: (r.priority, r.id))


def with_times(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """list_runs rows with their started/finished times as datetimes (for the `local` filter)."""
    for item in items:
        item["started"] = dt.datetime.fromisoformat(item["started_at"])
        item["finished"] = dt.datetime.fromisoformat(item["finished_at"]) if item["finished_at"] else None
    return items


def _int_arg(name: str) -> int | None:
    value = request.args.get(name) or ""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        abort(400)
    return int(value)


@bp.route("/runs")
@auth.requires(READ)
def runs() -> Any:
    kind = request.args.get("kind") or None
    status = request.args.get("status") or None
    if kind not in (None, *(k.value for k in RunKind)) or status not in (None, *(s.value for s in RunStatus)):
        abort(400)
    after = _int_arg("after")
    with g.services.db.connect() as conn:
        items = run_store.list_runs(conn, kind=kind, status=status, limit=PAGE, before_id=after)
        totals = console_stats.run_totals(conn, [r["run_id"] for r in items])
    with_times(items)
    next_url = (url_for("console.runs", kind=kind, status=status, after=items[-1]["run_id"])
                if len(items) == PAGE else None)
    return render_template("console/runs/list.html", items=items, totals=totals, next_url=next_url,
                           kind=kind, status=status, kinds=[k.value for k in RunKind],
                           statuses=[s.value for s in RunStatus], rules=_scheduled_rules(), day=today(),
                           paged=after is not None)


@bp.route("/runs", methods=["POST"])
@auth.requires(RUN)
def runs_start() -> Any:
    """Run scheduled rules now for a date (as POST /api/v1/runs), without waiting: to the run's page."""
    raw = (request.form.get("date") or "").strip()
    try:
        day = dt.date.fromisoformat(raw) if raw else today()
    except ValueError:
        flash(t("runs.bad_date", value=raw[:20]), "error")
        return redirect(url_for("console.runs"))
    rule_ids = tuple(dict.fromkeys(r.strip()[:64] for r in request.form.getlist("rules") if r.strip()))[:MAX_RULES]
    try:
        report = start_run(g.services, ScheduledRunRequest(day, rule_ids), now=auth.now(), wait=False)
    except CampaignEngineError as exc:
        flash(t("runs.start_failed", error=str(exc)), "error")
        return redirect(url_for("console.runs"))
    _record("run", f"run:{report.run_id}", {"date": report.date.isoformat(), "rules": list(report.rule_ids)})
    flash(t("runs.started", run=report.run_id, date=report.date.isoformat()), "success")
    return redirect(url_for("console.runs_detail", run_id=report.run_id))


def _report(run_id: int) -> RunReport:
    if run_id > MAX_ID:
        abort(404)
    try:
        return get_report(g.services, run_id)
    except NotFound:
        abort(404)


def _converted(report: RunReport) -> dict[str, int]:
    """rule -> contacts of this run converted by the rule's goal (the effect report of the run),
    for the live rules that declare a goal."""
    out: dict[str, int] = {}
    if not report.finished:
        return out
    for stats in report.rules:
        rule = g.services.rulebook.get(stats.rule)
        if rule is None or rule.goal is None or not (stats.queued or stats.scheduled or stats.held_out):
            continue
        try:
            effect = effect_report(g.services, EffectRequest(rule.id, run_id=report.run_id), now=auth.now())
        except CampaignEngineError:
            continue
        out[rule.id] = effect.treated.conversions
    return out


def funnel(report: RunReport, converted: dict[str, int]) -> list[charts.Bar]:
    """candidates -> matched -> suppressed (by reason) -> held out -> queued/scheduled -> sent ->
    delivered -> failed -> converted, over the run's rules; delivery as the messages stand now."""
    rules = report.rules
    suppressed: Counter[str] = Counter()
    delivery: Counter[str] = Counter()
    for r in rules:
        suppressed.update(r.suppressed)
        for status, n in (r.delivery or {}).items():
            if isinstance(n, int):
                delivery[status] += n
    bars = [charts.Bar(t("runs.step.candidates"), sum(r.candidates for r in rules), "c5"),
            charts.Bar(t("runs.step.matched"), sum(r.matched for r in rules), "c0"),
            charts.Bar(t("runs.step.suppressed"), sum(suppressed.values()), "c2")]
    bars += [charts.Bar(t("reason." + reason) if reason in REASONS else reason, n, "c6", indent=True)
             for reason, n in suppressed.most_common()]
    bars += [charts.Bar(t("runs.step.held_out"), sum(r.held_out for r in rules), "c4"),
             charts.Bar(t("runs.step.queued"), sum(r.queued + r.scheduled for r in rules), "c7"),
             charts.Bar(t("runs.step.sent"), delivery["sent"] + delivery["delivered"], "c0"),
             charts.Bar(t("runs.step.delivered"), delivery["delivered"], "c1"),
             charts.Bar(t("runs.step.failed"), delivery["failed"], "c3"),
             charts.Bar(t("runs.step.converted"), sum(converted.values()), "c8")]
    return bars



@bp.route("/runs/<int:run_id>")
@auth.requires(READ)
def runs_detail(run_id: int) -> Any:
    report = _report(run_id)
    converted = _converted(report)
    with g.services.db.connect() as conn:
        failed = outbox.query_messages(conn, run_id=run_id, status=MessageStatus.FAILED.value, limit=FAILED_SHOWN)
    bars = funnel(report, converted)
    chart = charts.horizontal_bars(bars, title=t("runs.funnel_title", run=run_id)) if report.rules else None
    return render_template("console/runs/run.html", report=report, chart=chart, bars=bars, converted=converted,
                           failed=failed, failed_shown=FAILED_SHOWN, reasons=REASONS,
                           rule_names={r.id: r.name for r in g.services.rulebook.rules.values()})


@bp.route("/runs/<int:run_id>/progress")
@auth.requires(READ)
def runs_progress(run_id: int) -> Any:
    """The shard progress partial the run page polls (htmx, every 2 s) while the run is running;
    once it has finished, the page reloads to show the counts (HX-Refresh)."""
    if run_id > MAX_ID:
        abort(404)
    with g.services.db.connect() as conn:  # two small reads, not the whole report: this runs every 2 s
        record = run_store.run_record(conn, run_id)
        if record is None:
            abort(404)
        shards = run_store.shard_summary(conn, run_id)
    report = SimpleNamespace(run_id=run_id, finished=record["status"] != RunStatus.RUNNING.value,
                             shards=ShardProgress(**{k: int(shards.get(k, 0)) for k in SHARD_COUNTS}))
    response = make_response(render_template("console/runs/_progress.html", report=report))
    if report.finished and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"
    return response


@bp.route("/runs/<int:run_id>/retry", methods=["POST"])
@auth.requires(RUN)
def runs_retry(run_id: int) -> Any:
    """Render the run's failed messages (or one of them) again and queue them, as POST
    /api/v1/messages/retry does; audited as messages.retry."""
    _report(run_id)
    raw = (request.form.get("message_id") or "").strip()
    try:
        if raw:
            if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ID:
                abort(400)
            retry_request = RetryRequest(message_ids=(int(raw),))
        else:
            retry_request = RetryRequest(run_id=run_id)
        result = retry_messages(g.services, retry_request, now=auth.now(), actor=g.actor)
    except CampaignEngineError as exc:
        flash(t("runs.retry_failed", error=str(exc)), "error")
        return redirect(url_for("console.runs_detail", run_id=run_id) + "#failed")
    if result.messages:
        _record("messages.retry", result.audit_target(), result.audit_details())
    skips = ", ".join(f"{t('runs.skip.' + k) if k in SKIPS else t('reason.' + k) if k in REASONS else k} {n}"
                      for k, n in result.skips().items())
    if not result.messages:
        flash(t("runs.retry_none"), "warning")
    elif result.skipped:
        flash(t("runs.retried_some", retried=result.retried, skipped=result.skipped, why=skips), "warning")
    else:
        flash(t("runs.retried", retried=result.retried), "success")
    return redirect(url_for("console.runs_detail", run_id=run_id) + "#failed")

