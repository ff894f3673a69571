"""Pure: evaluate a condition tree in Python, keeping the outcome of every node.

Same semantics as the engine (see compiler.py). Used by preview ("why did this
customer match or not") and to fold run-wide conditions (event, calendar) before
any candidate is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..facts.namespaces import engine_value, lookup
from ..rulebook.model import All, AnyOf, FieldRef, Node, Not, Predicate


@dataclass(frozen=True)
class Outcome:
    node: Node
    result: bool
    value: Any = None  # the field value a predicate saw
    children: tuple["Outcome", ...] = ()

    def describe(self) -> str:
        """A condition as the rule file writes it: `deposit.days_to_maturity between [0, 7] (value: 3)`."""
        if isinstance(self.node, Predicate):
            p = self.node
            return f"{p.field} {p.op} {_yamlish(p.operand)} (value: {_yamlish(self.value)})"
        return {All: "all", AnyOf: "any", Not: "not"}[type(self.node)]

    def lines(self, depth: int = 0) -> list[str]:
        mark = "✓" if self.result else "✗"
        out = [f"{'  ' * depth}{mark} {self.describe()}"]
        for child in self.children:
            out += child.lines(depth + 1)
        return out

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"condition": self.describe(), "result": self.result}
        if self.children:
            data["children"] = [c.as_dict() for c in self.children]
        return data


def _yamlish(value: Any) -> str:
    if isinstance(value, FieldRef):
        return f"{{ref: {value.field}}}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yamlish(v) for v in value) + "]"
    return str(value)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}


def _predicate(pred: Predicate, namespaces: Mapping[str, Any]) -> tuple[bool, Any]:
    value = engine_value(lookup(namespaces, pred.field))
    if pred.op == "exists":
        return (value is not None) == pred.operand, value
    if value is None:
        return False, value
    operand = pred.operand
    if isinstance(operand, FieldRef):
        operand = engine_value(lookup(namespaces, operand.field))
        if operand is None:
            return False, value
    try:
        if pred.op == "contains":
            return operand in value, value
        if pred.op == "in":
            return value in operand, value
        if pred.op == "not_in":
            return value not in operand, value
        if pred.op == "between":
            return operand[0] <= value <= operand[1], value
        return _OPS[pred.op](value, operand), value
    except TypeError:  # e.g. a number field compared with text through a ref
        return False, value


def explain(node: Node, namespaces: Mapping[str, Any]) -> Outcome:
    """The outcome of every node of the condition for one set of namespaces."""
    if isinstance(node, Predicate):
        result, value = _predicate(node, namespaces)
        return Outcome(node, result, value)
    if isinstance(node, Not):
        inner = explain(node.item, namespaces)
        return Outcome(node, not inner.result, children=(inner,))
    children = tuple(explain(item, namespaces) for item in node.items)
    results = [c.result for c in children]
    return Outcome(node, all(results) if isinstance(node, All) else any(results), children=children)
