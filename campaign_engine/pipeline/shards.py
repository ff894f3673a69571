"""A recorded run's shards: planning them, executing one (again, after a lost worker), closing the run.

A run is recorded with its rules in priority order and split into customer-id ranges; each
shard executes every rule for its customers only, highest priority first, so per-customer caps
decide exactly as in one pass. Whoever finishes the last shard closes the run (the store's one
conditional UPDATE makes that exactly one closer) with totals summed by report.summarize_shards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from .. import logs, metrics
from ..errors import NotFound, Problem
from ..events import Event
from ..evaluation.engine import RuleEngine
from ..rulebook.loader import Rulebook
from ..rulebook.model import Rule
from ..vocabulary import EventType, RunKind, ShardStatus
from .batch import WHOLE, Shard, run_rule
from .report import RuleStats, summarize_shards
from .publishing import rulebook_of_versions
from .services import Services

log = logging.getLogger(__name__)

SHARD_ATTEMPTS = 5


@dataclass(frozen=True)
class AcceptedRun:
    """A run as executed: recorded (run_id) unless dry, with its rules and its event, if any."""

    run_id: int | None
    kind: RunKind
    today: dt.date
    rules: tuple[Rule, ...]  # in priority order
    now: dt.datetime
    event: Event | None = None
    missing: tuple[str, ...] = ()  # rule ids of the run that this process has not loaded
    book: Rulebook | None = None  # the rules at the run's versions (None: the services' own)

    @property
    def event_key(self) -> str | None:
        return self.event.key if self.event else None


def in_priority_order(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    return tuple(sorted(rules, key=lambda r: (-r.priority, r.id)))


def load_run(services: Services, run_id: int) -> AcceptedRun:
    """A recorded run as this process executes it: its rules at exactly the versions the run
    recorded when it started (whatever was published since), its event from the canonical form
    stored with it (not validated again)."""
    record = services.store.run_record(run_id)
    if record is None:
        raise NotFound("run", run_id)
    rule_ids = record["rule_ids"] or []
    book = run_rulebook(services, record.get("rule_versions"))
    rules = tuple(book.rules[r] for r in rule_ids if r in book.rules)
    event = None
    if record["event_key"]:
        event = Event.from_canonical(EventType(record["event_key"].split(":", 1)[0]), record["event_payload"])
    return AcceptedRun(run_id, RunKind(record["kind"]), record["run_date"], rules, record["started_at"], event,
                       missing=tuple(r for r in rule_ids if r not in book.rules), book=book)


def run_rulebook(services: Services, versions: Mapping[str, Mapping[str, Any]] | None) -> Rulebook:
    """The rules at the versions a run recorded: this process's live set when it is exactly those,
    else those versions built from the database (a publish came between the run's start and now)."""
    live = services.rulebook
    if versions is None:  # a run recorded before versions were (or from files, in tests of the loader)
        return live
    if all(r in live.rules and live.rules[r].version == v.get("version") and live.rules[r].content_hash == v.get("hash")
           for r, v in versions.items()):
        return live
    return rulebook_of_versions(services.store, versions)


_engines: dict[tuple[tuple[str, str], ...], RuleEngine] = {}
_engines_lock = threading.Lock()


def services_for(services: Services, book: Rulebook | None) -> Services:
    """Services whose rulebook and engine are `book`'s (the same Services when it is the live one)."""
    if book is None or book is services.rulebook:
        return services
    key = tuple(sorted((r.id, r.content_hash) for r in book.rules.values()))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if len(_engines) >= 8:
                _engines.clear()
            engine = _engines[key] = RuleEngine(book.rules.values())
    return replace(services, rulebook=book, engine=engine)


def rules_not_live(rulebook: Rulebook) -> dict[str, tuple[Problem, ...]]:
    """The rules the rule folder holds but cannot run, with why: keyed by rule id, or by file
    when the file is too broken to name its rules. A rule kept live at its previous version
    (a reload of a broken file) is live, not listed."""
    out: dict[str, list[Problem]] = {}
    for problem in rulebook.problems:
        if problem.rule and problem.rule in rulebook.rules:
            continue
        if not problem.rule and problem.file and any(r.file == problem.file for r in rulebook.rules.values()):
            continue
        key = (problem.rule or problem.file or "rules folder")[:64]
        out.setdefault(key, []).append(problem)
    return {key: tuple(problems) for key, problems in out.items()}


@contextlib.contextmanager
def _settled_heap() -> Iterator[None]:
    """While a shard runs, the objects alive when it began (the rulebook, compiled templates, the
    ORM, the engine's session) sit in the collector's permanent generation: the cyclic collector's
    full passes, triggered by the millions of short-lived objects a shard makes, stop rescanning
    them (they were 15-20 % of a large run's time). O(1) both ways; a shard in another thread at
    the same time only shares the benefit."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_rules(services: Services, run: AcceptedRun, shard: Shard = WHOLE) -> list[RuleStats]:
    """Every rule of the run over one shard's customers, highest priority first (when the caps
    force a choice, it has taken the slot already); a rule's failure is recorded in its stats
    without stopping the others."""
    with _settled_heap():
        return _run_rules(services, run, shard)


def _run_rules(services: Services, run: AcceptedRun, shard: Shard) -> list[RuleStats]:
    executing = services_for(services, run.book)
    stats = []
    for rule in run.rules:
        stopped = services.store.disabled_rules([rule.id]) if run.run_id is not None else {}
        if rule.id in stopped:  # the emergency stop, seen at once: checked before each rule of each shard
            why = stopped[rule.id]
            stats.append(RuleStats(rule.id, skipped=f"disabled by {why['changed_by']}: {why['reason']}"))
            continue
        stats.append(run_rule(executing, rule, run.today, run_id=run.run_id, now=run.now, event=run.event,
                              shard=shard))
    stats += [RuleStats(rule_id, error=_why_not_run(services, rule_id)) for rule_id in run.missing]
    return stats


def _why_not_run(services: Services, rule_id: str) -> str:
    problems = rules_not_live(services.rulebook).get(rule_id)
    if problems:
        return "not run: " + "; ".join(str(p) for p in problems)
    return f"not run: rule {rule_id} is not in the published versions this run recorded"


def plan_shards(services: Services, run_id: int) -> list[int]:
    """Record the run's shards: customer-id ranges of about `shard_size` customers each."""
    bounds = services.store.plan_shards(run_id, services.settings.shard_size)
    log.info("run %s: %s shard(s) of up to %s customers", run_id, len(bounds), services.settings.shard_size)
    return list(range(len(bounds)))


@dataclass
class ShardOutcome:
    stats: list[RuleStats]
    closed: dict[str, Any] | None  # the run's totals when this shard was its last one


def execute_shard(services: Services, run_id: int, shard_no: int, *, worker: str,
                  clock: Callable[[], dt.datetime]) -> ShardOutcome | None:
    """Execute one recorded shard, again if an earlier attempt was lost (its messages stand:
    the idempotency keys keep them single, and they count as this run's). None when the
    shard has already finished. Other errors propagate: the executor retries or fails it."""
    claimed = services.store.claim_shard(run_id, shard_no, worker=worker, now=clock())
    if claimed is None:
        log.info("run %s shard %s already finished", run_id, shard_no)
        return None
    if claimed["attempts"] > SHARD_ATTEMPTS:  # its worker keeps dying on it (memory? a crash?)
        return ShardOutcome([], fail_shard(
            services, run_id, shard_no, f"given up after {SHARD_ATTEMPTS} attempts whose workers were lost",
            now=clock()))
    if claimed["attempts"] > 1:
        log.warning("run %s shard %s: attempt %s", run_id, shard_no, claimed["attempts"])
    run = load_run(services, run_id)
    started = time.perf_counter()
    with logs.bound(run_id=run_id, shard=shard_no):
        stats = run_rules(services, run, Shard(shard_no, claimed["lower"], claimed["upper"]))
    services.store.finish_shard(run_id, shard_no, status=ShardStatus.COMPLETED,
                                stats=[s.as_dict() for s in stats], error=None, now=clock())
    metrics.record_shard(stats, time.perf_counter() - started, ShardStatus.COMPLETED)
    return ShardOutcome(stats, close_run(services, run_id, clock()))


def fail_shard(services: Services, run_id: int, shard_no: int, error: str, *,
               now: dt.datetime) -> dict[str, Any] | None:
    """Give a shard up (its retries are spent); the run closes when its other shards are done."""
    log.error("run %s shard %s failed: %s", run_id, shard_no, error)
    services.store.finish_shard(run_id, shard_no, status=ShardStatus.FAILED, stats=[], error=error, now=now)
    return close_run(services, run_id, now)


def close_run(services: Services, run_id: int, now: dt.datetime) -> dict[str, Any] | None:
    """Close the run if no shard is left (exactly one caller does); its totals, or None."""
    closed = services.store.close_if_done(run_id, now=now, summarize=summarize_shards)
    if closed is not None:
        log.info("run %s finished: %s", run_id, closed["status"])
        metrics.record_run_closed(closed["kind"], closed["status"], closed["started_at"], now)
    return closed
