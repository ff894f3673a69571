"""Manager tasks as a run plans them: managers, the day's capacity reservations, open tasks that a
repeated alert merges into, and the task rows themselves (store.task_list works the list)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..vocabulary import TaskStatus
from .models import Manager, ManagerLoad, Task

def managers_of(conn: Connection, manager_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted({m for m in manager_ids if m})
    if not ids:
        return {}
    rows = conn.execute(select(Manager.manager_id, Manager.name, Manager.branch, Manager.active,
                               Manager.daily_call_capacity, Manager.daily_visit_capacity)
                        .where(Manager.manager_id.in_(ids))).mappings()
    return {r["manager_id"]: dict(r) for r in rows}


def load_of(conn: Connection, owners: Iterable[str], days: Iterable[dt.date], type_: str) -> dict[tuple[str, dt.date], int]:
    """Tasks already planned per (owner, day) of one type."""
    owners, days = sorted(set(owners)), sorted(set(days))
    if not owners or not days:
        return {}
    rows = conn.execute(select(ManagerLoad.owner, ManagerLoad.day, ManagerLoad.planned)
                        .where(ManagerLoad.owner.in_(owners), ManagerLoad.day.in_(days), ManagerLoad.type == type_))
    return {(r.owner, r.day): int(r.planned) for r in rows}


def reserve(conn: Connection, owner: str, day: dt.date, type_: str, capacity: int | None) -> bool:
    """One more task for `owner` on `day`, if it has room (`capacity` None: a queue, no limit).
    A conditional UPDATE (or the first INSERT of the day), so concurrent shards never overbook."""
    where = [ManagerLoad.owner == owner, ManagerLoad.day == day, ManagerLoad.type == type_]
    if capacity is not None:
        where.append(ManagerLoad.planned < capacity)
    for _ in range(2):
        if conn.execute(update(ManagerLoad).where(*where).values(planned=ManagerLoad.planned + 1)).rowcount:
            return True
        exists = conn.execute(select(ManagerLoad.planned).where(*where[:3])).first()
        if exists is not None or (capacity is not None and capacity < 1):
            return False
        try:
            with conn.begin_nested():
                conn.execute(insert(ManagerLoad).values(owner=owner, day=day, type=type_, planned=1))
            return True
        except IntegrityError:  # another shard inserted the day first: take the UPDATE path again
            continue
    return False


def release(conn: Connection, owner: str, day: dt.date, type_: str) -> None:
    """Give a reservation back (its task turned out to exist already)."""
    conn.execute(update(ManagerLoad).where(ManagerLoad.owner == owner, ManagerLoad.day == day,
                                           ManagerLoad.type == type_, ManagerLoad.planned > 0)
                 .values(planned=ManagerLoad.planned - 1))


def open_tasks_for(conn: Connection, rule_id: str, customer_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """This rule's open tasks of these customers, by (customer, type): what a repeated alert merges into."""
    if not customer_ids:
        return {}
    rows = conn.execute(select(Task.id, Task.customer_id, Task.type, Task.priority, Task.alerts, Task.due_at)
                        .where(Task.customer_id.in_(sorted(set(customer_ids))), Task.rule_id == rule_id,
                               Task.status == TaskStatus.OPEN.value)).mappings()
    return {(r["customer_id"], r["type"]): dict(r) for r in rows}


def merge_alert(conn: Connection, task_id: int, *, talking_points: str | None, priority: int,
                now: dt.datetime) -> bool:
    """A repeated alert joins its open task: counted, the latest talking points, the higher priority."""
    task = conn.execute(select(Task.priority).where(Task.id == task_id, Task.status == TaskStatus.OPEN.value)).first()
    if task is None:
        return False
    conn.execute(update(Task).where(Task.id == task_id).values(
        alerts=Task.alerts + 1, talking_points=talking_points, priority=max(int(task.priority), priority),
        last_alert_at=now, updated_at=now))
    return True


def planned_tasks(conn: Connection, customer_ids: Sequence[str], since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]:
    """Marketing tasks of these customers due since `since` (not cancelled): the task caps count them."""
    if not customer_ids:
        return {}
    rows = conn.execute(select(Task.customer_id, Task.type, Task.due_at)
                        .where(Task.customer_id.in_(sorted(set(customer_ids))), Task.category == "marketing",
                               Task.status != TaskStatus.CANCELLED.value, Task.due_at >= since))
    out: dict[tuple[str, str], list[dt.datetime]] = {}
    for r in rows:
        out.setdefault((r.customer_id, r.type), []).append(r.due_at)
    return out


def existing_tasks(conn: Connection, dedupe_keys: Sequence[str]) -> dict[str, int]:
    """Idempotency keys that already have a task: key -> the run that wrote it."""
    if not dedupe_keys:
        return {}
    rows = conn.execute(select(Task.dedupe_key, Task.run_id).where(Task.dedupe_key.in_(list(dedupe_keys))))
    return {r.dedupe_key: int(r.run_id) for r in rows}


def insert_tasks(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert tasks; a row whose key exists is skipped (the unique key is the real guard)."""
    if not rows:
        return set()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(Task).on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(Task.dedupe_key))
    return set(conn.execute(stmt, list(rows)).scalars())


__all__ = ["managers_of", "load_of", "reserve", "release", "open_tasks_for", "merge_alert",
           "planned_tasks", "existing_tasks", "insert_tasks"]
