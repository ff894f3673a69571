"""Aggregates the console's dashboard and runs list read, that no other store function has.

Every query is bounded: a time window read through an index, or a page of given ids. Days are
buckets between boundaries the caller passes (the configured time zone's midnights as UTC), so
the SQL is the same on SQLite and PostgreSQL (a CASE over the boundaries, no date functions).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import Connection, and_, case, func, literal, select

from ..vocabulary import MessageStatus
from .models import AuditEntry, CampaignRun, Message, RunRuleStats, ScheduleFire

OPT_OUT_ACTION = "consent.withdraw"  # what the API, the SMS-reply webhook and the unsubscribe page record


def _bucket(column: Any, bounds: Sequence[dt.datetime]) -> Any:
    """Which [bounds[i], bounds[i+1]) a time falls in, as i (the caller filters to the whole range)."""
    return case(*[(column < bound, literal(i)) for i, bound in enumerate(bounds[1:])], else_=literal(-1))


def messages_by_status_per_day(conn: Connection, bounds: Sequence[dt.datetime]) -> dict[str, list[int]]:
    """status -> messages written each day (by created_at) for the len(bounds)-1 days between the
    boundaries. Reads ix_messages_status_created (status, created_at): one range per status."""
    days = len(bounds) - 1
    out = {s.value: [0] * days for s in MessageStatus}
    if days < 1:
        return out
    bucket = _bucket(Message.created_at, bounds).label("day")
    rows = conn.execute(select(Message.status, bucket, func.count())
                        .where(Message.status.in_([s.value for s in MessageStatus]),
                               Message.created_at >= bounds[0], Message.created_at < bounds[-1])
                        .group_by(Message.status, bucket))
    for status, day, n in rows:
        if 0 <= day < days:
            out.setdefault(status, [0] * days)[day] += n
    return out


def opt_outs_per_day(conn: Connection, bounds: Sequence[dt.datetime],
                     channels: Sequence[str]) -> dict[str, list[int]]:
    """channel -> marketing consents withdrawn each day, from the audit log's consent.withdraw
    entries (target `<customer>:<channel>`). The window's first entry id comes through ix_audit_log_at,
    then ix_audit_log_action_id (action, id) reads only that action's entries from there on."""
    days = len(bounds) - 1
    out = {c: [0] * days for c in channels}
    if days < 1 or not channels:
        return out
    first_id = conn.execute(select(func.min(AuditEntry.id)).where(AuditEntry.at >= bounds[0])).scalar()
    if first_id is None:
        return out
    bucket = _bucket(AuditEntry.at, bounds).label("day")
    channel = case(*[(AuditEntry.target.like(f"%:{c}"), literal(c)) for c in channels], else_=literal("")).label("ch")
    rows = conn.execute(select(channel, bucket, func.count())
                        .where(AuditEntry.action == OPT_OUT_ACTION, AuditEntry.id >= first_id,
                               AuditEntry.at >= bounds[0], AuditEntry.at < bounds[-1])
                        .group_by(channel, bucket))
    for ch, day, n in rows:
        if ch in out and 0 <= day < days:
            out[ch][day] += n
    return out


def last_matched(conn: Connection, rule_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """rule -> its latest recorded run's counts: {run_id, date, candidates, matched}. One query over
    run_rule_stats (a row per rule and run: small) for these rules."""
    if not rule_ids:
        return {}
    latest = (select(RunRuleStats.rule_id, func.max(RunRuleStats.run_id).label("run_id"))
              .where(RunRuleStats.rule_id.in_(list(rule_ids)), RunRuleStats.skipped.is_(None))
              .group_by(RunRuleStats.rule_id).subquery())
    rows = conn.execute(select(RunRuleStats.rule_id, RunRuleStats.run_id, RunRuleStats.candidates,
                               RunRuleStats.matched, CampaignRun.run_date)
                        .join(latest, and_(latest.c.rule_id == RunRuleStats.rule_id,
                                           latest.c.run_id == RunRuleStats.run_id))
                        .join(CampaignRun, CampaignRun.id == RunRuleStats.run_id))
    return {r.rule_id: {"run_id": r.run_id, "date": r.run_date, "candidates": r.candidates, "matched": r.matched}
            for r in rows}


RUN_TOTALS = ("candidates", "matched", "queued", "scheduled", "held_out", "failed")


def run_totals(conn: Connection, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """run -> its rules' counts summed (run_rule_stats' primary key starts with run_id); a run still
    running has none yet."""
    if not run_ids:
        return {}
    columns = [func.sum(getattr(RunRuleStats, c)).label(c) for c in RUN_TOTALS]
    rows = conn.execute(select(RunRuleStats.run_id, func.count().label("rules"), *columns)
                        .where(RunRuleStats.run_id.in_(list(run_ids))).group_by(RunRuleStats.run_id))
    return {r.run_id: {"rules": r.rules, **{c: int(getattr(r, c) or 0) for c in RUN_TOTALS}} for r in rows}


def failed_messages_count(conn: Connection, since: dt.datetime) -> int:
    """Failed messages written since `since` (ix_messages_status_created)."""
    return int(conn.execute(select(func.count()).select_from(Message).where(
        Message.status == MessageStatus.FAILED.value, Message.created_at >= since)).scalar_one())


def fires_on(conn: Connection, rule_ids: Sequence[str], dates: Sequence[dt.date]) -> dict[tuple[str, dt.date], int | None]:
    """(rule, date) -> the run a schedule fire started (None: claimed, no run yet), for these rules
    and dates: one read through uq_schedule_fires_rule_date (rule_id, run_date)."""
    if not rule_ids or not dates:
        return {}
    rows = conn.execute(select(ScheduleFire.rule_id, ScheduleFire.run_date, ScheduleFire.run_id).where(
        ScheduleFire.rule_id.in_(list(rule_ids)), ScheduleFire.run_date.in_(list(dates))))
    return {(r.rule_id, r.run_date): r.run_id for r in rows}
