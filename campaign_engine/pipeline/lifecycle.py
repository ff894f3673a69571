"""The run lifecycle: the one way every entry point starts, waits for, resumes and reads a run.

    start_run(services, request, now=..., wait=...) -> RunReport
    wait_for_run(services, run_id) -> RunReport
    resume_run(services, run_id, now=..., wait=...) -> RunReport
    get_report(services, run_id) -> RunReport

A request is validated and its rules chosen here; a real run is recorded with its shards and
handed to the services' executor (in-process or Celery: chosen once, in bootstrap); a dry run
executes here and writes nothing. Whatever happens, the answer is a RunReport.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import AlreadyRecorded, CampaignEngineError, Conflict, NotFound, Problem, ValidationFailed
from ..events import Event
from ..rulebook.loader import Rulebook
from ..rulebook.model import Rule
from ..vocabulary import RunKind
from .batch import WHOLE
from .publishing import not_live_hint
from .references import check_event_references
from .report import RunReport, build_report, dry_run_report
from .services import Services
from .shards import AcceptedRun, in_priority_order, plan_shards, rules_not_live, run_rules

log = logging.getLogger(__name__)


class EventConflict(CampaignEngineError):
    """An event id was replayed with a different payload."""

    def __init__(self, key: str, run_id: int):
        self.key = key
        self.run_id = run_id
        super().__init__(f"event {key} was already handled by run {run_id} with a different payload")


@dataclass(frozen=True)
class ScheduledRunRequest:
    """Scheduled rules for a date: the named ones (enabled or not), or every enabled one."""

    today: dt.date
    rule_ids: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class EventRunRequest:
    """Every enabled rule an event triggers; the event is validated already (events.parse_event)."""

    event: Event
    dry_run: bool = False


RunRequest = ScheduledRunRequest | EventRunRequest


def select_rules(rulebook: Rulebook, rule_ids: Sequence[str], *, scheduled: bool) -> list[Rule]:
    """The named rules (enabled or not), or every enabled scheduled (or event) rule. A named rule
    that is not live because its file is broken is bad input naming the file, line and problem."""
    if rule_ids:
        broken = rules_not_live(rulebook)
        problems = [p for r in rule_ids if rulebook.get(r) is None for p in broken.get(r, ())]
        if problems:
            raise ValidationFailed(problems, what=f"rule {', '.join(r for r in rule_ids if r in broken)} "
                                                  f"(not live)")
        missing = [r for r in rule_ids if rulebook.get(r) is None]
        if missing:
            raise NotFound("rule", ", ".join(missing), _unreadable_files(broken))
        stopped = [f"{r} ({rulebook.stopped[r]})" for r in rule_ids if r in rulebook.stopped]
        if stopped:
            raise Conflict(f"rule {', '.join(stopped)} is disabled: `rules enable` it (with approval) first")
        rules = [rulebook.rules[r] for r in rule_ids]
        wrong = [r.id for r in rules if (r.trigger.schedule is None) == scheduled]
        if wrong:
            raise ValidationFailed([Problem("not a scheduled rule" if scheduled else "not an event rule",
                                            rule=r, field="rules") for r in wrong], what="run request")
        return rules
    return [r for r in rulebook.enabled() if (r.trigger.schedule is not None) == scheduled]


def _unreadable_files(broken: dict[str, tuple[Problem, ...]]) -> str | None:
    files = sorted({p.file for problems in broken.values() for p in problems if p.file and not p.rule})
    return f"{', '.join(files)} could not be read, its rules are not live (`rules validate` says why)" \
        if files else None


def _replay(services: Services, event: Event) -> RunReport | None:
    """The report of the run this event id already has (EventConflict if the payload differs)."""
    first = services.store.find_event_run(event.key)
    if first is None:
        return None
    if first["event_payload"] != event.canonical():
        raise EventConflict(event.key, first["id"])
    return get_report(services, first["id"], replayed=True)


def recorded_versions(rulebook: Rulebook, rules: Sequence[Rule]) -> dict[str, Any] | None:
    """What a run records of its rules' versions: every shard executes exactly these (None for a
    rulebook read from files, which is never how a recorded run runs outside tests of the loader)."""
    if rulebook.generation is None:
        return None
    return {r.id: {"version": r.version, "hash": r.content_hash, "generation": rulebook.generation}
            for r in rules}


def start_run(services: Services, request: RunRequest, *, now: dt.datetime, wait: bool = True,
              timeout: float | None = None, on_recorded: Callable[[int], None] | None = None) -> RunReport:
    """Accept a run and execute it through the services' executor.

    A dry run executes here and writes nothing. A replayed event id answers with its first run's
    report (`replayed`), writing nothing. Otherwise the run and its shards are recorded, the
    executor takes them, and the answer is the run's report: closed when `wait` (an in-process
    executor without threads has always finished), else as it stands (`running`).
    `on_recorded(run_id)` is called once the run is recorded, before it executes (the scheduler
    notes which run a fire started).
    """
    if isinstance(request, EventRunRequest):
        check_event_references(services, request.event)  # an unknown customer or product: bad input
        event: Event | None = request.event
        today = now.astimezone(services.settings.tz).date()
        rules = [r for r in services.rulebook.enabled() if r.trigger.event is request.event.type]
        kind = RunKind.EVENT
    else:
        event = None
        today = request.today
        unknown = [r for r in request.rule_ids if services.rulebook.get(r) is None]
        if unknown and not any(r in rules_not_live(services.rulebook) for r in unknown):
            raise NotFound("rule", ", ".join(unknown), not_live_hint(services.store, unknown))
        rules = select_rules(services.rulebook, request.rule_ids, scheduled=True)
        kind = RunKind.SCHEDULED
    ordered = in_priority_order(rules)
    # a run of every rule (not of named ones) names the rules it could not run, so it says what it left out
    not_run = () if isinstance(request, ScheduledRunRequest) and request.rule_ids \
        else tuple(sorted(rules_not_live(services.rulebook)))
    if request.dry_run:
        run = AcceptedRun(None, kind, today, ordered, now, event, missing=not_run)
        return dry_run_report(kind, today, run_rules(services, run, WHOLE), event_key=run.event_key)
    if event is not None:
        replay = _replay(services, event)
        if replay is not None:
            return replay
    try:
        run_id = services.store.record_run(kind=kind, run_date=today, now=now,
                                           rule_ids=[r.id for r in ordered] + list(not_run),
                                           event_key=event.key if event else None,
                                           event_payload=event.canonical() if event else None,
                                           rule_versions=recorded_versions(services.rulebook, ordered))
    except AlreadyRecorded:  # the same event id arrived at the same moment: the other one is first
        assert event is not None
        replay = _replay(services, event)
        assert replay is not None
        return replay
    log.info("run %s accepted: %s rule(s) for %s", run_id, len(ordered), event.key if event else today)
    shards = plan_shards(services, run_id)
    if on_recorded is not None:
        on_recorded(run_id)
    services.executor.submit(services, run_id, shards, now=now)
    return wait_for_run(services, run_id, timeout=timeout) if wait else get_report(services, run_id)


def get_report(services: Services, run_id: int, *, replayed: bool = False) -> RunReport:
    record = services.store.run_report(run_id)
    if record is None:
        raise NotFound("run", run_id)
    return build_report(record, replayed=replayed)


def wait_for_run(services: Services, run_id: int, *, timeout: float | None = None,
                 poll: float = 0.5) -> RunReport:
    """The run's report once its last shard has closed it (TimeoutError after `timeout` s)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        report = get_report(services, run_id)
        if report.finished:
            return report
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still running after {timeout} s: shards "
                               f"{report.shards.as_dict() if report.shards else '?'}")
        time.sleep(poll)


def resume_run(services: Services, run_id: int, *, now: dt.datetime, wait: bool = True,
               timeout: float | None = None) -> RunReport:
    """Finish a run whose process or workers were lost: its unfinished shards go to the executor
    again. Messages already written stand; none is written twice."""
    if services.store.run_record(run_id) is None:
        raise NotFound("run", run_id)
    shards = services.store.unfinished_shards(run_id)
    if not shards:
        raise ValidationFailed([Problem(f"run {run_id} has no unfinished shard", field="run_id")],
                               what="resume request")
    log.info("run %s resumed: %s unfinished shard(s)", run_id, len(shards))
    services.executor.submit(services, run_id, shards, now=now)
    return wait_for_run(services, run_id, timeout=timeout) if wait else get_report(services, run_id)
