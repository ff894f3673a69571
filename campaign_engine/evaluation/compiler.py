"""Pure: a condition tree -> a durable-rules ruleset definition (plain data, comparable in tests).

Semantics kept identical to explain.py:
- every operator on a missing (null) field is false, except `exists: false`;
- `not` is plain boolean negation of its child.

Facts carry every referenced field, null when missing (see facts.flatten_facts),
because the engine's own test for an absent key (`$nex`) hangs the process
(measured with durable-rules 2.0.28). So "missing" is `{key: null}` here.
Negation is pushed down to the leaves (negation normal form) with those rules.
"""

from __future__ import annotations

from typing import Any

from ..rulebook.fields import is_list_field
from ..rulebook.model import All, FieldRef, Node, Not, Predicate

MATCH = "match"
SEEN = "seen"
FACT_ID = "_fid"

_COMPARE = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "ne": "$neq"}
_INVERSE = {"eq": "ne", "ne": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


def engine_key(field: str) -> str:
    return field.replace(".", "__")


def _operand(value: Any) -> Any:
    return {"$m": engine_key(value.field)} if isinstance(value, FieldRef) else value


def _cmp(op: str, key: str, value: Any) -> dict[str, Any]:
    if op == "eq":
        return {key: _operand(value)}
    return {_COMPARE[op]: {key: _operand(value)}}


def _missing(key: str) -> dict[str, Any]:
    return {key: None}


def _present(key: str, is_list: bool = False) -> dict[str, Any]:
    if is_list:  # `$neq null` never holds for a list value; an empty list is already null
        return {"$iany": {key: {"$neq": {"$i": None}}}}
    return {"$neq": {key: None}}


def _any(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0] if len(items) == 1 else {"$or": items}


def _all(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0] if len(items) == 1 else {"$and": items}


def _leaf(pred: Predicate, negated: bool) -> dict[str, Any]:
    key, op, value = engine_key(pred.field), pred.op, pred.operand
    if op == "exists":
        return _present(key, is_list_field(pred.field)) if value != negated else _missing(key)
    missing = [_missing(key)]
    if isinstance(value, FieldRef):
        missing.append(_missing(engine_key(value.field)))
        if op in ("eq", "ne") and not negated:
            # The engine holds null == null and "x" != null true: both sides must be present.
            other = engine_key(value.field)
            return _all([_cmp(op, key, value), _present(key), _present(other)])
    if op == "contains":  # list fields only; an empty list is null in the fact
        item = {"$i": _operand(value)}
        if not negated:
            return {"$iany": {key: item}}
        return _any([{"$iall": {key: {"$neq": item}}}] + missing)
    if op in _INVERSE:
        return _any([_cmp(_INVERSE[op], key, value)] + missing) if negated else _cmp(op, key, value)
    if op == "between":
        low, high = value
        if negated:
            return _any([_cmp("lt", key, low), _cmp("gt", key, high)] + missing)
        return _all([_cmp("gte", key, low), _cmp("lte", key, high)])
    if op == "in":
        if negated:
            return _any([_all([_cmp("ne", key, v) for v in value])] + missing)
        return _any([_cmp("eq", key, v) for v in value])
    if op == "not_in":
        if negated:
            return _any([_cmp("eq", key, v) for v in value] + missing)
        return _all([_cmp("ne", key, v) for v in value])
    raise ValueError(f"unknown operator {op!r}")


def compile_node(node: Node, negated: bool = False) -> dict[str, Any]:
    """One engine expression for a condition tree (negation pushed to the leaves)."""
    if isinstance(node, Predicate):
        return _leaf(node, negated)
    if isinstance(node, Not):
        return compile_node(node.item, not negated)
    parts = [compile_node(item, negated) for item in node.items]
    conjunctive = isinstance(node, All) != negated
    return _all(parts) if conjunctive else _any(parts)


def compile_ruleset(node: Node) -> dict[str, Any]:
    """The ruleset for one rule: `match` fires on the condition, `seen` on every fact.

    `seen` makes every fact handled (the engine raises for an unhandled fact, failing
    the whole batch) and lets the caller check that every candidate was decided.
    """
    return {
        MATCH: {"all": [{"m": compile_node(node)}]},
        SEEN: {"all": [{"m": {"$ex": {FACT_ID: 1}}}]},
    }


