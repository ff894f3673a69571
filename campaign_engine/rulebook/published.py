"""Published rule versions -> the Rulebook a process executes (pure: texts in, rules out).

A version holds the text of the rule file it was published from and the texts of its own
templates; its rule is parsed and its templates compiled from exactly those texts, never from
the folders on this machine. Versions are immutable, so each is built once per process
(`VersionCache`).
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from ..errors import Problem
from ..rendering.environment import TemplateSet
from .loader import Rulebook, build_rulebook
from .model import Rule


@dataclass(frozen=True)
class BuiltVersion:
    rule: Rule | None
    templates: TemplateSet | None
    problems: tuple[Problem, ...]


def build_version(row: Mapping[str, Any]) -> BuiltVersion:
    """One stored version (rule_id, version, content_hash, file, source, templates) -> its rule."""
    book = build_rulebook({row["file"]: row["source"]}, row["templates"], templates_label="its published templates")
    rule = book.rules.get(row["rule_id"])
    if rule is None:
        problems = tuple(p for p in book.problems if p.rule in (None, row["rule_id"]))
        return BuiltVersion(None, None, problems or (Problem(
            f"version {row['version']} does not define rule {row['rule_id']}", file=row["file"],
            rule=row["rule_id"]),))
    return BuiltVersion(replace(rule, version=row["version"]), book.template_sets[rule.id], ())


class VersionCache:
    """Built versions by their row id and content hash (versions never change once stored; the
    hash too, so a database restored or emptied, whose ids start again, is never mistaken)."""

    def __init__(self, limit: int = 4096):
        self._built: dict[tuple[int, str], BuiltVersion] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, row: Mapping[str, Any]) -> BuiltVersion:
        key = (int(row["id"]), str(row["content_hash"]))
        with self._lock:
            found = self._built.get(key)
        if found is not None:
            return found
        built = build_version(row)
        with self._lock:
            if len(self._built) >= self._limit:
                self._built.clear()
            self._built[key] = built
        return built


def published_rulebook(generation: int, rows: Iterable[Mapping[str, Any]], cache: VersionCache) -> Rulebook:
    """The live set of a generation: each row a version with its `enabled` (the emergency stop);
    a stopped rule stays in the rulebook, disabled, so lists show it. A version that no longer
    builds (e.g. a setting it relied on changed) is a problem naming the rule, not a live rule."""
    rules: dict[str, Rule] = {}
    sets: dict[str, TemplateSet] = {}
    problems: list[Problem] = []
    stopped: dict[str, str] = {}
    for row in rows:
        built = cache.get(row)
        if built.rule is None or built.templates is None:
            problems += [replace(p, rule=p.rule or row["rule_id"]) for p in built.problems]
            continue
        rule = built.rule
        if not row.get("enabled", True):
            rule = replace(rule, enabled=False)
            stopped[rule.id] = f"disabled by {row.get('changed_by')} at {row.get('changed_at')}: {row.get('reason')}"
        rules[rule.id] = rule
        sets[rule.id] = built.templates
    return Rulebook(rules, tuple(problems), {}, sets, generation, stopped)


def text_diff(before: Mapping[str, str], after: Mapping[str, str], *, before_label: str = "live",
              after_label: str = "draft") -> str:
    """A unified diff over named texts (the rule file and each template), as reviewers read one."""
    out: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        out += difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                    fromfile=f"{before_label}/{name}" if old is not None else "/dev/null",
                                    tofile=f"{after_label}/{name}" if new is not None else "/dev/null")
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)
