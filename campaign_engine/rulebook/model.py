"""Validated, immutable rule objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Union

from ..vocabulary import Category, Channel, EventType, SubjectType

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "contains", "exists")


@dataclass(frozen=True)
class FieldRef:
    """An operand that is another field's value (`{ref: customer.aum}`)."""

    field: str


@dataclass(frozen=True)
class Predicate:
    """`field op operand`. Every operator is false on a missing field, except `exists: false`."""

    field: str
    op: str
    operand: Any  # a JSON value, a tuple for in/not_in/between, a bool for exists, or FieldRef


@dataclass(frozen=True)
class All:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


Node = Union[Predicate, All, AnyOf, Not]


@dataclass(frozen=True)
class Trigger:
    subject: SubjectType
    schedule: str | None = None
    event: EventType | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    enabled: bool
    category: Category
    priority: int
    trigger: Trigger
    conditions: Node
    channels: tuple[Channel, ...]
    template: str
    product: str | None  # product promoted by a scheduled rule: suitability applies
    file: str
    line: int

    @property
    def is_marketing(self) -> bool:
        return self.category is Category.MARKETING


def iter_predicates(node: Node) -> Iterator[Predicate]:
    """Every predicate of a condition tree, depth first."""
    if isinstance(node, Predicate):
        yield node
    elif isinstance(node, Not):
        yield from iter_predicates(node.item)
    else:
        for item in node.items:
            yield from iter_predicates(item)


def referenced_fields(node: Node) -> tuple[str, ...]:
    """Fields a condition reads, operands' refs included, in first-seen order."""
    seen: dict[str, None] = {}
    for pred in iter_predicates(node):
        seen[pred.field] = None
        if isinstance(pred.operand, FieldRef):
            seen[pred.operand.field] = None
    return tuple(seen)
