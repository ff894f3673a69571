"""The suppression list: numbers and addresses never to contact."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .bulk import one_of
from ..vocabulary import SuppressionReason
from .models import SuppressedAddress


#: Channels whose addresses are mobile numbers: SMS, a manager's calls (电联), and WRONG_NUMBER below.
MOBILE_CHANNELS = ("sms", "call")
#: The channels the list holds (`suppress add|remove|list`, channel `call`: a manager's calls).
CHANNELS = ("sms", "email", "call")
#: The reason of a `call` row that a manager's `wrong_number` outcome writes: the mobile is someone
#: else's, so SMS to it is blocked too, not only calls. As a channel in `blocked`'s pairs it asks
#: only that: `("wrong_number", mobile)` is returned when the mobile is so flagged.
WRONG_NUMBER = SuppressionReason.WRONG_NUMBER.value  # = TaskOutcome.WRONG_NUMBER, the reason it records


def normalize(channel: str, address: str) -> str:
    """Mobile numbers as 11 digits (no +86, spaces or dashes); emails lower-cased."""
    value = address.strip()
    if channel in (*MOBILE_CHANNELS, WRONG_NUMBER):  # a mobile number (SMS, or a manager's calls)
        digits = "".join(c for c in value if c.isdigit())
        return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    return value.lower()


def blocked(conn: Connection, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (channel, address) pairs are on the list (unique index on channel, address).

    An SMS to a mobile flagged wrong_number (its `call` row of reason wrong_number) is blocked too,
    until the flag is removed: the text would carry the customer's data to someone else's phone.
    A pair ("wrong_number", mobile) is returned when the mobile is so flagged (the policy's reason
    wrong_number rather than suppression_list)."""
    wanted = {(ch, normalize(ch, addr)): (ch, addr) for ch, addr in pairs if addr}
    found: set[tuple[str, str]] = set()
    mobile = {ch for ch, _ in wanted if ch in (*MOBILE_CHANNELS, WRONG_NUMBER)}
    for channel in sorted({ch for ch, _ in wanted} - mobile):  # one indexed query per channel (email)
        addresses = [addr for ch, addr in wanted if ch == channel]
        found.update(conn.execute(select(SuppressedAddress.channel, SuppressedAddress.address).where(
            SuppressedAddress.channel == channel, one_of(conn, SuppressedAddress.address, addresses))).tuples().all())
    if mobile:  # one indexed query for the mobiles: their sms and call rows (call: also for the flag)
        channels = sorted((mobile & {"sms", "call"}) | ({"call"} if mobile & {"sms", WRONG_NUMBER} else set()))
        addresses = sorted({addr for ch, addr in wanted if ch in mobile})
        for channel, address, reason in conn.execute(
                select(SuppressedAddress.channel, SuppressedAddress.address, SuppressedAddress.reason).where(
                    SuppressedAddress.channel.in_(channels),
                    one_of(conn, SuppressedAddress.address, addresses))).tuples():
            found.add((channel, address))
            if channel == "call" and reason == WRONG_NUMBER:
                found.update({("sms", address), (WRONG_NUMBER, address)})
    return {wanted[key] for key in found if key in wanted}


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
