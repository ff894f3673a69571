"""Conversions: what customers did that a rule's goal may count (issue #11).

Recorded once per conversion_id, from three places: the API (`POST /api/v1/conversions`), the CSV
import (`import conversions`), and derived from the daily deposit and holdings imports (read
before the import's upsert writes its batch, recorded in the same transaction):

- a deposit id not seen before is a `deposit_open`, or a `deposit_renewal` when it opens within
  RENEWAL_DAYS of the maturity date of another deposit of the same customer's;
- a stored deposit whose maturity date moves later with a new open date within RENEWAL_DAYS of its
  stored maturity (renewed in place, under the same id) is a `deposit_renewal`;
- a holding whose amount grows is a `holding_increase` of the difference (a first holding of a
  product grows from 0).

Derived ids are `auto:<type>:...`, made of what identifies the occurrence, so importing the same
file again records nothing new. A date without a time (a deposit's open date, a CSV date) is taken
as the end of that day in the configured time zone, or the import's time when that is sooner: the
latest it can have happened, so a conversion on the day of a message counts for it (see README,
"Measuring effect").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from ..vocabulary import ConversionType
from .bulk import one_of
from .models import Conversion, Deposit, Holding, table_of

RENEWAL_DAYS = 7
"""A deposit opened this many days before or after another deposit's maturity renews it."""

_CONVERSIONS = table_of(Conversion)
_COMPARED = ("customer_id", "type", "product_code", "amount", "occurred_at")
UTC = dt.timezone.utc


def occurred_at(value: dt.datetime | dt.date, *, tz: ZoneInfo | dt.timezone, now: dt.datetime) -> dt.datetime:
    """A parsed occurred_at as an aware UTC time: a naive time is the configured time zone's; a
    date alone is the end of that local day, or `now` when that is sooner."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    end_of_day = dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), tzinfo=tz) - dt.timedelta(microseconds=1)
    return min(end_of_day.astimezone(UTC), now.astimezone(UTC))


@dataclass
class Sorted:
    """A batch of conversions against what is recorded: new, already recorded alike, or conflicting."""

    fresh: list[dict[str, Any]] = field(default_factory=list)
    already: int = 0
    conflicts: dict[int, str] = field(default_factory=dict)  # position in the batch -> why refused


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def norm(name: str, value: Any) -> Any:
        if name == "amount" and value is not None:
            return Decimal(value).quantize(Decimal("0.01"))
        if name == "occurred_at" and value is not None:
            return value.astimezone(UTC)
        return value

    return all(norm(n, a.get(n)) == norm(n, b.get(n)) for n in _COMPARED)


def sort_batch(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> Sorted:
    """Which conversions of a batch (typed, occurred_at aware) are new, which were recorded before
    with the same values (a replay: fine), and which reuse a recorded id with other values (refused).

    One primary-key lookup for the batch; an id twice in the batch is judged the same way.
    """
    ids = sorted({r["conversion_id"] for r in rows})
    stored: dict[str, dict[str, Any]] = {}
    if ids:
        query = select(Conversion.conversion_id, *(getattr(Conversion, n) for n in _COMPARED)).where(
            one_of(conn, Conversion.conversion_id, ids))
        stored = {r["conversion_id"]: dict(r) for r in conn.execute(query).mappings()}
    out = Sorted()
    for position, row in enumerate(rows):
        earlier = stored.get(row["conversion_id"])
        if earlier is None:
            stored[row["conversion_id"]] = dict(row)
            out.fresh.append(dict(row))
        elif _same(earlier, row):
            out.already += 1
        else:
            out.conflicts[position] = (f"conversion_id {row['conversion_id']!r} is recorded already with other "
                                       "values (customer, type, product, amount or time); a conversion is "
                                       "recorded once")
    return out


def insert_conversions(conn: Connection, rows: Iterable[Mapping[str, Any]], *, source: str,
                       now: dt.datetime) -> int:
    """Record conversions whose id is new (primary key; an id already there is skipped); how many."""
    values = [{"conversion_id": r["conversion_id"], "customer_id": r["customer_id"], "type": r["type"],
               "product_code": r.get("product_code"), "amount": r.get("amount"),
               "occurred_at": r["occurred_at"], "source": source[:128], "recorded_at": now} for r in rows]
    if not values:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(_CONVERSIONS).on_conflict_do_nothing(index_elements=["conversion_id"])
            .returning(_CONVERSIONS.c.conversion_id))
    return len(conn.execute(stmt, values).all())


def has_rows(conn: Connection, kind: str) -> bool:
    """Whether the deposits or holdings table holds anything yet: the first import of the bank's
    book is where measuring starts, not a wave of conversions."""
    column = {"deposits": Deposit.customer_id, "holdings": Holding.customer_id}[kind]
    return conn.execute(select(column).limit(1)).first() is not None


def _conversion(kind: ConversionType, key: str, customer_id: str, product_code: str | None,
                amount: Decimal | None, at: dt.datetime) -> dict[str, Any]:
    return {"conversion_id": f"auto:{kind.value}:{key}"[:160], "customer_id": customer_id, "type": kind.value,
            "product_code": product_code, "amount": amount, "occurred_at": at}


def deposit_conversions(conn: Connection, rows: Sequence[Mapping[str, Any]], *, tz: ZoneInfo | dt.timezone,
                        now: dt.datetime) -> list[dict[str, Any]]:
    """The conversions a batch of deposit rows makes, read before the batch is written (module doc).

    Primary-key lookups for the batch's deposits, then the new deposits' customers' other
    deposits through ix_deposits_customer_deposit.
    """
    if not rows:
        return []
    stored = {r.deposit_id: r for r in conn.execute(
        select(Deposit.deposit_id, Deposit.open_date, Deposit.maturity_date)
        .where(one_of(conn, Deposit.deposit_id, [r["deposit_id"] for r in rows])))}
    new = [r for r in rows if r["deposit_id"] not in stored]
    maturities: dict[str, list[tuple[str, dt.date]]] = {}
    customers = sorted({r["customer_id"] for r in new if r.get("open_date")})
    if customers:
        for customer_id, deposit_id, maturity in conn.execute(
                select(Deposit.customer_id, Deposit.deposit_id, Deposit.maturity_date)
                .where(one_of(conn, Deposit.customer_id, customers), Deposit.maturity_date.is_not(None))):
            maturities.setdefault(customer_id, []).append((deposit_id, maturity))
    window = dt.timedelta(days=RENEWAL_DAYS)
    out = []
    for row in rows:
        opened: dt.date | None = row.get("open_date")
        at = occurred_at(opened, tz=tz, now=now) if opened else now
        earlier = stored.get(row["deposit_id"])
        if earlier is None:
            renews = opened is not None and any(
                other != row["deposit_id"] and abs(opened - maturity) <= window
                for other, maturity in maturities.get(row["customer_id"], ()))
            kind = ConversionType.DEPOSIT_RENEWAL if renews else ConversionType.DEPOSIT_OPEN
            out.append(_conversion(kind, f"{row['deposit_id']}:{opened or ''}", row["customer_id"],
                                   row.get("product_code"), row["amount"], at))
        elif (opened is not None and earlier.maturity_date is not None and opened != earlier.open_date
              and row.get("maturity_date") is not None and row["maturity_date"] > earlier.maturity_date
              and abs(opened - earlier.maturity_date) <= window):
            out.append(_conversion(ConversionType.DEPOSIT_RENEWAL, f"{row['deposit_id']}:{opened}",
                                   row["customer_id"], row.get("product_code"), row["amount"], at))
    return out


def holding_conversions(conn: Connection, rows: Sequence[Mapping[str, Any]], *,
                        now: dt.datetime) -> list[dict[str, Any]]:
    """holding_increase conversions of a batch of holding rows (the growth, at the import's time),
    read before the batch is written (the holdings primary key, by customer)."""
    if not rows:
        return []
    stored = {(c, p): amount for c, p, amount in conn.execute(
        select(Holding.customer_id, Holding.product_code, Holding.amount)
        .where(one_of(conn, Holding.customer_id, sorted({r["customer_id"] for r in rows}))))}
    out = []
    for row in rows:
        before = Decimal(stored.get((row["customer_id"], row["product_code"])) or 0)
        if row["amount"] > before:
            key = f"{row['customer_id']}:{row['product_code']}:{now.astimezone(UTC):%Y%m%d}:{before}:{row['amount']}"
            out.append(_conversion(ConversionType.HOLDING_INCREASE, key, row["customer_id"], row["product_code"],
                                   row["amount"] - before, now))
    return out


@dataclass
class Batch:
    """A batch of conversions from the API, as recorded: every problem of an item by its position
    (nothing is recorded then), or how many were new and how many were recorded before alike."""

    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (position, field, reason)
    recorded: int = 0
    already: int = 0


def record_batch(conn: Connection, rows: Sequence[Mapping[str, Any]], *, source: str, now: dt.datetime) -> Batch:
    """Check a batch of typed conversions (occurred_at aware) against the database and, when every
    item is good, record the new ones in the caller's transaction.

    An item's unknown customer or product, and a conversion_id recorded before with other values,
    are its problems; with any problem nothing is written. Primary-key lookups (customers,
    products, conversions) for the whole batch.
    """
    from .models import Customer, Product

    out = Batch()
    customers = {r["customer_id"] for r in rows}
    products = {r["product_code"] for r in rows if r.get("product_code")}
    known_customers = set(conn.execute(select(Customer.customer_id)
                                       .where(one_of(conn, Customer.customer_id, sorted(customers)))).scalars())
    known_products = set(conn.execute(select(Product.product_code)
                                      .where(one_of(conn, Product.product_code, sorted(products))))
                         .scalars()) if products else set()
    for position, row in enumerate(rows):
        if row["customer_id"] not in known_customers:
            out.problems.append((position, "customer_id", f"unknown customer {row['customer_id']!r}"))
        if row.get("product_code") and row["product_code"] not in known_products:
            out.problems.append((position, "product_code", f"unknown product_code {row['product_code']!r}"))
    found = sort_batch(conn, rows)
    out.problems += [(position, "conversion_id", reason) for position, reason in found.conflicts.items()]
    if out.problems:
        out.problems.sort()
        return out
    out.already = found.already
    out.recorded = insert_conversions(conn, found.fresh, source=source, now=now)
    out.already += len(found.fresh) - out.recorded  # recorded by another request meanwhile
    return out
