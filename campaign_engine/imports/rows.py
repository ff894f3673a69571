"""Import rows: the columns and key of each kind of import file and the per-column parsers that
turn a row of text values into a typed row (dates, Decimals, booleans) or its located problems.

The same checks serve CSV files and API bodies. Columns with few distinct values have cached
parsers, which the file reader's fast path looks up without a Python call per value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import Problem
from ..vocabulary import CUSTOMER_RISK_LEVELS, PRODUCT_RISK_LEVELS, ConversionType, Tier

KINDS = ("customers", "products", "deposits", "holdings", "conversions", "managers")

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "name", "gender", "birth_date", "mobile", "email", "city", "branch",
                  "tier", "risk_level", "aum", "rate_sensitive", "sms_consent", "email_consent",
                  "do_not_contact", "language", "manager_id", "birthday_calendar", "phone_consent"),
    "products": ("product_code", "name", "type", "risk_level", "rate", "min_amount", "launch_date"),
    "deposits": ("deposit_id", "customer_id", "product_code", "account_no", "amount", "rate",
                 "open_date", "maturity_date", "auto_renew"),
    "holdings": ("customer_id", "product_code", "amount"),
    # what a customer did, for the effect of rules' goals (issue #11): recorded once per conversion_id
    "conversions": ("conversion_id", "customer_id", "type", "product_code", "amount", "occurred_at"),
    # the relationship managers (客户经理) customers' manager_id names, and a day's call/visit capacity (issue #12)
    "managers": ("manager_id", "name", "branch", "mobile", "email", "daily_call_capacity", "daily_visit_capacity",
                 "active"),
}
# Columns a file may leave out (added after files were first exported): rows of such a file carry
# no value for them, and the stored one stays as it is (a new customer gets the default, solar;
# phone_consent: no consent recorded, the setting phone_consent_default applies).
OPTIONAL: dict[str, tuple[str, ...]] = {"customers": ("birthday_calendar", "phone_consent")}
# The columns that identify a row: a file holds one row per key (a later one is refused).
KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "products": ("product_code",),
    "deposits": ("deposit_id",),
    "holdings": ("customer_id", "product_code"),
    "conversions": ("conversion_id",),
    "managers": ("manager_id",),
}


# --------------------------------------------------------------------------- column parsers


class BadValue(ValueError):
    """A value a column parser rejects; the message is the reason."""


Parser = Callable[[str], Any]

# PostgreSQL text cannot hold a NUL; a file decoded as UTF-8 cannot hold any other unstorable character.
NUL_REASON = "contains a NUL character (U+0000), which cannot be stored"


def _text(max_len: int, *, required: bool = False) -> Parser:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            if required:
                raise BadValue("is required")
            return None
        if len(value) > max_len:
            raise BadValue(f"is longer than {max_len} characters")
        if "\x00" in value:
            raise BadValue(NUL_REASON)
        return value
    return parse


def _date(raw: str) -> dt.date | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise BadValue(f"malformed date {value!r}, expected YYYY-MM-DD")


def _decimal(integer_digits: int, scale: int, *, required: bool = False,
             negative: bool = False, empty: Decimal | None = None) -> Parser:
    shape = re.compile(rf"{'-?' if negative else ''}\d{{1,{integer_digits}}}(?:\.\d{{1,{scale}}})?")
    limit = Decimal(10) ** integer_digits
    step = Decimal(1).scaleb(-scale)

    def parse(raw: str) -> Decimal | None:
        value = raw.strip()
        if not value:
            if required:
                raise BadValue("is required")
            return empty
        if shape.fullmatch(value):
            return Decimal(value)
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise BadValue(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise BadValue(f"{value!r} is not a number")
        if number < 0 and not negative:
            raise BadValue(f"{value!r} must not be negative")
        if abs(number) >= limit:
            raise BadValue(f"{value!r} is too large")
        rounded = number.quantize(step)
        if rounded != number:
            raise BadValue(f"{value!r} has more than {scale} decimal places")
        return rounded
    return parse


_BOOLEANS = {"true": True, "1": True, "yes": True, "y": True, "是": True,
             "false": False, "0": False, "no": False, "n": False, "否": False, "": False}


def _bool(raw: str) -> bool:
    value = _BOOLEANS.get(raw.strip().lower())
    if value is None:
        raise BadValue(f"{raw.strip()!r} is not a boolean (true/false, 1/0, yes/no, y/n, 是/否)")
    return value


def _consent(raw: str) -> bool | None:
    """A consent answer: a boolean, or empty for none given (the stored consent stays as it is)."""
    return None if not raw.strip() else _bool(raw)


def _required_bool(raw: str) -> bool:
    if not raw.strip():
        raise BadValue("is required")
    return _bool(raw)


_CAPACITY = re.compile(r"\d{1,3}")
MAX_CAPACITY = 500  # tasks of one type a manager may be planned per day


def _capacity(raw: str) -> int:
    """Tasks a day: a whole number 0..500."""
    value = raw.strip()
    if not value:
        raise BadValue("is required")
    if _CAPACITY.fullmatch(value) and int(value) <= MAX_CAPACITY:
        return int(value)
    raise BadValue(f"{value!r} is not a whole number from 0 to {MAX_CAPACITY}")


_TIERS = {tier.value: tier.value for tier in Tier} | {
    "钻石": Tier.DIAMOND.value, "白金": Tier.PLATINUM.value, "金": Tier.GOLD.value,
    "普通": Tier.REGULAR.value, "限制": Tier.RESTRICTED.value}


def _tier(raw: str) -> str:
    value = raw.strip()
    tier = _TIERS.get(value.lower())
    if tier is None:
        if not value:
            raise BadValue("is required")
        raise BadValue(f"unknown tier {value!r}")
    return tier


def _choice(levels: Iterable[str], what: str, *, required: bool = False) -> Parser:
    allowed = frozenset(levels)

    def parse(raw: str) -> str | None:
        value = raw.strip().upper()
        if value in allowed:
            return value
        if not value:
            if required:
                raise BadValue("is required")
            return None
        raise BadValue(f"unknown {what} {raw.strip()!r}")
    return parse


_GENDERS = {"M": "M", "F": "F", "男": "M", "女": "F", "": None}


def _gender(raw: str) -> str | None:
    value = raw.strip().upper()
    if value in _GENDERS:
        return _GENDERS[value]
    raise BadValue(f"unknown gender {raw.strip()!r}, expected M or F")


def _mobile(raw: str) -> str | None:
    if len(raw) == 11 and raw[0] == "1" and raw.isdigit() and raw.isascii():
        return raw
    value = raw.strip()
    if not value:
        return None
    number = value.replace(" ", "").replace("-", "")
    if number.startswith("+86"):
        number = number[3:]
    if len(number) == 11 and number[0] == "1" and number.isascii() and number.isdigit():
        return number
    raise BadValue(f"malformed mobile number {value!r}, expected 11 digits starting with 1")


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def _email(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) <= 254 and _EMAIL.fullmatch(value):
        if "\x00" in value:
            raise BadValue(NUL_REASON)
        return value
    raise BadValue(f"malformed email address {value!r}")


_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")


def _language(raw: str) -> str:
    value = raw.strip().lower().replace("_", "-")
    if not value:
        return "zh"
    if _LANGUAGE.fullmatch(value):
        return value
    raise BadValue(f"malformed language {raw.strip()!r}, expected e.g. zh or en")


_BIRTHDAY_CALENDARS = {"solar": "solar", "lunar": "lunar", "公历": "solar", "阳历": "solar", "新历": "solar",
                       "农历": "lunar", "阴历": "lunar", "": "solar"}


def _birthday_calendar(raw: str) -> str:
    """Which birthday the customer celebrates: solar (the default) or lunar (农历生日)."""
    value = _BIRTHDAY_CALENDARS.get(raw.strip().lower())
    if value is None:
        raise BadValue(f"unknown birthday calendar {raw.strip()!r}, expected solar or lunar (公历/农历)")
    return value


_PRODUCT_TYPE = re.compile(r"[a-z_]{1,32}")


def _product_type(raw: str) -> str:
    value = raw.strip().lower()
    if _PRODUCT_TYPE.fullmatch(value):
        return value
    if not value:
        raise BadValue("is required")
    raise BadValue(f"malformed product type {raw.strip()!r}, expected a word of a-z and _")


def _account_no(raw: str) -> str:
    value = raw.strip()
    number = value.replace(" ", "").replace("-", "")
    if 6 <= len(number) <= 40 and number.isascii() and number.isdigit():
        return number
    if not value:
        raise BadValue("is required")
    raise BadValue(f"malformed account number {value!r}, expected 6 to 40 digits")


def _moment(raw: str) -> dt.datetime | dt.date:
    """An ISO 8601 date-time (with an offset, or naive: the configured time zone's, which the store
    applies), or a date alone (`2026-03-12`: some time that day, which the store places)."""
    value = raw.strip()
    if not value:
        raise BadValue("is required")
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise BadValue(f"malformed date-time {value!r}, expected e.g. 2026-03-12T10:30:00+08:00 or 2026-03-12")


_CONVERSION_TYPES = {t.value: t.value for t in ConversionType}


def _conversion_type(raw: str) -> str:
    value = raw.strip().lower()
    if value in _CONVERSION_TYPES:
        return value
    if not value:
        raise BadValue("is required")
    raise BadValue(f"unknown conversion type {raw.strip()!r} (types: {', '.join(_CONVERSION_TYPES)})")


class _Cached:
    """A parser that remembers its good answers; `fast` is the C-level lookup (KeyError if new)."""

    # For columns with few distinct values (booleans, tiers, dates, cities): the file reader's
    # fast path looks values up without a Python call and parses a value only the first time.

    def __init__(self, parse: Parser, limit: int = 4096) -> None:
        self.parse = parse
        self.cache: dict[str, Any] = {}
        self.limit = limit
        self.fast: Parser = self.cache.__getitem__

    def __call__(self, raw: str) -> Any:
        try:
            return self.cache[raw]
        except KeyError:
            pass
        value = self.parse(raw)
        if len(self.cache) < self.limit:
            self.cache[raw] = value
        return value


_DATE = _Cached(_date, limit=100_000)
_BOOL = _Cached(_bool)
_ID = _text(32, required=True)
_MONEY = _decimal(16, 2)
_MONEY_REQUIRED = _decimal(16, 2, required=True)
_RATE = _decimal(5, 4, negative=True)

_PARSERS: dict[str, dict[str, Parser]] = {
    "customers": {
        "customer_id": _ID, "name": _text(64, required=True), "gender": _Cached(_gender),
        "birth_date": _DATE, "mobile": _mobile, "email": _email, "city": _Cached(_text(32)),
        "branch": _Cached(_text(64)), "tier": _Cached(_tier),
        "risk_level": _Cached(_choice(CUSTOMER_RISK_LEVELS, "risk level")),
        "aum": _decimal(16, 2, empty=Decimal(0)), "rate_sensitive": _BOOL, "sms_consent": _BOOL,
        "email_consent": _BOOL, "do_not_contact": _BOOL, "language": _Cached(_language),
        "manager_id": _Cached(_text(32)), "birthday_calendar": _Cached(_birthday_calendar),
        "phone_consent": _Cached(_consent),
    },
    "products": {
        "product_code": _ID, "name": _text(128, required=True), "type": _product_type,
        "risk_level": _choice(PRODUCT_RISK_LEVELS, "risk level", required=True),
        "rate": _RATE, "min_amount": _MONEY, "launch_date": _DATE,
    },
    "deposits": {
        "deposit_id": _ID, "customer_id": _ID, "product_code": _Cached(_text(32)),
        "account_no": _account_no, "amount": _MONEY_REQUIRED, "rate": _Cached(_RATE),
        "open_date": _DATE, "maturity_date": _DATE, "auto_renew": _BOOL,
    },
    "holdings": {"customer_id": _ID, "product_code": _Cached(_text(32, required=True)),
                 "amount": _MONEY_REQUIRED},
    "conversions": {"conversion_id": _text(64, required=True), "customer_id": _ID,
                    "type": _Cached(_conversion_type), "product_code": _Cached(_text(32)), "amount": _MONEY,
                    "occurred_at": _moment},
    "managers": {"manager_id": _ID, "name": _text(64, required=True), "branch": _Cached(_text(64)),
                 "mobile": _mobile, "email": _email, "daily_call_capacity": _Cached(_capacity),
                 "daily_visit_capacity": _Cached(_capacity), "active": _Cached(_required_bool)},
}
# What the file reader's fast path calls per column: a cache lookup where there is one.
FAST_PARSERS: dict[str, list[Parser]] = {
    kind: [getattr(_PARSERS[kind][column], "fast", _PARSERS[kind][column]) for column in columns]
    for kind, columns in COLUMNS.items()}


# Checks across a row's values; also given a row some of whose values did not parse (absent).


def _check_customer(row: dict[str, Any], today: dt.date) -> tuple[str, str] | None:
    birth = row.get("birth_date")
    if birth is not None and birth > today:
        return "birth_date", f"birth date {birth.isoformat()} is in the future"
    return None


def _check_deposit(row: dict[str, Any], today: dt.date) -> tuple[str, str] | None:
    opened, matures = row.get("open_date"), row.get("maturity_date")
    if opened is not None and matures is not None and matures < opened:
        return ("maturity_date",
                f"maturity date {matures.isoformat()} is before open date {opened.isoformat()}")
    return None


def _check_conversion(row: dict[str, Any], today: dt.date) -> tuple[str, str] | None:
    occurred: dt.datetime | dt.date | None = row.get("occurred_at")
    if occurred is None:
        return None
    day = occurred.date() if isinstance(occurred, dt.datetime) else occurred
    if day > today + dt.timedelta(days=1):  # a day of slack for time zones
        return "occurred_at", f"occurred_at {occurred.isoformat()} is in the future"
    return None


ROW_CHECKS: dict[str, Callable[[dict[str, Any], dt.date], tuple[str, str] | None]] = {
    "customers": _check_customer, "deposits": _check_deposit, "conversions": _check_conversion}


def check_row(kind: str, values: Mapping[str, str], *, today: dt.date, file: str | None = None,
              line: int | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Check one row of text values of a kind: (its typed values, every problem of the row).

    With problems, the typed row holds only the values that parsed, so that the caller can still
    check what they refer to (the import reports a row's unknown product with its other problems).
    """
    row: dict[str, Any] = {}
    problems: list[Problem] = []
    optional = OPTIONAL.get(kind, ())
    for column, parse in _PARSERS[kind].items():
        if column in optional and column not in values:  # a file without the column: nothing to set
            continue
        try:
            row[column] = parse(values.get(column) or "")
        except BadValue as bad:
            problems.append(Problem(f"{column} {bad}" if str(bad) == "is required" else str(bad),
                                    file=file, line=line, field=column))
    check = ROW_CHECKS.get(kind)
    failed = check(row, today) if check is not None else None
    if failed is not None:
        problems.append(Problem(failed[1], file=file, line=line, field=failed[0]))
    return row, problems


def parse_row(kind: str, values: Mapping[str, str], *, today: dt.date, file: str | None = None,
              line: int | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check one row of text values of a kind: (typed row, []) or (None, its problems)."""
    row, problems = check_row(kind, values, today=today, file=file, line=line)
    return (None, problems) if problems else (row, [])
