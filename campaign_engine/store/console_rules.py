"""What the console's rules list reads beside the published set: each rule's latest run counts."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from .models import CampaignRun, RunRuleStats


def last_run_stats(conn: Connection, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """rule id -> the counts of its latest real (not dry) run: run id, date, status, candidates,
    matched, queued, scheduled, held_out, failed, suppressed (by reason), skipped. One query for
    all the rules (no query per rule); run_rule_stats holds one row per run and rule, not per customer."""
    ids = sorted(set(rule_ids))
    if not ids:
        return {}
    latest = (select(RunRuleStats.rule_id, func.max(RunRuleStats.run_id).label("run_id"))
              .join(CampaignRun, CampaignRun.id == RunRuleStats.run_id)
              .where(RunRuleStats.rule_id.in_(ids), CampaignRun.dry_run.is_(False))
              .group_by(RunRuleStats.rule_id).subquery())
    rows = conn.execute(
        select(RunRuleStats.rule_id, RunRuleStats.run_id, RunRuleStats.candidates, RunRuleStats.matched,
               RunRuleStats.queued, RunRuleStats.scheduled, RunRuleStats.held_out, RunRuleStats.failed,
               RunRuleStats.suppressed, RunRuleStats.skipped, CampaignRun.run_date, CampaignRun.status,
               CampaignRun.started_at)
        .join(latest, and_(latest.c.rule_id == RunRuleStats.rule_id, latest.c.run_id == RunRuleStats.run_id))
        .join(CampaignRun, CampaignRun.id == RunRuleStats.run_id)).mappings()
    return {r["rule_id"]: {**dict(r), "suppressed": dict(r["suppressed"] or {}),
                           "suppressed_total": sum((r["suppressed"] or {}).values())} for r in rows}
