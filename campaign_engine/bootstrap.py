"""Build the pipeline's dependencies once per entry point (CLI, API, scheduler, worker).

This is where a run's executor is chosen, once: the Celery workers when a broker is
configured, else this process.
"""

from __future__ import annotations

from .errors import ConfigError, Problem, StoreError
from .evaluation.engine import RuleEngine
from .facts.calendar import load_holidays
from .pipeline.ports import Executor
from .pipeline.services import Services
from .pipeline.publishing import live_rulebook
from .rulebook.loader import Rulebook
from .settings import Settings
from .store.db import has_schema, make_engine
from .store.sql_store import SqlStore


def choose_executor(settings: Settings, *, background_threads: int = 0) -> Executor:
    """Celery when a broker is configured; else in this process (in `background_threads`
    threads when the caller must answer before the run ends, as the API does)."""
    if settings.distributed:
        from .distributed.executor import CeleryExecutor

        return CeleryExecutor()
    from .pipeline.executor import InProcessExecutor

    return InProcessExecutor(background_threads=background_threads)


def open_services(settings: Settings, *, check_schema: bool = True, background_threads: int = 0) -> Services:
    """Database, the published rule set (with its templates), rules engine, holiday calendar and the
    run executor."""
    db = make_engine(settings.database_url)
    if check_schema and not has_schema(db):
        db.dispose()
        raise ConfigError([Problem("the database has no schema yet: run `campaign-engine db upgrade`",
                                   field="database_url")], what="database")
    store = SqlStore(db)
    try:
        rulebook = live_rulebook(store)
    except StoreError as exc:  # no schema yet (check_schema off: `db upgrade`), or the database is down
        rulebook = Rulebook({}, (Problem(f"the published rules could not be read: {exc}"),))
    return Services(settings=settings, store=store, rulebook=rulebook,
                    engine=RuleEngine(rulebook.rules.values()),
                    holidays=load_holidays(settings.holidays_file),
                    executor=choose_executor(settings, background_threads=background_threads))
