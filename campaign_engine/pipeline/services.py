"""Services: what the pipeline needs, built once by an entry point (campaign_engine.bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..evaluation.engine import RuleEngine
from ..facts.calendar import HolidayCalendar
from ..rulebook.loader import Rulebook
from ..settings import Settings
from .ports import Executor, RunStore


@dataclass
class Services:
    settings: Settings
    store: RunStore
    rulebook: Rulebook  # the published rule set (each rule with its templates) this process runs
    engine: RuleEngine
    holidays: HolidayCalendar
    executor: Executor

    @property
    def db(self) -> Any:
        """The database engine, for entry points' own queries (views, scheduler, tasks)."""
        return self.store.engine

    def close(self) -> None:
        """Release the executor's threads and the database connections."""
        self.executor.close()
        self.store.close()
