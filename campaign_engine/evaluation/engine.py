"""The only module that imports durable-rules.

One host per loaded rulebook, one ruleset per rule, one long-lived session.
Candidates go in as facts in batches; actions are flushed in the caller's thread
(the host's background threads are switched off: they race with retraction and
lose matches); the batch is retracted afterwards so memory stays flat.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Iterable, Mapping, Sequence

from durable.engine import Host

from ..errors import EngineError
from ..rulebook.model import Node, Rule
from .compiler import FACT_ID, MATCH, SEEN, compile_ruleset


class _QuietHost(Host):
    """A host without the background dispatch/timer threads."""

    def _run(self) -> None:  # noqa: D401 - replaces the thread start-up
        return None


class RuleEngine:
    """Decides rule conditions on batches of flattened facts."""

    def __init__(self, rules: Iterable[Rule]):
        self._host = _QuietHost()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._names: dict[str, str] = {}
        self._matched: list[int] = []
        self._seen: list[int] = []
        definitions = {}
        for rule in rules:
            name = f"r{len(self._names)}_{rule.id}"
            self._names[rule.id] = name
            definitions[name] = self._with_actions(compile_ruleset(rule.conditions))
        if definitions:
            self._host.register_rulesets(definitions)

    def _with_actions(self, ruleset: dict[str, Any]) -> dict[str, Any]:
        ruleset[MATCH]["run"] = lambda c: self._matched.append(c.m[FACT_ID])
        ruleset[SEEN]["run"] = lambda c: self._seen.append(c.m[FACT_ID])
        return ruleset

    def evaluate(self, rule_id: str, facts: Sequence[Mapping[str, Any]]) -> list[bool]:
        """For each fact, whether the rule's condition holds (in input order)."""
        if not facts:
            return []
        name = self._names[rule_id]
        with self._lock:
            first = next(self._ids)
            batch = [dict(f, **{FACT_ID: first + i}) for i, f in enumerate(facts)]
            # Keep fact ids unique across batches: the engine refuses a fact it has seen.
            self._ids = itertools.count(first + len(batch))
            self._matched.clear()
            self._seen.clear()
            ruleset = self._host.get_ruleset(name)
            try:
                self._host.assert_facts(name, batch)
                while True:  # run every queued action here, not on a background thread
                    before = len(self._matched) + len(self._seen)
                    ruleset.dispatch()
                    if len(self._matched) + len(self._seen) == before:
                        break
                self._host.retract_facts(name, batch)
            except Exception as exc:  # the engine's own errors: a bug or a limit, not bad input
                raise EngineError(f"rule {rule_id}: the rules engine failed on a batch: {exc}") from exc
            if len(set(self._seen)) != len(batch):
                raise EngineError(f"rule {rule_id}: the engine decided {len(set(self._seen))} "
                                  f"of {len(batch)} facts")
            matched = set(self._matched)  # an `any` fires once per true branch
        return [first + i in matched for i in range(len(batch))]


def check_compiles(node: Node) -> None:
    """Register a condition in a throwaway host: raises if the engine refuses it."""
    host = _QuietHost()
    ruleset = compile_ruleset(node)
    for part in ruleset.values():
        part["run"] = lambda c: None
    host.register_rulesets({"check": ruleset})
