"""Reads the console's messages, customers and effect screens need beyond the API's queries.

Each is bounded and served by an index: a page of messages' rule version and suppression reason by
primary key, a customer's conversions by ix_conversions_customer_occurred, whether any conversion
exists at all (one row).
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, select

from .models import Conversion, Message

MAX_IDS = 1000  # a page of messages is at most the API's largest limit


def message_extras(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """id -> {rule_version, suppressed_reason} for the messages of one page (query_messages does not
    return them): one query by primary key."""
    wanted = sorted({int(i) for i in ids})[:MAX_IDS]
    if not wanted:
        return {}
    rows = conn.execute(select(Message.id, Message.rule_version, Message.suppressed_reason)
                        .where(Message.id.in_(wanted))).mappings()
    return {row["id"]: {"rule_version": row["rule_version"], "suppressed_reason": row["suppressed_reason"]}
            for row in rows}


def customer_conversions(conn: Connection, customer_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """A customer's conversions, newest first (at most `limit`)."""
    query = (select(Conversion.conversion_id, Conversion.type, Conversion.product_code, Conversion.amount,
                    Conversion.occurred_at, Conversion.source, Conversion.recorded_at)
             .where(Conversion.customer_id == customer_id)
             .order_by(Conversion.occurred_at.desc(), Conversion.conversion_id.desc()).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def any_conversions(conn: Connection) -> bool:
    """Whether any conversion has been recorded (API, CSV import, deposit or holdings import)."""
    return conn.execute(select(Conversion.conversion_id).limit(1)).first() is not None
