"""Customer, product and deposit reads for the API, and single consent changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..vocabulary import PHONE_CONSENT, TaskStatus, Category
from .models import Consent, Customer, Deposit, Message, Product
from .suppression import normalize

# the indexed birthday keys are derived from birth_date: not part of a customer as the API shows it
_CUSTOMER_COLS = [c for c in Customer.__table__.c if c.name not in ("birth_mmdd", "lunar_birth_mmdd")]


def list_customers(conn: Connection, *, limit: int, after: str | None = None,
                   **filters: Any) -> list[dict[str, Any]]:
    """Customers in id order after a keyset cursor (primary key; tier/manager_id are indexed)."""
    query = select(*_CUSTOMER_COLS).order_by(Customer.customer_id).limit(limit)
    if after:
        query = query.where(Customer.customer_id > after)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(Customer, name) == value)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_customer(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(*_CUSTOMER_COLS).where(Customer.customer_id == customer_id)).mappings().first()
    return dict(row) if row else None


def get_consents(conn: Connection, customer_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(Consent.channel, Consent.granted, Consent.source, Consent.recorded_at)
                        .where(Consent.customer_id == customer_id).order_by(Consent.channel)).mappings()
    return [dict(r) for r in rows]


def set_consent(conn: Connection, customer_id: str, channel: str, *, granted: bool, source: str,
                now: dt.datetime) -> dict[str, Any]:
    """Grant or withdraw one channel's marketing consent, recording when and from where."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(Consent).values(customer_id=customer_id, channel=channel, granted=granted,
                                          source=source, recorded_at=now)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["customer_id", "channel"],
        set_={"granted": granted, "source": source, "recorded_at": now}))
    return {"channel": channel, "granted": granted, "source": source, "recorded_at": now}


def withdraw_marketing(conn: Connection, customer_id: str, channel: str, *, source: str,
                       now: dt.datetime, route: str = "staff") -> int:
    """Withdraw a channel's marketing consent at once and suppress that channel's marketing
    messages not yet sent (queued or scheduled); returns how many were suppressed. `route`: how
    the customer said it (sms_reply, unsubscribe_link, api, console, task_refused, staff), counted
    for the operators' metrics."""
    from .. import metrics

    set_consent(conn, customer_id, channel, granted=False, source=source, now=now)
    metrics.record_opt_out(route, channel)
    if channel == PHONE_CONSENT:  # phone marketing refused: the manager's open marketing calls and visits go
        from .models import Task

        result = conn.execute(update(Task).where(
            Task.customer_id == customer_id, Task.category == Category.MARKETING.value,
            Task.status == TaskStatus.OPEN.value).values(status=TaskStatus.CANCELLED.value, updated_at=now,
                                                         note=f"cancelled: phone marketing consent withdrawn ({source})"))
        return int(result.rowcount or 0)
    result = conn.execute(update(Message).where(
        Message.customer_id == customer_id, Message.channel == channel, Message.category == Category.MARKETING.value,
        Message.status.in_(("queued", "scheduled"))).values(status="suppressed", suppressed_reason="opted_out"))
    return result.rowcount


def customers_by_address(conn: Connection, channel: str, address: str) -> list[str]:
    """Customers with this mobile (ix_customers_mobile) or email (ix_customers_email)."""
    column = Customer.mobile if channel == "sms" else Customer.email
    normal = normalize(channel, address)  # the suppression list's normal form
    candidates = {address, normal} | ({"+86" + normal} if channel == "sms" else set())
    return list(conn.execute(select(Customer.customer_id).where(column.in_(sorted(candidates)))).scalars())


def list_products(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(*Product.__table__.c).order_by(Product.product_code)).mappings()]


def get_product(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(*Product.__table__.c).where(Product.product_code == code)).mappings().first()
    return dict(row) if row else None


def list_deposits(conn: Connection, *, limit: int, after: str | None = None, customer_id: str | None = None,
                  maturing_from: dt.date | None = None, maturing_to: dt.date | None = None) -> list[dict[str, Any]]:
    """Deposits in id order; by customer (ix_deposits_customer_id) or maturity range (ix_deposits_maturity_date)."""
    query = select(*Deposit.__table__.c).order_by(Deposit.deposit_id).limit(limit)
    if after:
        query = query.where(Deposit.deposit_id > after)
    if customer_id:
        query = query.where(Deposit.customer_id == customer_id)
    if maturing_from:
        query = query.where(Deposit.maturity_date >= maturing_from)
    if maturing_to:
        query = query.where(Deposit.maturity_date <= maturing_to)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_deposit(conn: Connection, deposit_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(*Deposit.__table__.c).where(Deposit.deposit_id == deposit_id)).mappings().first()
    return dict(row) if row else None
