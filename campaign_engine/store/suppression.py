"""The suppression list: numbers and addresses never to contact."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .bulk import one_of
from .models import SuppressedAddress


def normalize(channel: str, address: str) -> str:
    """Mobile numbers as 11 digits (no +86, spaces or dashes); emails lower-cased."""
    value = address.strip()
    if channel in ("sms", "call"):  # a mobile number (SMS, or a manager's calls)
        digits = "".join(c for c in value if c.isdigit())
        return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    return value.lower()


def blocked(conn: Connection, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (channel, address) pairs are on the list (unique index on channel, address)."""
    wanted = {(ch, normalize(ch, addr)): (ch, addr) for ch, addr in pairs if addr}
    found: set[tuple[str, str]] = set()
    for channel in sorted({ch for ch, _ in wanted}):  # one indexed query per channel
        addresses = [addr for ch, addr in wanted if ch == channel]
        found.update(conn.execute(select(SuppressedAddress.channel, SuppressedAddress.address).where(
            SuppressedAddress.channel == channel, one_of(conn, SuppressedAddress.address, addresses))).tuples().all())
    return {wanted[(ch, addr)] for ch, addr in found}


def add(conn: Connection, *, channel: str, address: str, reason: str, source: str, now: dt.datetime) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(SuppressedAddress).values(
        channel=channel, address=normalize(channel, address), reason=reason, source=source, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "address"]))


def remove(conn: Connection, *, channel: str, address: str) -> bool:
    result = conn.execute(delete(SuppressedAddress).where(SuppressedAddress.channel == channel,
                                                          SuppressedAddress.address == normalize(channel, address)))
    return result.rowcount > 0


def list_all(conn: Connection, *, limit: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(select(SuppressedAddress.channel, SuppressedAddress.address, SuppressedAddress.reason,
                               SuppressedAddress.source, SuppressedAddress.created_at)
                        .order_by(SuppressedAddress.id).limit(limit)).mappings()
    return [dict(r) for r in rows]
