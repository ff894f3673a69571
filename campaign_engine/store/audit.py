"""The audit log: who changed what, when."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert, select

from .models import AuditEntry


def record(conn: Connection, *, actor: str, action: str, target: str | None, now: dt.datetime,
           details: dict[str, Any] | None = None) -> None:
    """Append one entry; callers pass contact data masked."""
    conn.execute(insert(AuditEntry).values(at=now, actor=actor, action=action, target=target,
                                           details=details))


def recent(conn: Connection, *, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    query = select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                   AuditEntry.details).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    return [dict(r) for r in conn.execute(query).mappings()]
