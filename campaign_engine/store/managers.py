"""Relationship managers (客户经理): reads for the API and the CLI, and one manager's upsert.

Managers are imported like customers (`import managers FILE.csv`, store.upsert by manager_id);
a customer whose manager_id is unknown or inactive is planned into the branch queue (store.tasks).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from .models import Manager
from .upsert import upsert_rows

_COLUMNS = list(Manager.__table__.c)


def get_manager(conn: Connection, manager_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(*_COLUMNS).where(Manager.manager_id == manager_id)).mappings().first()
    return dict(row) if row else None


def list_managers(conn: Connection, *, branch: str | None = None, active: bool | None = None,
                  after: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Managers in id order after a keyset cursor (the primary key), by branch (indexed) and active."""
    query = select(*_COLUMNS).order_by(Manager.manager_id).limit(limit)
    if after:
        query = query.where(Manager.manager_id > after)
    if branch is not None:
        query = query.where(Manager.branch == branch)
    if active is not None:
        query = query.where(Manager.active == active)
    return [dict(r) for r in conn.execute(query).mappings()]


def upsert_manager(conn: Connection, row: dict[str, Any], now: dt.datetime, source: str) -> dict[str, Any]:
    """Create or update one manager from a typed row (imports.parse_row("managers", ...)); returns it stored."""
    upsert_rows(conn, "managers", [row], now=now, source=source)
    stored = get_manager(conn, row["manager_id"])
    assert stored is not None
    return stored
