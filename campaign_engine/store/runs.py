"""Campaign run records and their per-rule counts."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, exists, func, insert, select, update

from ..vocabulary import MessageStatus, RunStatus, ShardStatus
from .models import CampaignRun, Customer, Message, RunRuleStats, RunShard

def insert_run(conn: Connection, *, kind: str, run_date: dt.date, dry_run: bool, now: dt.datetime,
              rule_ids: list[str] | None = None, event_key: str | None = None,
              event_payload: dict[str, Any] | None = None, rule_versions: dict[str, Any] | None = None) -> int:
    """Record a run as running and return its id."""
    result = conn.execute(insert(CampaignRun).values(
        kind=kind, run_date=run_date, dry_run=dry_run, status=RunStatus.RUNNING.value,
        started_at=now, rule_ids=rule_ids, event_key=event_key, rule_versions=rule_versions,
        event_payload=event_payload).returning(CampaignRun.id))
    return int(result.scalar_one())


def run_record(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """The stored facts a worker needs to execute a run's shard."""
    row = conn.execute(select(CampaignRun.id, CampaignRun.kind, CampaignRun.run_date, CampaignRun.status,
                              CampaignRun.started_at, CampaignRun.rule_ids, CampaignRun.event_key,
                              CampaignRun.event_payload, CampaignRun.rule_versions).where(CampaignRun.id == run_id)).mappings().first()
    return None if row is None else dict(row)


# --------------------------------------------------------------------------- shards

def shard_bounds(conn: Connection, shard_size: int) -> list[tuple[str | None, str | None]]:
    """Customer-id ranges [lower, upper) of about `shard_size` customers each, covering every id.

    One pass over the primary key; the first range starts unbounded and the last ends
    unbounded, so customers added after planning still belong to exactly one shard.
    """
    numbered = select(Customer.customer_id,
                      func.row_number().over(order_by=Customer.customer_id).label("n")).subquery()
    starts = list(conn.execute(select(numbered.c.customer_id)
                               .where((numbered.c.n - 1) % shard_size == 0, numbered.c.n > 1)
                               .order_by(numbered.c.customer_id)).scalars())
    lowers: list[str | None] = [None, *starts]
    uppers: list[str | None] = [*starts, None]
    return list(zip(lowers, uppers))


def add_shards(conn: Connection, run_id: int, bounds: list[tuple[str | None, str | None]]) -> None:
    conn.execute(insert(RunShard), [
        {"run_id": run_id, "shard_no": n, "lower": lower, "upper": upper, "status": ShardStatus.PENDING.value,
         "attempts": 0} for n, (lower, upper) in enumerate(bounds)])


def claim_shard(conn: Connection, run_id: int, shard_no: int, *, worker: str,
                now: dt.datetime) -> dict[str, Any] | None:
    """Mark a shard running by this worker (again, after a lost worker); None once it is finished."""
    row = conn.execute(select(RunShard.lower, RunShard.upper, RunShard.status, RunShard.attempts)
                       .where(RunShard.run_id == run_id, RunShard.shard_no == shard_no)).mappings().first()
    if row is None or row["status"] in (ShardStatus.COMPLETED.value, ShardStatus.FAILED.value):
        return None
    conn.execute(update(RunShard).where(RunShard.run_id == run_id, RunShard.shard_no == shard_no)
                 .values(status=ShardStatus.RUNNING.value, attempts=RunShard.attempts + 1, worker=worker,
                         started_at=now, error=None))
    return {**row, "attempts": row["attempts"] + 1}


def finish_shard(conn: Connection, run_id: int, shard_no: int, *, status: ShardStatus,
                 stats: list[dict[str, Any]], error: str | None, now: dt.datetime) -> None:
    conn.execute(update(RunShard).where(RunShard.run_id == run_id, RunShard.shard_no == shard_no)
                 .values(status=status.value, stats=stats, error=error, finished_at=now))


ShardRow = tuple[int, str, "list[dict[str, Any]] | None", "str | None"]  # shard_no, status, stats, error
Summary = tuple[RunStatus, "str | None", list[dict[str, Any]]]  # status, error, per-rule totals
Summarize = Callable[[list[ShardRow], list[str]], Summary]


def close_if_done(conn: Connection, run_id: int, *, now: dt.datetime,
                  summarize: Summarize) -> dict[str, Any] | None:
    """Close the run when no shard is pending or running, with the totals `summarize` makes of
    its shards (the pipeline's rule: campaign_engine.pipeline.report.summarize_shards).

    One conditional UPDATE decides, so of two shards finishing together exactly one closes
    the run (call it after the shard's own status is committed); the totals are written in the
    same transaction. Returns the closed status, error and totals, or None.
    """
    open_shard = exists().where(RunShard.run_id == run_id, RunShard.status.in_(
        [ShardStatus.PENDING.value, ShardStatus.RUNNING.value]))
    closing = conn.execute(update(CampaignRun)
                           .where(CampaignRun.id == run_id, CampaignRun.status == RunStatus.RUNNING.value,
                                  ~open_shard)
                           .values(finished_at=now))  # locks the run row until this commits
    if closing.rowcount != 1:
        return None
    shards = [(s.shard_no, s.status, s.stats, s.error) for s in conn.execute(
        select(RunShard.shard_no, RunShard.status, RunShard.stats, RunShard.error)
        .where(RunShard.run_id == run_id).order_by(RunShard.shard_no))]
    run = conn.execute(select(CampaignRun.rule_ids, CampaignRun.kind, CampaignRun.started_at)
                       .where(CampaignRun.id == run_id)).one()
    status, error, totals = summarize(shards, run.rule_ids or [])
    record_totals(conn, run_id, status=status, stats=[{"rule_id": t["rule"], **{k: v for k, v in t.items()
                                                                                 if k != "rule"}}
                                                      for t in totals],
                  error=error, now=now)
    return {"status": status.value, "error": error, "rules": totals, "kind": run.kind, "started_at": run.started_at}


def unfinished_shards(conn: Connection, run_id: int) -> list[int]:
    return list(conn.execute(select(RunShard.shard_no).where(
        RunShard.run_id == run_id,
        RunShard.status.in_([ShardStatus.PENDING.value, ShardStatus.RUNNING.value]))
        .order_by(RunShard.shard_no)).scalars())


def shard_summary(conn: Connection, run_id: int) -> dict[str, int]:
    rows = conn.execute(select(RunShard.status, func.count()).where(RunShard.run_id == run_id)
                        .group_by(RunShard.status)).all()
    summary = {s.value: 0 for s in ShardStatus}
    summary.update({status: n for status, n in rows})
    summary["total"] = sum(n for _, n in rows)
    return summary


def find_event_run(conn: Connection, event_key: str) -> dict[str, Any] | None:
    """The run an event id already started (unique index on event_key)."""
    row = conn.execute(select(CampaignRun.id, CampaignRun.event_payload)
                       .where(CampaignRun.event_key == event_key)).mappings().first()
    return None if row is None else dict(row)


def record_totals(conn: Connection, run_id: int, *, status: RunStatus, stats: Iterable[dict[str, Any]],
                  error: str | None, now: dt.datetime) -> None:
    """Store the per-rule counts and close the run."""
    rows = [{"skipped": None, "tasks": 0, "merged": 0, **s, "run_id": run_id} for s in stats]
    if rows:
        conn.execute(insert(RunRuleStats), rows)
    conn.execute(update(CampaignRun).where(CampaignRun.id == run_id)
                 .values(status=status.value, error=error, finished_at=now))


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """A run with its per-rule counts."""
    run = conn.execute(select(*CampaignRun.__table__.c).where(CampaignRun.id == run_id)).first()
    if run is None:
        return None
    order = {r: i for i, r in enumerate(run.rule_ids or [])}  # priority order, as they ran
    stats = sorted(conn.execute(select(*RunRuleStats.__table__.c).where(RunRuleStats.run_id == run_id)).all(),
                   key=lambda s: (order.get(s.rule_id, len(order)), s.rule_id))
    delivery = delivery_states(conn, run_id)
    return {
        "run_id": run.id, "kind": run.kind, "date": run.run_date.isoformat(), "dry_run": run.dry_run,
        "status": run.status, "error": run.error, "event_key": run.event_key, "rule_ids": list(run.rule_ids or []),
        "rule_versions": run.rule_versions, "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "shards": shard_summary(conn, run_id),
        "rules": [{
            "rule": s.rule_id, "candidates": s.candidates, "matched": s.matched, "queued": s.queued,
            "scheduled": s.scheduled, "held_out": s.held_out,
            "duplicates": s.duplicates, "failed": s.failed, "suppressed": dict(s.suppressed or {}),
            "error": s.error, "seconds": float(s.seconds), "skipped": s.skipped,
            "delivery": delivery.get(s.rule_id, {}), "tasks": s.tasks, "merged": s.merged,
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
        if status == MessageStatus.SUPPRESSED.value:
            by_reason = states.setdefault("suppressed", {})
            by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + n
        else:
            states[status] = states.get(status, 0) + n
    return out
