"""The live state of a long-running process: its Services, swapped atomically on rule reload."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .errors import Problem
from .evaluation.engine import RuleEngine
from .pipeline.services import Services
from .rendering.environment import build_environment
from .rulebook.loader import Rulebook, load_rulebook
from .rulebook.model import Rule
from .rulebook.samples import template_problems

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    rules: tuple[str, ...]  # rule ids live after the reload
    kept: tuple[str, ...]  # rules of broken files kept at their previous good version
    problems: tuple[Problem, ...]


def merge_rulebooks(previous: Rulebook, fresh: Rulebook,
                    check: Callable[[Rule], Sequence[Problem]] = lambda rule: ()) -> tuple[Rulebook, tuple[str, ...]]:
    """The fresh rulebook, plus previous rules of files that now have problems or vanished from them,
    each only while `check` finds nothing wrong with it now: its templates are today's files, so a
    template broken since would fail every message of the previous version too (it is not live then,
    and what `check` found is among the problems)."""
    broken = {p.file for p in fresh.problems if p.file}
    kept: dict[str, Rule] = {}
    problems = list(fresh.problems)
    for rid, rule in previous.rules.items():
        if rule.file not in broken or rid in fresh.rules:
            continue
        found = check(rule)
        if found:
            problems += [p for p in found if p not in problems]
        else:
            kept[rid] = rule
    rules = {**fresh.rules, **kept}
    return Rulebook(rules, tuple(problems), fresh.files), tuple(sorted(kept))


class Runtime:
    """Holds the current Services; readers take a consistent snapshot with `.services`."""

    def __init__(self, services: Services):
        self._services = services
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Services], None]] = []

    @property
    def services(self) -> Services:
        return self._services

    def on_reload(self, listener: Callable[[Services], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> ReloadResult:
        """Reload rule files; a broken file keeps the previous good version of its rules live while
        their templates still render."""
        with self._lock:
            current = self._services
            settings = current.settings
            fresh = load_rulebook(settings.rules_dir, settings.templates_dir)
            templates = build_environment(settings.templates_dir)
            merged, kept = merge_rulebooks(current.rulebook, fresh,
                                           lambda rule: template_problems(rule, templates, channel_parts=False))
            self._services = replace(current, rulebook=merged, engine=RuleEngine(merged.rules.values()))
            log.info("rules reloaded: %s live, %s kept from broken files, %s problem(s)",
                     len(merged.rules), len(kept), len(merged.problems))
        for listener in self._listeners:
            listener(self._services)
        return ReloadResult(tuple(sorted(merged.rules)), kept, merged.problems)

    def close(self) -> None:
        self._services.close()
