"""The field catalogue: every field a condition or template may use, with its type.

A field outside the catalogue is a validation error, never a silent false.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ..facts.lunar import FESTIVALS, TERM_NAMES
from ..vocabulary import (CUSTOMER_RISK_LEVELS, HOLIDAY_NAMES, PRODUCT_RISK_LEVELS, EventType, SubjectType, Tier,
                          risk_rank)


class FieldType(StrEnum):
    STR = "text"
    ENUM = "choice"
    NUMBER = "number"
    INT = "integer"
    BOOL = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    LIST = "list"


ORDERED_TYPES = frozenset({FieldType.NUMBER, FieldType.INT, FieldType.DATE, FieldType.DATETIME})


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    sample: Any
    choices: tuple[str, ...] | None = None
    doc: str = ""


S, E, N, I, B, D, T, L = (FieldType.STR, FieldType.ENUM, FieldType.NUMBER, FieldType.INT,
                          FieldType.BOOL, FieldType.DATE, FieldType.DATETIME, FieldType.LIST)
TIERS = tuple(t.value for t in Tier)
BIRTHDAY_CALENDARS = ("solar", "lunar")

CUSTOMER_FIELDS: dict[str, FieldSpec] = {
    "customer_id": FieldSpec(S, "C00000001"),
    "name": FieldSpec(S, "张伟"),
    "gender": FieldSpec(E, "M", ("M", "F")),
    "birth_date": FieldSpec(D, dt.date(1960, 3, 15)),
    "mobile": FieldSpec(S, "13812345678"),
    "email": FieldSpec(S, "zhang.wei@example.com"),
    "city": FieldSpec(S, "上海"),
    "branch": FieldSpec(S, "上海分行浦东支行"),
    "tier": FieldSpec(E, "gold", TIERS),
    "risk_level": FieldSpec(E, "C3", CUSTOMER_RISK_LEVELS),
    "aum": FieldSpec(N, Decimal("560000.00")),
    "rate_sensitive": FieldSpec(B, True),
    "sms_consent": FieldSpec(B, True, doc="current SMS marketing consent"),
    "email_consent": FieldSpec(B, True, doc="current email marketing consent"),
    "do_not_contact": FieldSpec(B, False),
    "language": FieldSpec(S, "zh"),
    "manager_id": FieldSpec(S, "RM0001"),
    "age": FieldSpec(I, 66, doc="completed years on the run date"),
    "days_to_birthday": FieldSpec(I, 0, doc="0 on the birthday; 29 Feb birthdays fall on 28 Feb in common years"),
    "birthday_calendar": FieldSpec(E, "solar", BIRTHDAY_CALENDARS,
                                   doc="which birthday the customer celebrates: solar (公历) or lunar (农历)"),
    "days_to_lunar_birthday": FieldSpec(I, 0, doc="0 on the lunar birthday (农历生日); a leap-month birth "
                                                  "falls in the ordinary month, a 30th on the 29th of a short month"),
    "risk_rank": FieldSpec(I, 3, doc="1..5 from risk_level"),
    "holds": FieldSpec(L, ["TD1Y", "time_deposit"], doc="product codes and types held (holdings and deposits)"),
}

def _product_fields(*, code_field: str, code: str, name: str, type_: str, risk_level: str, rate: str,
                    min_amount: str) -> dict[str, FieldSpec]:
    """A product's fields, typed once for a stored product and a launched one (samples differ)."""
    return {
        code_field: FieldSpec(S, code),
        "name": FieldSpec(S, name),
        "type": FieldSpec(S, type_),
        "risk_level": FieldSpec(E, risk_level, PRODUCT_RISK_LEVELS),
        "risk_rank": FieldSpec(I, risk_rank(risk_level)),
        "rate": FieldSpec(N, Decimal(rate)),
        "min_amount": FieldSpec(N, Decimal(min_amount)),
    }


PRODUCT_FIELDS: dict[str, FieldSpec] = {
    **_product_fields(code_field="product_code", code="TD1Y", name="1年期定期存款", type_="time_deposit",
                      risk_level="R1", rate="1.45", min_amount="50"),
    "launch_date": FieldSpec(D, dt.date(2026, 1, 1)),
}

DEPOSIT_FIELDS: dict[str, FieldSpec] = {
    "deposit_id": FieldSpec(S, "D00000001"),
    "customer_id": FieldSpec(S, "C00000001"),
    "product_code": FieldSpec(S, "TD1Y"),
    "account_no": FieldSpec(S, "6222020012345678"),
    "amount": FieldSpec(N, Decimal("200000.00")),
    "rate": FieldSpec(N, Decimal("1.45")),
    "open_date": FieldSpec(D, dt.date(2025, 3, 17)),
    "maturity_date": FieldSpec(D, dt.date(2026, 3, 17)),
    "auto_renew": FieldSpec(B, False),
    "days_to_maturity": FieldSpec(I, 7, doc="0 on the maturity date, negative once matured"),
    "payout_date": FieldSpec(D, dt.date(2026, 3, 17), doc="the maturity date rolled to the next official "
                                                          "working day; null while that year is not announced"),
    "business_days_to_maturity": FieldSpec(I, 5, doc="official working days until the payout date: 0 on it, "
                                                     "1 on the working day before; null while not announced"),
    **{f"product.{name}": spec for name, spec in PRODUCT_FIELDS.items()},
}

CALENDAR_FIELDS: dict[str, FieldSpec] = {
    "date": FieldSpec(D, dt.date(2026, 3, 10)),
    "weekday": FieldSpec(I, 2, doc="1 = Monday .. 7 = Sunday"),
    "month": FieldSpec(I, 3, doc="1..12 (fixed solar dates: 国庆 is month 10, day 1)"),
    "day": FieldSpec(I, 10, doc="1..31"),
    "announced": FieldSpec(B, True, doc="the State Council's calendar for the date is in config/holidays.yaml"),
    "holiday": FieldSpec(E, "春节", HOLIDAY_NAMES, doc="the official holiday (config/holidays.yaml) on every day "
                                                     "off of its block, or null; unknown in a year not announced"),
    "holiday_day": FieldSpec(I, 1, doc="1 on the first day off of the holiday, 2 on the next ..; null otherwise"),
    "is_workday": FieldSpec(B, True, doc="official working day, adjusted weekends (调休) included"),
    "lunar_month": FieldSpec(I, 1, doc="1..12 (a leap month has the number of the month it follows)"),
    "lunar_day": FieldSpec(I, 22, doc="1..30"),
    "lunar_leap": FieldSpec(B, False, doc="the day is in a leap month (闰月)"),
    "lunar_date": FieldSpec(S, "正月廿二", doc="the lunar date in Chinese (冬月初一, 闰六月十五), for templates"),
    "festival": FieldSpec(E, "春节", FESTIVALS, doc="traditional festival from the lunar calendar, or null"),
    "solar_term": FieldSpec(E, "雨水", TERM_NAMES, doc="the solar term (节气) falling on the day, or null"),
}

EVENT_FIELDS: dict[EventType, dict[str, FieldSpec]] = {
    EventType.RATE_CHANGE: {
        "event_id": FieldSpec(S, "rc-2026-03-10"),
        "product_type": FieldSpec(S, "time_deposit"),
        "product_code": FieldSpec(S, "TD1Y"),
        "old_rate": FieldSpec(N, Decimal("1.65")),
        "new_rate": FieldSpec(N, Decimal("1.45")),
        "rate_delta": FieldSpec(N, Decimal("-0.20"), doc="new_rate - old_rate"),
        "effective_date": FieldSpec(D, dt.date(2026, 3, 20)),
    },
    EventType.PRODUCT_LAUNCH: {
        "event_id": FieldSpec(S, "pl-2026-03-10"),
        "launch_date": FieldSpec(D, dt.date(2026, 3, 15)),
        **{f"product.{name}": spec for name, spec in _product_fields(
            code_field="code", code="WM-R2-09", name="稳享90天理财", type_="wealth", risk_level="R2",
            rate="2.80", min_amount="10000").items()},
    },
    EventType.LARGE_TRANSACTION: {
        "event_id": FieldSpec(S, "lt-000123"),
        "customer_id": FieldSpec(S, "C00000001"),
        "account_no": FieldSpec(S, "6222020012345678"),
        "amount": FieldSpec(N, Decimal("500000.00")),
        "direction": FieldSpec(E, "in", ("in", "out")),
        "occurred_at": FieldSpec(T, dt.datetime(2026, 3, 10, 14, 5)),
    },
}


def is_list_field(name: str) -> bool:
    """Whether a dotted field holds a list (today only customer.holds)."""
    namespace, _, rest = name.partition(".")
    return namespace == "customer" and CUSTOMER_FIELDS.get(rest, FieldSpec(S, None)).type is FieldType.LIST


def fields_in_scope(subject: SubjectType, event: EventType | None) -> dict[str, FieldSpec]:
    """Dotted field name -> spec, for a rule with this subject and trigger."""
    scope = {f"customer.{k}": v for k, v in CUSTOMER_FIELDS.items()}
    scope.update({f"calendar.{k}": v for k, v in CALENDAR_FIELDS.items()})
    if subject is SubjectType.DEPOSIT:
        scope.update({f"deposit.{k}": v for k, v in DEPOSIT_FIELDS.items()})
    if event is not None:
        scope.update({f"event.{k}": v for k, v in EVENT_FIELDS[event].items()})
    return scope


def _nest(flat: dict[str, FieldSpec]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in flat.items():
        *parents, leaf = name.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = spec.sample
    return out


def sample_product(code: str) -> dict[str, Any]:
    """The `product` namespace of a rule promoting `code`, with sample values."""
    return {**_nest(PRODUCT_FIELDS), "product_code": code}


def sample_namespaces(subject: SubjectType, event: EventType | None) -> dict[str, Any]:
    """A realistic context for test-rendering templates before a run."""
    ns: dict[str, Any] = {"customer": _nest(CUSTOMER_FIELDS), "calendar": _nest(CALENDAR_FIELDS)}
    if subject is SubjectType.DEPOSIT:
        ns["deposit"] = _nest(DEPOSIT_FIELDS)
    if event is not None:
        ns["event"] = _nest(EVENT_FIELDS[event])
    return ns
