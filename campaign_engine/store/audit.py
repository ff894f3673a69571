"""The audit log: who changed what, when."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert

from .models import AuditEntry


def record(conn: Connection, *, actor: str, action: str, target: str | None, now: dt.datetime,
           details: dict[str, Any] | None = None) -> None:
    """Append one entry; callers pass contact data masked."""
    conn.execute(insert(AuditEntry).values(at=now, actor=actor, action=action, target=target,
                                           details=details))

