"""The orchestrator: rule versions -> candidates (SQL) -> conditions (engine) -> policy -> rendering -> outbox.

Owns how a run executes and the one shape of its result:

    lifecycle   start_run / wait_for_run / resume_run / get_report: the only way to run a run
    report      RuleStats, RunReport (built from the run record in one place), summarize_shards
    shards      recorded runs: planning shards, executing one (again after a lost worker), closing
    batch       one rule over one batch: rows -> facts -> verdicts -> decisions -> outbox rows
    executor    the in-process executor (the Celery one is campaign_engine.distributed.executor)
    preview     what a rule would do, writing nothing
    validate    every problem of the rule folder, templates rendered against a sample context
    ports       what it needs from the store and from an executor (protocols it states)
    services    the dependencies an entry point builds once (campaign_engine.bootstrap)

May import the pure core (rulebook, facts, selection, evaluation, policy, rendering), events,
settings, errors and vocabulary. Never SQLAlchemy (the store is reached through ports.RunStore),
Flask, Celery or APScheduler, and never an entry point. Nothing here reads the clock: callers
pass `today` and `now`.
"""

from .lifecycle import (EventConflict, EventRunRequest, RunRequest, ScheduledRunRequest, get_report,
                        resume_run, start_run, wait_for_run)
from .preview import preview
from .report import RuleStats, RunReport
from .services import Services
from .validate import validate_rules

__all__ = ["EventConflict", "EventRunRequest", "RunRequest", "ScheduledRunRequest", "RuleStats", "RunReport",
           "Services", "get_report", "preview", "resume_run", "start_run", "validate_rules", "wait_for_run"]
