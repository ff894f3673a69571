"""Condition YAML -> a typed condition tree; every problem names its path in the rule."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from ..vocabulary import TIER_ALIASES
from .fields import ORDERED_TYPES, TIERS, FieldSpec, FieldType
from .model import OPERATORS, All, AnyOf, FieldRef, Node, Not, Predicate
from .suggestions import did_you_mean

Path = tuple[Any, ...]
_REF_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "contains"}
_COMBINATORS = ("all", "any", "not")


@dataclass
class ConditionProblem:
    path: Path
    reason: str


@dataclass
class _Parser:
    scope: Mapping[str, FieldSpec]
    problems: list[ConditionProblem] = field(default_factory=list)

    def fail(self, path: Path, reason: str) -> None:
        self.problems.append(ConditionProblem(path, reason))

    def node(self, raw: Any, path: Path) -> Node | None:
        if not isinstance(raw, Mapping) or not raw:
            self.fail(path, "a condition is a mapping: all/any/not, or field: predicate")
            return None
        parts: list[Node] = []
        for key, value in raw.items():
            sub = path + (key,)
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    self.fail(sub, f"'{key}' takes a non-empty list of conditions")
                    continue
                items = [self.node(item, sub + (i,)) for i, item in enumerate(value)]
                if all(item is not None for item in items):
                    done = tuple(i for i in items if i is not None)
                    parts.append(All(done) if key == "all" else AnyOf(done))
            elif key == "not":
                inner = self.node(value, sub)
                if inner is not None:
                    parts.append(Not(inner))
            else:
                parts.extend(self.predicates(str(key), value, sub))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def spec(self, name: str, path: Path) -> FieldSpec | None:
        spec = self.scope.get(name)
        if spec is None:
            # a typo of a field in scope gets its spelling; else why the namespace lacks it
            hint = did_you_mean(name, self.scope) or _namespace_hint(name.split(".", 1)[0])
            self.fail(path, f"unknown field '{name}'{hint}")
        return spec

    def predicates(self, name: str, raw: Any, path: Path) -> list[Predicate]:
        spec = self.spec(name, path)
        if spec is None:
            return []
        explicit = isinstance(raw, Mapping) and set(raw) != {"ref"}
        ops = dict(raw) if explicit else {"eq": raw}
        out = []
        for op, operand in ops.items():
            sub = path + (op,) if explicit else path
            if op not in OPERATORS:
                hint = did_you_mean(str(op), OPERATORS) or f" (known: {', '.join(OPERATORS)})"
                self.fail(sub, f"unknown operator '{op}'{hint}")
                continue
            pred = self.predicate(name, spec, str(op), operand, sub)
            if pred is not None:
                out.append(pred)
        return out

    def predicate(self, name: str, spec: FieldSpec, op: str, operand: Any,
                  path: Path) -> Predicate | None:
        kind = spec.type
        if op == "exists":
            if not isinstance(operand, bool):
                self.fail(path, "exists takes true or false")
                return None
            return Predicate(name, op, operand, path)
        if isinstance(operand, Mapping):
            return self.ref_predicate(name, spec, op, operand, path)
        if kind is FieldType.LIST and op != "contains":
            self.fail(path, f"'{name}' is a list: use contains or exists")
            return None
        if op in ("gt", "gte", "lt", "lte", "between") and kind not in ORDERED_TYPES:
            self.fail(path, f"'{op}' needs a number or date field; '{name}' is {kind.value}")
            return None
        if op == "contains":
            if kind is not FieldType.LIST:
                self.fail(path, f"contains needs a list field such as customer.holds; '{name}' is "
                                f"{kind.value} (use eq or in)")
                return None
            value = self.value(FieldSpec(FieldType.STR, ""), operand, path)
            return None if value is None else Predicate(name, op, value, path)
        if op in ("in", "not_in", "between"):
            if not isinstance(operand, list) or not operand:
                self.fail(path, f"'{op}' takes a non-empty list")
                return None
            if op == "between" and len(operand) != 2:
                self.fail(path, "between takes [low, high]")
                return None
            values = [self.value(spec, item, path + (i,)) for i, item in enumerate(operand)]
            if any(v is None for v in values):
                return None
            if op == "between" and values[0] > values[1]:
                self.fail(path, f"between: low {values[0]} is above high {values[1]}")
                return None
            return Predicate(name, op, tuple(values), path)
        value = self.value(spec, operand, path)
        return None if value is None else Predicate(name, op, value, path)

    def ref_predicate(self, name: str, spec: FieldSpec, op: str, operand: Mapping[str, Any],
                      path: Path) -> Predicate | None:
        if set(operand) != {"ref"} or not isinstance(operand["ref"], str):
            self.fail(path, "an operand mapping must be {ref: namespace.field}")
            return None
        if op not in _REF_OPS:
            self.fail(path, f"'{op}' cannot take a ref operand")
            return None
        other = operand["ref"]
        other_spec = self.spec(other, path + ("ref",))
        if other_spec is None:
            return None
        if op == "contains":
            ok = spec.type is FieldType.LIST and other_spec.type in (FieldType.STR, FieldType.ENUM)
        else:
            ok = _family(spec.type) == _family(other_spec.type) and spec.type is not FieldType.LIST
            if op not in ("eq", "ne") and spec.type not in ORDERED_TYPES:
                ok = False
        if not ok:
            self.fail(path, f"cannot compare {name} ({spec.type.value}) {op} {other} "
                            f"({other_spec.type.value})")
            return None
        return Predicate(name, op, FieldRef(other), path)

    def value(self, spec: FieldSpec, raw: Any, path: Path) -> Any:
        """A literal operand checked against the field type, as the engine will see it."""
        kind = spec.type
        if raw is None:
            self.fail(path, "null is not a value to compare with; use exists: false")
            return None
        if kind is FieldType.BOOL:
            if isinstance(raw, bool):
                return raw
            self.fail(path, f"expected true or false, got {raw!r}")
        elif kind in (FieldType.NUMBER, FieldType.INT):
            if isinstance(raw, (int, float, Decimal)) and not isinstance(raw, bool):
                if kind is FieldType.INT and float(raw) != int(raw):
                    self.fail(path, f"expected a whole number, got {raw!r}")
                    return None
                return int(raw) if kind is FieldType.INT else float(raw)
            self.fail(path, f"expected a number, got {raw!r}")
        elif kind is FieldType.DATE:
            if isinstance(raw, dt.datetime):
                raw = raw.date()
            if isinstance(raw, dt.date):
                return raw.isoformat()
            try:
                return dt.date.fromisoformat(str(raw)).isoformat()
            except ValueError:
                self.fail(path, f"expected a date YYYY-MM-DD, got {raw!r}")
        elif kind is FieldType.DATETIME:
            try:
                value = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(str(raw))
                return value.isoformat()
            except ValueError:
                self.fail(path, f"expected a date-time YYYY-MM-DDTHH:MM, got {raw!r}")
        elif kind is FieldType.ENUM:
            value = TIER_ALIASES.get(str(raw), raw) if spec.choices == TIERS else raw
            if isinstance(value, str) and value in (spec.choices or ()):
                return str(value)  # plain text, also for a Tier alias
            self.fail(path, f"{raw!r} is not one of {', '.join(spec.choices or ())}"
                            f"{did_you_mean(str(raw), spec.choices or ())}")
        else:
            if isinstance(raw, str):
                return raw
            self.fail(path, f"expected text, got {raw!r}: YAML read an unquoted number; quote the value "
                            "exactly as written (e.g. '021')")
        return None


def _namespace_hint(namespace: str) -> str:
    if namespace == "deposit":
        return " (deposit fields need trigger subject: deposit)"
    if namespace == "event":
        return " (event fields need an event trigger, and this event has no such field)"
    if namespace not in ("customer", "calendar"):
        return " (namespaces: customer, deposit, event, calendar)"
    return ""


def _family(kind: FieldType) -> str:
    if kind in (FieldType.NUMBER, FieldType.INT):
        return "number"
    if kind in (FieldType.STR, FieldType.ENUM):
        return "text"
    return kind.value


def parse_conditions(raw: Any, scope: Mapping[str, FieldSpec],
                     path: Path = ("conditions",)) -> tuple[Node | None, list[ConditionProblem]]:
    """Parse a condition tree; returns (node, problems). The node is None when problems exist."""
    parser = _Parser(scope)
    node = parser.node(raw, path)
    return (None if parser.problems else node), parser.problems
