"""The only module that imports durable-rules.

One host per loaded rulebook, one ruleset per rule, one long-lived session.
Candidates go in as facts in batches; actions are flushed in the caller's thread
(the host's background threads are switched off: they race with retraction and
lose matches); the batch is retracted afterwards so memory stays flat.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from typing import Any, Iterable, Mapping, Sequence

import durable_rules_engine as engine
from durable.engine import Host, MessageNotHandledException, MessageObservedException

from ..errors import EngineError
from ..rulebook.model import Node, Rule
from .compiler import FACT_ID, MATCH, compile_ruleset

log = logging.getLogger(__name__)


class _QuietHost(Host):
    """A host without the background dispatch/timer threads."""

    def _run(self) -> None:  # noqa: D401 - replaces the thread start-up
        return None


def _unreachable(_closure: Any) -> None:
    raise AssertionError("actions are drained by _assert_and_drain, not by durable's dispatcher")


class RuleEngine:
    """Decides rule conditions on batches of flattened facts."""

    def __init__(self, rules: Iterable[Rule]):
        self._host = _QuietHost()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._names: dict[str, str] = {}
        self._conditions: dict[str, Node] = {}
        self._fresh = itertools.count(1)
        definitions = {}
        for rule in rules:
            name = f"r{len(self._names)}_{rule.id}"
            self._names[rule.id] = name
            self._conditions[rule.id] = rule.conditions
            definitions[name] = self._with_actions(compile_ruleset(rule.conditions))
        if definitions:
            self._host.register_rulesets(definitions)

    def _replace_ruleset(self, rule_id: str) -> None:
        """A fresh ruleset (new session) for a rule whose session a failed batch left facts in."""
        name = f"{self._names[rule_id]}_fresh{next(self._fresh)}"
        self._host.register_rulesets({name: self._with_actions(compile_ruleset(self._conditions[rule_id]))})
        self._names[rule_id] = name

    @staticmethod
    def _with_actions(ruleset: dict[str, Any]) -> dict[str, Any]:
        # Never called: batches are drained by _assert_and_drain. durable needs a callable.
        for part in ruleset.values():
            part["run"] = _unreachable
        return ruleset

    def evaluate(self, rule_id: str, facts: Sequence[Mapping[str, Any]]) -> list[bool]:
        """For each fact, whether the rule's condition holds (in input order)."""
        if not facts:
            return []
        with self._lock:
            for attempt in (1, 2):
                first = next(self._ids)
                batch = [dict(f, **{FACT_ID: first + i}) for i, f in enumerate(facts)]
                # Keep fact ids unique across batches: the engine refuses a fact it has seen.
                self._ids = itertools.count(first + len(batch))
                try:
                    matched = self._decide(rule_id, batch)
                    break
                except EngineError as exc:
                    # The session may hold part of the batch: the next batch would be decided
                    # against it. Start a fresh one, and try once more with other fact ids (at
                    # 10M customers the engine refused one batch of all-new ids as "asserted
                    # twice" after some 440,000 facts in one process; why, inside durable-rules,
                    # is not established).
                    self._replace_ruleset(rule_id)
                    if attempt == 2:
                        raise
                    log.warning("%s; trying the batch again in a fresh session", exc)
        return [first + i in matched for i in range(len(batch))]

    def _decide(self, rule_id: str, batch: list[dict[str, Any]]) -> set[int]:
        handle = self._host.get_ruleset(self._names[rule_id])._handle
        payload = json.dumps(batch, ensure_ascii=False)
        try:
            matched, seen = _assert_and_drain(handle, payload)
            _check(engine.retract_facts(handle, payload))
        except Exception as exc:  # the engine's own errors: a bug or a limit, not bad input
            raise EngineError(f"rule {rule_id}: the rules engine failed on a batch: {exc}") from exc
        if len(seen) != len(batch):
            raise EngineError(f"rule {rule_id}: the engine decided {len(seen)} of {len(batch)} facts")
        return matched


def _check(result: Any) -> Any:
    """The engine's status codes (see durable.engine.Ruleset._handle_result) as exceptions."""
    if result[0] == 1:
        raise MessageNotHandledException("a fact matched no rule")
    if result[0] == 2:
        raise MessageObservedException("a fact was asserted twice")
    return result[1]


def _assert_and_drain(handle: int, payload: str) -> tuple[set[int], set[int]]:
    """Assert a batch and run its queued actions here, without durable's per-action Python closure.

    Actions only record which facts fired `match` and `seen` (an `any` fires once per
    true branch; sets keep one entry per fact). Each action hands back the session state
    unchanged and takes the next queued action, as durable's own dispatcher does.
    """
    matched: set[int] = set()
    seen: set[int] = set()
    state_handle = _check(engine.assert_facts(handle, payload))
    result = engine.start_action_for_state(handle, state_handle)
    while result:
        state_json, messages = result[0], result[1]
        state_handle = result[2] if len(result) > 2 else state_handle
        while messages:
            for action, message in json.loads(messages).items():
                fact = message.get("m", message) if isinstance(message, dict) else message
                (matched if action == MATCH else seen).add(fact[FACT_ID])
            engine.update_state(handle, state_json)
            messages = engine.complete_and_start_action(handle, state_handle)
        result = engine.start_action(handle)  # anything queued on another path
    return matched, seen


def check_compiles(node: Node) -> None:
    """Register a condition in a throwaway host: raises if the engine refuses it."""
    host = _QuietHost()
    ruleset = compile_ruleset(node)
    for part in ruleset.values():
        part["run"] = lambda c: None
    host.register_rulesets({"check": ruleset})
