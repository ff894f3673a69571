"""Pure: rule + date -> what SQL must read (a superset of the matches; the engine decides).

- date-driven predicates become indexed windows: days_to_birthday -> birth_mmdd IN (...),
  days_to_lunar_birthday -> lunar_birth_mmdd IN (...), age -> a birth_date range,
  days_to_maturity and business_days_to_maturity -> a maturity_date range (the latter through
  the official calendar);
- conditions on run-wide namespaces (event, calendar) are decided once, here: a false
  one means nothing is read at all (a holiday greeting on an ordinary day);
- refs to event/calendar fields become literals;
- other simple predicates on stored columns are pushed into the WHERE clause.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..evaluation.explain import explain
from ..facts.derived import birthday_mmdd_window, business_maturity_window, lunar_birthday_mmdd_window
from ..facts.namespaces import lookup
from ..facts.official import HolidayCalendar
from ..rulebook.model import All, AnyOf, FieldRef, Node, Not, Predicate, Rule, iter_predicates
from ..vocabulary import CUSTOMER_RISK_LEVELS, EventType, SubjectType

CONSTANT_NAMESPACES = ("event", "calendar")
# Stored columns SQL can filter on, by dotted field name.
PUSHABLE_FIELDS = frozenset(
    [f"customer.{c}" for c in ("customer_id", "gender", "birth_date", "city", "branch", "tier",
                               "risk_level", "aum", "rate_sensitive", "do_not_contact", "language",
                               "manager_id", "holds", "birthday_calendar")]
    + [f"deposit.{c}" for c in ("deposit_id", "product_code", "amount", "rate", "open_date",
                                "maturity_date", "auto_renew")]
    + [f"deposit.product.{c}" for c in ("type", "risk_level")]
)
_WINDOW_FIELDS = ("customer.days_to_birthday", "customer.days_to_lunar_birthday", "customer.age",
                  "deposit.days_to_maturity", "deposit.business_days_to_maturity")
_TRUE, _FALSE = "true", "false"


@dataclass(frozen=True)
class CandidatePlan:
    subject: SubjectType
    never: bool = False  # a run-wide condition is false: read nothing
    customer_id: str | None = None  # one customer (large_transaction)
    customer_from: str | None = None  # a shard: customer ids in [customer_from, customer_to)
    customer_to: str | None = None
    birth_mmdd: frozenset[int] | None = None
    lunar_birth_mmdd: frozenset[int] | None = None
    birth_date_from: dt.date | None = None
    birth_date_to: dt.date | None = None
    maturity_from: dt.date | None = None
    maturity_to: dt.date | None = None
    where: tuple[Node, ...] = ()  # pushable predicates with literal operands
    phone_consent: bool = False  # also read the phone-marketing consent (rules that plan manager tasks)


def _is_constant(node: Node) -> bool:
    fields = [p.field for p in iter_predicates(node)]
    fields += [p.operand.field for p in iter_predicates(node) if isinstance(p.operand, FieldRef)]
    return all(f.split(".", 1)[0] in CONSTANT_NAMESPACES for f in fields)


def _push(node: Node, constants: Mapping[str, Any]) -> Node | str | None:
    """A pushable node, _TRUE/_FALSE when decided now, or None when SQL cannot help."""
    if _is_constant(node):
        return _TRUE if explain(node, constants).result else _FALSE
    if isinstance(node, Predicate):
        operand = node.operand
        if isinstance(operand, FieldRef):
            if operand.field.split(".", 1)[0] not in CONSTANT_NAMESPACES:
                return None
            operand = lookup(constants, operand.field)
            if operand is None:  # a comparison with a missing value is false
                return _FALSE
            node = replace(node, operand=operand)
        if node.field == "customer.risk_rank" and node.op != "exists":
            levels = tuple(lv for lv in CUSTOMER_RISK_LEVELS
                           if explain(replace(node, field="r"), {"r": int(lv[1])}).result)
            return Predicate("customer.risk_level", "in", levels) if levels else _FALSE
        return node if node.field in PUSHABLE_FIELDS else None
    if isinstance(node, Not):
        return None
    pushed = [_push(item, constants) for item in node.items]
    if isinstance(node, All):
        if _FALSE in pushed:
            return _FALSE
        kept = [p for p in pushed if p not in (_TRUE, None)]
        return None if not kept else kept[0] if len(kept) == 1 else All(tuple(kept))  # type: ignore[arg-type]
    if None in pushed or _TRUE in pushed:
        return None
    kept = [p for p in pushed if p != _FALSE]
    return _FALSE if not kept else kept[0] if len(kept) == 1 else AnyOf(tuple(kept))  # type: ignore[arg-type]


def _bounds(pred: Predicate) -> tuple[int | None, int | None] | None:
    """Integer bounds [lo, hi] a window predicate admits; None if it does not narrow."""
    value = pred.operand
    if isinstance(value, FieldRef):
        return None
    match pred.op:
        case "eq":
            return value, value
        case "gt":
            return value + 1, None
        case "gte":
            return value, None
        case "lt":
            return None, value - 1
        case "lte":
            return None, value
        case "between":
            return value[0], value[1]
        case "in":
            return min(value), max(value)
    return None


def _minus_years(day: dt.date, years: int) -> dt.date:
    year = day.year - years
    if day.month == 2 and day.day == 29 and not _calendar.isleap(year):
        return dt.date(year, 2, 28)
    return day.replace(year=year)


def _conjuncts(node: Node) -> list[Node]:
    return [c for item in node.items for c in _conjuncts(item)] if isinstance(node, All) else [node]


def _intersect(a: tuple[dt.date | None, dt.date | None],
               b: tuple[dt.date | None, dt.date | None]) -> tuple[dt.date | None, dt.date | None]:
    lo = a[0] if b[0] is None else b[0] if a[0] is None else max(a[0], b[0])
    hi = a[1] if b[1] is None else b[1] if a[1] is None else min(a[1], b[1])
    return lo, hi


def plan_candidates(rule: Rule, today: dt.date, constants: Mapping[str, Any],
                    holidays: HolidayCalendar | None = None) -> CandidatePlan:
    """What to read for `rule` on `today`; `constants` holds the event and calendar namespaces.

    With the official calendar, business_days_to_maturity narrows the maturity dates read too;
    CalendarNotAnnounced when that window needs a day it does not know (the caller reports it).
    """
    plan = CandidatePlan(subject=rule.trigger.subject)
    if rule.trigger.event is EventType.LARGE_TRANSACTION:
        plan = replace(plan, customer_id=lookup(constants, "event.customer_id"))
    windows: dict[str, tuple[int | None, int | None]] = {}
    where: list[Node] = []
    for conjunct in _conjuncts(rule.conditions):
        if isinstance(conjunct, Predicate) and conjunct.field in _WINDOW_FIELDS:
            bounds = _bounds(conjunct)
            if bounds is not None:
                lo, hi = windows.get(conjunct.field, (None, None))
                new_lo, new_hi = bounds
                windows[conjunct.field] = (
                    new_lo if lo is None else lo if new_lo is None else max(lo, new_lo),
                    new_hi if hi is None else hi if new_hi is None else min(hi, new_hi))
            continue
        pushed = _push(conjunct, constants)
        if pushed == _FALSE:
            return replace(plan, never=True)
        if pushed not in (_TRUE, None):
            where.append(pushed)  # type: ignore[arg-type]
    if "customer.days_to_birthday" in windows:
        lo, hi = windows["customer.days_to_birthday"]
        mmdd = birthday_mmdd_window(today, lo or 0, 365 if hi is None else hi)
        if mmdd is not None and not mmdd:
            return replace(plan, never=True)
        plan = replace(plan, birth_mmdd=mmdd)
    if "customer.days_to_lunar_birthday" in windows:
        lo, hi = windows["customer.days_to_lunar_birthday"]
        lunar_mmdd = lunar_birthday_mmdd_window(today, lo or 0, 384 if hi is None else hi)
        if lunar_mmdd is not None and not lunar_mmdd:
            return replace(plan, never=True)
        plan = replace(plan, lunar_birth_mmdd=lunar_mmdd)
    if "customer.age" in windows:
        lo, hi = windows["customer.age"]
        # One day of slack on each side keeps 29 February births inside; the engine decides.
        if lo is not None:
            plan = replace(plan, birth_date_to=_minus_years(today, lo) + dt.timedelta(days=1))
        if hi is not None:
            plan = replace(plan, birth_date_from=_minus_years(today, hi + 1) - dt.timedelta(days=1))
    maturity: tuple[dt.date | None, dt.date | None] = (None, None)
    if "deposit.days_to_maturity" in windows:
        lo, hi = windows["deposit.days_to_maturity"]
        if lo is not None and hi is not None and lo > hi:
            return replace(plan, never=True)
        maturity = (None if lo is None else today + dt.timedelta(days=lo),
                    None if hi is None else today + dt.timedelta(days=hi))
    if "deposit.business_days_to_maturity" in windows and holidays is not None:
        lo, hi = windows["deposit.business_days_to_maturity"]
        if lo is not None and hi is not None and lo > hi:
            return replace(plan, never=True)
        maturity = _intersect(maturity, business_maturity_window(today, lo, hi, holidays))
    if maturity[0] is not None and maturity[1] is not None and maturity[0] > maturity[1]:
        return replace(plan, never=True)
    plan = replace(plan, maturity_from=maturity[0], maturity_to=maturity[1])
    return replace(plan, where=tuple(where))
