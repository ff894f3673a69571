"""The live state of a long-running process: its Services, following the published rule set.

`refresh` compares the generation its rules were built from with the database's (one indexed
single-row read) and, when a publish, a disable or an enable moved it, builds the new live set and
swaps the Services atomically. The API refreshes before every request, the scheduler every second
and before it fires a rule: every process runs the same versions within about a second of a change,
and a reader holding `.services` keeps one consistent snapshot for as long as it holds it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable

from .errors import StoreError
from .evaluation.engine import RuleEngine
from .pipeline.publishing import live_rulebook
from .pipeline.services import Services

log = logging.getLogger(__name__)


class Runtime:
    """Holds the current Services; readers take a consistent snapshot with `.services`."""

    def __init__(self, services: Services):
        self._services = services
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Services], None]] = []

    @property
    def services(self) -> Services:
        return self._services

    def on_change(self, listener: Callable[[Services], None]) -> None:
        """Call `listener(services)` after each change of the live rule set (the scheduler reschedules)."""
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """Follow the published rule set; True when it changed. A database that cannot be read keeps
        the current set (logged): the request or fire that needs the database fails on its own."""
        current = self._services
        try:
            generation = current.store.rule_generation()
        except StoreError as exc:
            log.warning("cannot read the rule generation: %s", exc)
            return False
        if generation == current.rulebook.generation:
            return False
        with self._lock:
            current = self._services
            if generation == current.rulebook.generation:
                return False
            try:
                book = live_rulebook(current.store)
            except StoreError as exc:  # the next refresh tries again; until then the current set runs
                log.warning("cannot read the published rules of generation %s: %s", generation, exc)
                return False
            self._services = replace(current, rulebook=book, engine=RuleEngine(book.rules.values()))
        log.info("published rules: generation %s, %s rule(s) live (%s enabled)", book.generation,
                 len(book.rules), len(book.enabled()))
        for listener in self._listeners:
            listener(self._services)
        return True

    def close(self) -> None:
        self._services.close()
