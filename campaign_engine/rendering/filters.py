"""Jinja2 filters for bank messages: money, dates, masked identifiers, salutations.

Each filter is a plain function that raises ValueError on data it cannot
format, so a bad value fails the one message instead of printing garbage.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ..vocabulary import TIER_ALIASES
from ..masking import mask_mobile as mask_mobile  # one masking: templates, API, CLI, audit log

COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
    "宇文", "司徒", "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "轩辕", "呼延",
})


def _rounded(value: object, digits: int, filter_name: str) -> Decimal:
    """Convert a numeric value to Decimal rounded half up to `digits` places."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise ValueError(f"{filter_name}: expected a number, got {value!r}")
    try:
        # str() of a float is its shortest repr, so 2.675 rounds to 2.68 as a person expects.
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
        if not number.is_finite():
            raise InvalidOperation
        return number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"{filter_name}: not a usable number: {value!r}") from None


def money(value: object, symbol: str = "¥") -> str:
    """Format an amount as `¥1,234.56` (`-¥1,234.56` when negative), rounded half up."""
    amount = _rounded(value, 2, "money")
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


def percent(value: object, digits: int = 2) -> str:
    """Format a rate stored as a percent number (2.15 means 2.15%) as `2.15%`."""
    return f"{_rounded(value, digits, 'percent'):.{digits}f}%"


def cn_date(value: object) -> str:
    """Format a date, datetime or `YYYY-MM-DD` string as `2026年3月15日`."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"cn_date: not a YYYY-MM-DD date: {value!r}") from None
    if not isinstance(value, date):  # datetime is a date subclass
        raise ValueError(f"cn_date: expected a date, got {value!r}")
    return f"{value.year}年{value.month}月{value.day}日"


def mask_account(value: object) -> str:
    """Show only the last 4 characters of an account number: `尾号1234`."""
    account = "".join(str(value if value is not None else "").split())
    if not account:
        raise ValueError(f"mask_account: no account number: {value!r}")
    return f"尾号{account[-4:]}"


def salutation(name: str | None, gender: str | None) -> str:
    """Address a customer as `张先生`/`欧阳女士` or `Mr. Smith`; the full name when gender is unknown.

    An empty name gives `尊敬的客户` so a message never opens with a blank.
    """
    name = " ".join((name or "").split())
    if not name:
        return "尊敬的客户"
    gender = (gender or "").strip().upper()
    if name.isascii():
        surname = name.split()[-1]
        return {"M": f"Mr. {surname}", "F": f"Ms. {surname}"}.get(gender, name)
    surname = name[:2] if name[:2] in COMPOUND_SURNAMES else name[0]
    return {"M": f"{surname}先生", "F": f"{surname}女士"}.get(gender, name)


def tier_name(tier: object) -> str:
    """A value-pyramid tier in Chinese: diamond -> 钻石客户 (an unknown value as it is)."""
    names = {t.value: name for name, t in TIER_ALIASES.items()}
    return f"{names[str(tier)]}客户" if str(tier) in names else str(tier)


FILTERS: dict[str, Callable[..., str]] = {
    "tier_name": tier_name,
    "money": money,
    "percent": percent,
    "cn_date": cn_date,
    "mask_account": mask_account,
    "mask_mobile": mask_mobile,
    "salutation": salutation,
}
