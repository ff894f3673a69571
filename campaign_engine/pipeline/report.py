"""The run report: the one shape a run's result takes, built in one place, serialised by one function.

RuleStats is what a rule counted over its candidates (a shard's share, or a run's total);
RunReport is a run as recorded (or, for a dry run, as counted): CLI text, `--json` and the API
all read it through `RunReport.as_dict`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..vocabulary import RunKind, RunStatus, ShardStatus

COUNTS = ("candidates", "matched", "queued", "scheduled", "held_out", "duplicates", "failed")
TASK_COUNTS = ("tasks", "merged")  # shown when a rule plans manager tasks


@dataclass
class RuleStats:
    """One rule's counts in a run (or a shard of it)."""

    rule: str
    candidates: int = 0
    matched: int = 0
    queued: int = 0
    scheduled: int = 0  # queued for the next sending window (quiet hours)
    held_out: int = 0  # in the rule's holdout or the control group: recorded, never sent
    duplicates: int = 0
    failed: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    seconds: float = 0.0
    delivery: dict[str, Any] | None = None  # where its messages stand now (recorded runs only)
    skipped: str | None = None  # why it did not run on the date (workdays_only on a day off): not an error
    tasks: int = 0  # manager tasks (call, visit) planned
    merged: int = 0  # repeated alerts merged into a customer's open task of the rule

    @property
    def plans_tasks(self) -> bool:
        return bool(self.tasks or self.merged)

    def as_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule, **{c: getattr(self, c) for c in COUNTS},
               "suppressed": dict(sorted(self.suppressed.items())), "error": self.error,
               "seconds": round(self.seconds, 3)}
        if self.delivery is not None:
            out["delivery"] = self.delivery
        if self.skipped is not None:
            out["skipped"] = self.skipped
        if self.plans_tasks:
            out.update(tasks=self.tasks, merged=self.merged)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RuleStats":
        return cls(rule=data["rule"], **{c: int(data.get(c) or 0) for c in COUNTS},
                   suppressed=Counter(data.get("suppressed") or {}), error=data.get("error"),
                   seconds=float(data.get("seconds") or 0.0), delivery=data.get("delivery"),
                   skipped=data.get("skipped"), **{c: int(data.get(c) or 0) for c in TASK_COUNTS})


@dataclass(frozen=True)
class ShardProgress:
    total: int = 0
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "pending": self.pending, "running": self.running,
                "completed": self.completed, "failed": self.failed}


@dataclass(frozen=True)
class RunReport:
    run_id: int | None  # None: a dry run (nothing recorded)
    kind: RunKind
    date: dt.date
    status: RunStatus
    dry_run: bool
    rules: tuple[RuleStats, ...]  # counts per rule, once counted (a running run has none yet)
    rule_ids: tuple[str, ...] = ()  # the run's rules, in the priority order they run in
    shards: ShardProgress | None = None
    error: str | None = None
    event_key: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    replayed: bool = False  # an event id seen before: this is the report of its first run
    # the published version each rule ran in ({rule: {"version", "hash", "generation"}}), fixed at its start
    rule_versions: Mapping[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED

    def as_dict(self) -> dict[str, Any]:
        """The one serialised form: CLI `--json`, the API's RunSchema, the text printer."""
        return {
            "run_id": self.run_id, "kind": self.kind.value, "date": self.date.isoformat(),
            "dry_run": self.dry_run, "status": self.status.value, "error": self.error,
            "event_key": self.event_key, "replayed": self.replayed,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "rule_ids": list(self.rule_ids),
            "shards": self.shards.as_dict() if self.shards else None,
            "rules": [r.as_dict() for r in self.rules],
            "rule_versions": dict(self.rule_versions) if self.rule_versions is not None else None,
        }


def _datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def build_report(record: Mapping[str, Any], *, replayed: bool = False) -> RunReport:
    """A recorded run (store.run_report's mapping) as a RunReport: the only place one is built
    from the record."""
    shards = record.get("shards")
    return RunReport(
        run_id=record["run_id"], kind=RunKind(record["kind"]),
        date=dt.date.fromisoformat(str(record["date"])), status=RunStatus(record["status"]),
        dry_run=bool(record.get("dry_run")),
        rules=tuple(RuleStats.from_dict(r) for r in record.get("rules") or ()),
        rule_ids=tuple(record.get("rule_ids") or ()),
        shards=ShardProgress(**{k: int(shards.get(k, 0)) for k in ("total", "pending", "running", "completed",
                                                                     "failed")}) if shards else None,
        error=record.get("error"), event_key=record.get("event_key"),
        started_at=_datetime(record.get("started_at")), finished_at=_datetime(record.get("finished_at")),
        replayed=replayed, rule_versions=record.get("rule_versions"))


def dry_run_report(kind: RunKind, date: dt.date, stats: list[RuleStats], *,
                   event_key: str | None) -> RunReport:
    """A dry run's report: counted, never recorded."""
    status, error = judge(stats)
    return RunReport(run_id=None, kind=kind, date=date, dry_run=True, status=status, rules=tuple(stats),
                     rule_ids=tuple(s.rule for s in stats), error=error, event_key=event_key)


def judge(stats: Sequence[RuleStats], failed_shards: Sequence[tuple[int, str | None]] = (),
          shard_count: int = 1) -> tuple[RunStatus, str | None]:
    """A run's status and error from its rules' totals and its failed shards (number, error):
    failed when every shard failed; with errors when a shard failed, a rule could not run (its
    error says why: a broken file, a missing template, an unknown product) or messages could not
    be rendered; else completed."""
    failed_rules = [t.rule for t in stats if t.error]
    unrendered = [(t.rule, t.failed) for t in stats if t.failed]
    if failed_shards and len(failed_shards) == shard_count:
        status = RunStatus.FAILED
    elif failed_shards or failed_rules or unrendered:
        status = RunStatus.COMPLETED_WITH_ERRORS
    else:
        status = RunStatus.COMPLETED
    errors = [rules_failed(failed_rules)]
    if unrendered:
        errors.append(f"{sum(n for _, n in unrendered)} message(s) failed: "
                      + ", ".join(f"{rule} {n}" for rule, n in unrendered)
                      + " (see `messages --status failed`; `retry` once the cause is fixed)")
    if failed_shards:
        errors.append(f"{len(failed_shards)} of {shard_count} shard(s) failed: "
                      + "; ".join(f"shard {no}: {error}" for no, error in failed_shards[:3]))
    return status, "; ".join(e for e in errors if e) or None


def rules_failed(rule_ids: list[str]) -> str | None:
    """A run's error naming the rules that failed (the others ran)."""
    return f"{len(rule_ids)} rule(s) failed: {', '.join(rule_ids)}" if rule_ids else None


def summarize_shards(shards: Sequence[tuple[int, str, Any, str | None]],
                     rule_ids: Sequence[str]) -> tuple[RunStatus, str | None, list[dict[str, Any]]]:
    """A closing run's status, error and per-rule totals (in the run's priority order) from its
    shards' (number, status, per-rule stats, error), judged by `judge`."""
    totals: dict[str, RuleStats] = {}
    for _, _, stats, _ in shards:
        for part in stats or ():
            one = RuleStats.from_dict(part)
            total = totals.setdefault(one.rule, RuleStats(one.rule))
            for c in COUNTS + TASK_COUNTS:
                setattr(total, c, getattr(total, c) + getattr(one, c))
            total.suppressed.update(one.suppressed)
            total.error = total.error or one.error
            total.skipped = total.skipped or one.skipped
            total.seconds += one.seconds
    order = {r: i for i, r in enumerate(rule_ids)}
    ordered = sorted(totals.values(), key=lambda t: (order.get(t.rule, len(order)), t.rule))
    failed_shards = [(no, error) for no, status, _, error in shards if status == ShardStatus.FAILED.value]
    status, error = judge(ordered, failed_shards, len(shards))
    return status, error, [t.as_dict() for t in ordered]
