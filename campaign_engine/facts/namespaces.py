"""Fact namespaces (customer, deposit, product, event, calendar) built from plain rows.

Templates see these dicts as they are (dates stay dates, money stays Decimal);
the rules engine sees them flattened to `namespace__field` keys of JSON values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from ..vocabulary import risk_rank
from .derived import (age, business_days_to_maturity, days_to_birthday, days_to_lunar_birthday, days_to_maturity,
                      payout_date)
from .official import HolidayCalendar

CUSTOMER_COLUMNS = (
    "customer_id", "name", "gender", "birth_date", "mobile", "email", "city", "branch", "tier",
    "risk_level", "aum", "rate_sensitive", "do_not_contact", "language", "manager_id", "birthday_calendar",
)
PRODUCT_COLUMNS = ("product_code", "name", "type", "risk_level", "rate", "min_amount", "launch_date")
DEPOSIT_COLUMNS = ("deposit_id", "customer_id", "product_code", "account_no", "amount", "rate",
                   "open_date", "maturity_date", "auto_renew")


# Derived fields computed only for a rule that reads them (conditions or templates): each costs
# per candidate (bench/lunar_birthday.py measures it), and most rules read neither.
LUNAR_BIRTHDAY_FIELDS = ("customer.days_to_lunar_birthday",)
BIRTHDAY_FIELDS = ("customer.age", "customer.days_to_birthday")  # cheap, but on every candidate
BUSINESS_DAY_FIELDS = ("deposit.payout_date", "deposit.business_days_to_maturity")


@dataclass(frozen=True)
class Derivations:
    """Which derived fields on demand a rule's facts carry; a field left out is absent, not null."""

    lunar_birthday: bool = False  # customer.days_to_lunar_birthday
    business_days: HolidayCalendar | None = None  # deposit.payout_date, deposit.business_days_to_maturity
    birthday: bool = True  # customer.age, customer.days_to_birthday (a run leaves them out when unread)


NO_DERIVATIONS = Derivations()


def customer_facts(row: Mapping[str, Any], today: dt.date, *, sms_consent: bool, email_consent: bool,
                   holds: Iterable[str] = (), lunar_birthday: bool = False, birthday: bool = True) -> dict[str, Any]:
    """The customer namespace: stored columns, consents and derived fields (with `lunar_birthday`,
    days_to_lunar_birthday too; without `birthday`, no age or days_to_birthday: absent, not null)."""
    get = row.get
    facts = {name: get(name) for name in CUSTOMER_COLUMNS}
    birth = facts["birth_date"]
    facts["sms_consent"] = sms_consent
    facts["email_consent"] = email_consent
    if birthday:
        facts["age"] = age(birth, today)
        facts["days_to_birthday"] = days_to_birthday(birth, today)
    facts["risk_rank"] = risk_rank(facts["risk_level"])
    facts["holds"] = sorted(set(holds)) if holds else []
    if facts["birthday_calendar"] is None:  # a row read without the column (older callers)
        facts["birthday_calendar"] = "solar"
    if lunar_birthday:
        facts["days_to_lunar_birthday"] = days_to_lunar_birthday(birth, today)
    return facts


def product_facts(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    facts = {name: row.get(name) for name in PRODUCT_COLUMNS}
    facts["risk_rank"] = risk_rank(facts["risk_level"])
    return facts


def deposit_facts(row: Mapping[str, Any], product: Mapping[str, Any] | None,
                  today: dt.date, business_days: HolidayCalendar | None = None) -> dict[str, Any]:
    """The deposit namespace: stored columns, days_to_maturity and its product; with the official
    calendar, payout_date and business_days_to_maturity too (None where it is not announced)."""
    facts = {name: row.get(name) for name in DEPOSIT_COLUMNS}
    facts["days_to_maturity"] = days_to_maturity(facts["maturity_date"], today)
    if business_days is not None:
        facts["payout_date"] = payout_date(facts["maturity_date"], business_days)
        facts["business_days_to_maturity"] = business_days_to_maturity(facts["maturity_date"], today,
                                                                       business_days)
    facts["product"] = product_facts(product)
    return facts


@dataclass(frozen=True)
class FactSet:
    """Everything one candidate is judged and rendered on."""

    customer: dict[str, Any]
    deposit: dict[str, Any] | None = None

    def namespaces(self, shared: Mapping[str, Any]) -> dict[str, Any]:
        """customer/deposit plus the run-wide namespaces (event, calendar, rule, product)."""
        ns = dict(shared)
        ns["customer"] = self.customer
        if self.deposit is not None:
            ns["deposit"] = self.deposit
        return ns


def engine_value(value: Any) -> Any:
    """A fact value as the engine holds and compares it: dates as ISO text, money as float, empty lists as null.

    The one conversion: facts are flattened with it, and explain.py compares with it, so
    preview and the engine agree.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        # The engine's "every item" test is false on an empty list: empty counts as missing.
        return [engine_value(v) for v in value] or None
    return value


def lookup(namespaces: Mapping[str, Any], field: str) -> Any:
    """The value of a dotted field (`deposit.product.type`), None where any step is missing."""
    value: Any = namespaces
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def flattener(fields: Iterable[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """flatten_facts for a fixed set of fields, their paths split once (it runs per candidate)."""
    paths = [(field.replace(".", "__"), tuple(field.split("."))) for field in fields]

    def flatten(namespaces: Mapping[str, Any]) -> dict[str, Any]:
        fact = {}
        for key, path in paths:
            value: Any = namespaces
            for part in path:
                if not isinstance(value, dict) and not isinstance(value, Mapping):  # dict: the fast test
                    value = None
                    break
                value = value.get(part)
            fact[key] = engine_value(value)
        return fact
    return flatten


def flatten_facts(namespaces: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """Engine fact for the referenced dotted fields: `a.b.c` -> key `a__b__c`, JSON values.

    Every referenced key is present; a missing value is an explicit null, because the
    engine's test for an absent key hangs (see evaluation/compiler.py).
    """
    return flattener(fields)(namespaces)
