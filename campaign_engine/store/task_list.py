"""Working the task list (issue #12): managers' tasks listed and shown, closed with an outcome (and
its effects: phone consent, the call suppression list, a conversion), flagged overdue, expired, the
daily digest's reads, and the reports' aggregates. store.tasks holds what a run plans.

Every function runs on the caller's connection or transaction; SqlStore (sql_store.py) opens them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, and_, exists, func, literal, or_, select, update

from ..vocabulary import TaskStatus
from . import conversions, customers, suppression
from .bulk import one_of
from .models import Customer, Manager, Message, Task

OPEN = TaskStatus.OPEN.value

_COLUMNS = (Task.id, Task.dedupe_key, Task.run_id, Task.rule_id, Task.rule_version, Task.category, Task.priority,
            Task.customer_id, Task.subject_type, Task.subject_id, Task.type, Task.manager_id, Task.branch,
            Task.status, Task.due_at, Task.created_at, Task.updated_at, Task.completed_at, Task.completed_by,
            Task.outcome, Task.note, Task.next_contact_on, Task.talking_points, Task.alerts, Task.last_alert_at,
            Task.overdue_at)


def _overdue_now() -> Any:
    """Overdue now: still open and flagged by the sweep (a closed task keeps its overdue_at: done late)."""
    return and_(Task.status == OPEN, Task.overdue_at.is_not(None))


def query_tasks(conn: Connection, *, task_id: int | None = None, manager_id: str | None = None,
                queue: bool | None = None, branch: str | None = None, status: str | None = None,
                due_before: dt.datetime | None = None, overdue: bool | None = None, rule_id: str | None = None,
                run_id: int | None = None, customer_id: str | None = None,
                after: tuple[dt.datetime, int] | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Tasks in due order (due_at, then id), with the customer's name and mobile and the manager's
    name; `after` is the (due_at, id) of the last task of the previous page. `queue` True: the branch
    queues' tasks only (no manager), False: assigned ones only. Served by ix_tasks_manager_status_due,
    ix_tasks_branch_status_due and ix_tasks_status_due."""
    query = (select(*_COLUMNS, Customer.name.label("customer_name"), Customer.mobile.label("mobile"),
                    Customer.customer_id.is_not(None).label("customer_known"),
                    Manager.name.label("manager_name"))
             .select_from(Task)
             .outerjoin(Customer, Customer.customer_id == Task.customer_id)
             .outerjoin(Manager, Manager.manager_id == Task.manager_id))
    where: list[Any] = []
    if task_id is not None:
        where.append(Task.id == task_id)
    if manager_id is not None:
        where.append(Task.manager_id == manager_id)
    if queue is True:
        where.append(Task.manager_id.is_(None))
    elif queue is False:
        where.append(Task.manager_id.is_not(None))
    if branch is not None:
        where.append(Task.branch == branch)
    if status is not None:
        where.append(Task.status == status)
    if due_before is not None:
        where.append(Task.due_at < due_before)
    if overdue is True:
        where.append(_overdue_now())
    elif overdue is False:
        where.append(or_(Task.status != OPEN, Task.overdue_at.is_(None)))
    if rule_id is not None:
        where.append(Task.rule_id == rule_id)
    if run_id is not None:
        where.append(Task.run_id == run_id)
    if customer_id is not None:
        where.append(Task.customer_id == customer_id)
    if after is not None:
        due, last_id = after
        where.append(or_(Task.due_at > due, and_(Task.due_at == due, Task.id > last_id)))
    rows = conn.execute(query.where(*where).order_by(Task.due_at, Task.id).limit(limit)).mappings()
    return [dict(r) for r in rows]


def close_task(conn: Connection, task_id: int, *, outcome: str, note: str | None, next_contact_on: dt.date | None,
               by: str, now: dt.datetime, manager_id: str | None = None) -> bool:
    """open -> done with the outcome, only if still open (and, for a manager, still theirs): one
    conditional UPDATE, so of two closings exactly one applies."""
    where = [Task.id == task_id, Task.status == OPEN]
    if manager_id is not None:
        where.append(Task.manager_id == manager_id)
    result = conn.execute(update(Task).where(*where).values(
        status=TaskStatus.DONE.value, outcome=outcome, note=note, next_contact_on=next_contact_on,
        completed_at=now, completed_by=by[:64], updated_at=now))
    return result.rowcount == 1


def assign(conn: Connection, task_id: int, *, manager_id: str, expected: str | None, now: dt.datetime) -> bool:
    """An open task to `manager_id`, only if still open and still `expected`'s (None: a branch
    queue's): one conditional UPDATE, so of two assignments (two managers claiming one queue task)
    exactly one applies."""
    owner = Task.manager_id.is_(None) if expected is None else Task.manager_id == expected
    result = conn.execute(update(Task).where(Task.id == task_id, Task.status == OPEN, owner)
                          .values(manager_id=manager_id, updated_at=now))
    return result.rowcount == 1


def apply_effects(conn: Connection, effects: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """An outcome's effects, in the caller's transaction: `consent` {customer_id, channel, source}
    withdrawn (customers.withdraw_marketing, as the consent API does: granted false, source, time; the
    customer's other open marketing tasks cancelled);
    `suppress` {channel, address, reason, source} on the suppression list; `conversion` {conversion_id,
    customer_id, type, occurred_at, source} recorded once. Returns what was done."""
    done: dict[str, Any] = {}
    if consent := effects.get("consent"):
        # as the consent API withdraws it: the customer's other open marketing calls and visits go too
        done["cancelled_tasks"] = customers.withdraw_marketing(conn, consent["customer_id"], consent["channel"],
                                                               source=consent["source"], now=now,
                                                               route="task_refused")
        done["consent_withdrawn"] = consent["channel"]
    if entry := effects.get("suppress"):
        suppression.add(conn, channel=entry["channel"], address=entry["address"], reason=entry["reason"],
                        source=entry["source"], now=now)
        done["suppressed"] = entry["channel"]
    if conversion := effects.get("conversion"):
        recorded = conversions.insert_conversions(conn, [conversion], source=conversion["source"], now=now)
        done["conversion"] = conversion["conversion_id"] if recorded else None
    return done


def flag_overdue(conn: Connection, *, now: dt.datetime, sla: dt.timedelta) -> int:
    """Open tasks due more than `sla` ago get overdue_at (once); how many were flagged now."""
    return conn.execute(update(Task).where(Task.status == OPEN, Task.overdue_at.is_(None), Task.due_at < now - sla)
                        .values(overdue_at=now, updated_at=now)).rowcount


def expire(conn: Connection, *, now: dt.datetime, older_than: dt.timedelta) -> int:
    """Open tasks due more than `older_than` ago become expired; how many."""
    return conn.execute(update(Task).where(Task.status == OPEN, Task.due_at < now - older_than)
                        .values(status=TaskStatus.EXPIRED.value, updated_at=now)).rowcount


# --------------------------------------------------------------------------- the daily digest

def digest_due(conn: Connection, *, start: dt.datetime, end: dt.datetime, key_prefix: str,
               key_suffix: str) -> list[dict[str, Any]]:
    """Active managers with an email address and an open task due in [start, end) whose digest
    (dedupe key `key_prefix + manager_id + key_suffix`) is not in the outbox yet. Per manager one
    probe of ix_tasks_manager_status_due and one of the messages' unique dedupe_key, so asking
    every minute costs little once the day's digests are out."""
    has_tasks = exists().where(Task.manager_id == Manager.manager_id, Task.status == OPEN,
                               Task.due_at >= start, Task.due_at < end)
    key = literal(key_prefix) + Manager.manager_id + literal(key_suffix)
    sent = exists().where(Message.dedupe_key == key)
    rows = conn.execute(select(Manager.manager_id, Manager.name, Manager.email, Manager.branch)
                        .where(Manager.active.is_(True), Manager.email.is_not(None), Manager.email != "",
                               has_tasks, ~sent)
                        .order_by(Manager.manager_id)).mappings()
    return [dict(r) for r in rows]


def digest_tasks(conn: Connection, manager_ids: Sequence[str], *, start: dt.datetime,
                 end: dt.datetime) -> list[dict[str, Any]]:
    """These managers' open tasks due in [start, end), by manager and due time, with the customer's name."""
    if not manager_ids:
        return []
    rows = conn.execute(select(Task.id, Task.manager_id, Task.due_at, Task.type, Task.rule_id, Task.priority,
                               Task.customer_id, Customer.name.label("customer_name"))
                        .outerjoin(Customer, Customer.customer_id == Task.customer_id)
                        .where(one_of(conn, Task.manager_id, list(manager_ids)), Task.status == OPEN,
                               Task.due_at >= start, Task.due_at < end)
                        .order_by(Task.manager_id, Task.due_at, Task.id)).mappings()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- reports

def _report_filters(*, rule_id: str | None, run_id: int | None, manager_id: str | None,
                    created_from: dt.datetime | None, created_to: dt.datetime | None) -> list[Any]:
    where: list[Any] = []
    if rule_id is not None:
        where.append(Task.rule_id == rule_id)
    if run_id is not None:
        where.append(Task.run_id == run_id)
    if manager_id is not None:
        where.append(Task.manager_id == manager_id)
    if created_from is not None:
        where.append(Task.created_at >= created_from)
    if created_to is not None:
        where.append(Task.created_at < created_to)
    return where


def report_counts(conn: Connection, *, by: str, rule_id: str | None = None, run_id: int | None = None,
                  manager_id: str | None = None, created_from: dt.datetime | None = None,
                  created_to: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Task counts grouped by `by` ("rule": rule_id; "manager": manager_id and, for the branch
    queues, branch), status, outcome and whether they were ever flagged overdue: one aggregate."""
    keys: Iterable[Any] = (Task.rule_id,) if by == "rule" else (Task.manager_id, Task.branch)
    flagged = Task.overdue_at.is_not(None)
    query = (select(*keys, Task.status, Task.outcome, flagged.label("flagged"), func.count().label("n"))
             .where(*_report_filters(rule_id=rule_id, run_id=run_id, manager_id=manager_id,
                                     created_from=created_from, created_to=created_to))
             .group_by(*keys, Task.status, Task.outcome, flagged))
    return [dict(r) for r in conn.execute(query).mappings()]


def manager_names(conn: Connection, manager_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted({m for m in manager_ids if m})
    if not ids:
        return {}
    rows = conn.execute(select(Manager.manager_id, Manager.name, Manager.branch)
                        .where(one_of(conn, Manager.manager_id, ids))).mappings()
    return {r["manager_id"]: dict(r) for r in rows}
