"""Relationship managers (客户经理): reads for the API and the CLI, one manager's upsert, and the
open tasks of a manager who is no longer active moved to the branch queues.

Managers are imported like customers (`import managers FILE.csv`, store.upsert by manager_id);
a customer whose manager_id is unknown or inactive is planned into the branch queue (store.tasks),
and requeue_open_tasks moves what such a manager still has there too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import Connection, exists, func, select, update

from ..vocabulary import TaskStatus
from . import audit
from .models import Customer, Manager, Task
from .tasks import release
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


def manager_ids(conn: Connection, *, active: bool | None = None) -> list[str]:
    """Every manager id (did-you-mean suggestions for a mistyped one)."""
    query = select(Manager.manager_id).order_by(Manager.manager_id)
    if active is not None:
        query = query.where(Manager.active == active)
    return list(conn.execute(query).scalars())


def _not_active(manager_id: Any) -> Any:
    """No active manager of that id: inactive, or not (any more) in the managers table."""
    return ~exists().where(Manager.manager_id == manager_id, Manager.active.is_(True))


def requeue_open_tasks(conn: Connection, manager_ids: Sequence[str] | None, *, actor: str, now: dt.datetime,
                       tz: dt.tzinfo, reason: str) -> list[dict[str, Any]]:
    """Move the open tasks of these managers (None: of every manager) who are not active, or not
    known, to the branch queue of each task's customer's branch (the task's own branch when the
    customer is not known): the queue a customer without an active manager is planned into. Each
    move gives the manager's reserved day back (manager_load; a queue has no limit) and is audited
    as `tasks.requeue`. In the caller's transaction; returns the tasks moved (id, from_manager,
    branch)."""
    if manager_ids is None:
        query = (select(Task.manager_id).distinct()
                 .where(Task.status == TaskStatus.OPEN.value, Task.manager_id.is_not(None), _not_active(Task.manager_id)))
        ids = sorted(m for m in conn.execute(query).scalars() if m)
    else:
        ids = sorted(set(manager_ids))
    customer_branch = (select(Customer.branch).where(Customer.customer_id == Task.customer_id)
                       .scalar_subquery())
    moved: list[dict[str, Any]] = []
    for manager_id in ids:
        rows = conn.execute(
            update(Task).where(Task.manager_id == manager_id, Task.status == TaskStatus.OPEN.value,
                               _not_active(manager_id))
            .values(manager_id=None, branch=func.coalesce(customer_branch, Task.branch), updated_at=now)
            .returning(Task.id, Task.type, Task.due_at, Task.branch, Task.customer_id, Task.rule_id)).mappings().all()
        for row in sorted(rows, key=lambda r: r["id"]):
            release(conn, manager_id, row["due_at"].astimezone(tz).date(), row["type"])
            audit.record(conn, actor=actor, action="tasks.requeue", target=f"task:{row['id']}", now=now, details={
                "from_manager": manager_id, "branch": row["branch"], "customer_id": row["customer_id"],
                "rule": row["rule_id"], "type": row["type"], "reason": reason})
            moved.append({"id": row["id"], "from_manager": manager_id, "branch": row["branch"]})
    return moved
