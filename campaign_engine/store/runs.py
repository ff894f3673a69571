"""Campaign run records and their per-rule counts."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import Connection, func, insert, select, update

from ..vocabulary import RunStatus
from .models import CampaignRun, Message, RunRuleStats


def start_run(conn: Connection, *, kind: str, run_date: dt.date, dry_run: bool, now: dt.datetime,
              event_key: str | None = None, event_payload: dict[str, Any] | None = None) -> int:
    """Record a run as running and return its id."""
    result = conn.execute(insert(CampaignRun).values(
        kind=kind, run_date=run_date, dry_run=dry_run, status=RunStatus.RUNNING.value,
        started_at=now, event_key=event_key, event_payload=event_payload).returning(CampaignRun.id))
    return int(result.scalar_one())


def find_event_run(conn: Connection, event_key: str) -> dict[str, Any] | None:
    """The run an event id already started (unique index on event_key)."""
    row = conn.execute(select(CampaignRun.id, CampaignRun.event_payload)
                       .where(CampaignRun.event_key == event_key)).mappings().first()
    return None if row is None else dict(row)


def finish_run(conn: Connection, run_id: int, *, status: RunStatus, stats: Iterable[dict[str, Any]],
               error: str | None, now: dt.datetime) -> None:
    """Store the per-rule counts and close the run."""
    rows = [dict(s, run_id=run_id) for s in stats]
    if rows:
        conn.execute(insert(RunRuleStats), rows)
    conn.execute(update(CampaignRun).where(CampaignRun.id == run_id)
                 .values(status=status.value, error=error, finished_at=now))


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """A run with its per-rule counts."""
    run = conn.execute(select(*CampaignRun.__table__.c).where(CampaignRun.id == run_id)).first()
    if run is None:
        return None
    stats = conn.execute(select(*RunRuleStats.__table__.c).where(RunRuleStats.run_id == run_id)
                         .order_by(RunRuleStats.rule_id)).all()
    delivery = delivery_states(conn, run_id)
    return {
        "run_id": run.id, "kind": run.kind, "date": run.run_date.isoformat(), "dry_run": run.dry_run,
        "status": run.status, "error": run.error, "event_key": run.event_key,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "rules": [{
            "rule": s.rule_id, "candidates": s.candidates, "matched": s.matched, "queued": s.queued,
            "scheduled": s.scheduled,
            "duplicates": s.duplicates, "failed": s.failed, "suppressed": dict(s.suppressed or {}),
            "error": s.error, "seconds": float(s.seconds),
            "delivery": delivery.get(s.rule_id, {}),
        } for s in stats],
    }


def list_runs(conn: Connection, *, kind: str | None = None, status: str | None = None, limit: int = 50,
              before_id: int | None = None) -> list[dict[str, Any]]:
    """Runs newest first (primary key order), paged by id."""
    query = select(CampaignRun.id, CampaignRun.kind, CampaignRun.run_date, CampaignRun.status,
                   CampaignRun.event_key, CampaignRun.error, CampaignRun.started_at,
                   CampaignRun.finished_at).order_by(CampaignRun.id.desc()).limit(limit)
    if kind:
        query = query.where(CampaignRun.kind == kind)
    if status:
        query = query.where(CampaignRun.status == status)
    if before_id is not None:
        query = query.where(CampaignRun.id < before_id)
    return [{"run_id": r.id, "kind": r.kind, "date": r.run_date.isoformat(), "status": r.status,
             "event_key": r.event_key, "error": r.error, "started_at": r.started_at.isoformat(),
             "finished_at": r.finished_at.isoformat() if r.finished_at else None}
            for r in conn.execute(query)]


def delivery_states(conn: Connection, run_id: int) -> dict[str, dict[str, Any]]:
    """rule -> where its messages stand now: counts per status, suppressions by reason (ix_messages_run_id)."""
    rows = conn.execute(select(Message.rule_id, Message.status, Message.suppressed_reason, func.count())
                        .where(Message.run_id == run_id)
                        .group_by(Message.rule_id, Message.status, Message.suppressed_reason))
    out: dict[str, dict[str, Any]] = {}
    for rule_id, status, reason, n in rows:
        states = out.setdefault(rule_id, {})
        if status == "suppressed":
            by_reason = states.setdefault("suppressed", {})
            by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + n
        else:
            states[status] = states.get(status, 0) + n
    return out
