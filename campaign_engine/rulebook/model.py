"""Validated, immutable rule objects."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator, Mapping, Union

from ..vocabulary import Category, Channel, ConversionType, EventType, OnceMode, SubjectType

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
    # where the rule file states it (its key path): not part of what the predicate means
    path: tuple[Any, ...] = dataclasses.field(default=(), compare=False)


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
    workdays_only: bool = False  # a schedule that runs on official working days only (调休 included)


def default_once(trigger: Trigger) -> OnceMode:
    """Today's idempotency when a rule says no `once`: per event for event rules, per deposit maturity
    for deposit-subject schedules, per run date for customer-subject schedules."""
    if trigger.event is not None:
        return OnceMode.PER_EVENT
    return OnceMode.PER_OCCURRENCE if trigger.subject is SubjectType.DEPOSIT else OnceMode.PER_RUN_DATE


@dataclass(frozen=True)
class Holdout:
    """`holdout: {percent, salt}`: that share of the rule's customers is held out (effect.assignment);
    salted with `salt`, else the rule id."""

    percent: float
    salt: str | None = None


@dataclass(frozen=True)
class Goal:
    """`goal:` what counts as a conversion of a contacted customer, and for how long after the message."""

    type: ConversionType
    within_days: int = 14
    product_type: str | None = None
    product_code: str | None = None
    min_amount: Decimal | None = None


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
    # 1-based line of each key path the rule file states (top-level keys, each predicate's path)
    lines: Mapping[tuple[Any, ...], int] = dataclasses.field(default_factory=dict, compare=False)
    holdout: Holdout | None = None  # measuring effect (issue #11)
    goal: Goal | None = None
    # what the rule's YAML mapping says (sha256 of it as canonical JSON: not its comments or layout)
    definition_hash: str = dataclasses.field(default="", compare=False)
    # its version's identity: the definition and its templates' texts (loader.content_hash); "" when
    # loaded without templates
    content_hash: str = dataclasses.field(default="", compare=False)
    version: int | None = dataclasses.field(default=None, compare=False)  # the published version number
    # `active: {from, until}`: inclusive local dates (settings.tz) outside which the rule does not fire
    active_from: dt.date | None = None
    active_until: dt.date | None = None
    # `once:` what its idempotency key names; None: the trigger's default (default_once)
    once: OnceMode | None = None
    every_days: int | None = None  # `every: Nd` instead of once: at most once per subject in any N days
    campaign: str | None = None  # `campaign:` the id `once: per_campaign` counts under (default: the rule id)

    @property
    def is_marketing(self) -> bool:
        return self.category is Category.MARKETING

    @property
    def once_mode(self) -> OnceMode:
        """What the rule's idempotency key names: its `once`, else its trigger's default."""
        return self.once or default_once(self.trigger)

    @property
    def campaign_id(self) -> str:
        return self.campaign or self.id

    def active_on(self, day: dt.date) -> bool:
        """Whether a run date is inside the rule's campaign window (both bounds inclusive)."""
        return ((self.active_from is None or self.active_from <= day)
                and (self.active_until is None or day <= self.active_until))

    @property
    def window(self) -> str | None:
        """The campaign window as text (`2026-12-01..2026-12-31`, `..2026-12-31`), None without one."""
        if self.active_from is None and self.active_until is None:
            return None
        return f"{self.active_from or ''}..{self.active_until or ''}"

    def line_of(self, path: tuple[Any, ...]) -> int:
        """The line of a key path (`("product",)`, a predicate's path), else the rule's first line."""
        return self.lines.get(path, self.line)


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
