"""Working the relationship managers' task list (issue #12): what the API, the CLI and the scheduler
call once a run has planned calls (电联) and visits (面谈). pipeline.task_planning plans them.

- Who sees what: a manager (role manager, a key bound to a manager id) sees and closes only the
  tasks whose manager is their own; any other task, a branch queue's included, does not exist for
  them (NotFound, never Refused, so an answer never tells that it exists). Other roles see every
  task; the task's own manager, operators and admins close tasks (others: Refused).
- Closing: every outcome closes an open task `done` (completed_at, completed_by, outcome, note,
  next_contact_on); in the same transaction `refused` withdraws the customer's phone-marketing
  consent (source `task:<id>`), `wrong_number` puts the mobile on the suppression list for calls (and SMS),
  `interested` and `converted` record a conversion `task:<id>:<outcome>` (type custom) that the
  effect report counts; all audited (`tasks.outcome`, and `consent.withdraw` / `suppression.add`).
- Assigning: operators and admins give an open task (a branch queue's, or another manager's) to an
  active manager; a manager key claims an open queue task of its own branch for itself. It takes a
  place on the manager's list on its due day (manager_load, as the planning reserves), audited
  `tasks.assign`. A manager made inactive hands their open tasks to the branch queues
  (store.managers.requeue_open_tasks, from the managers' PUT and import, audited `tasks.requeue`).
- The sweep (the scheduler, about once a minute): open tasks `sla_hours` past due are flagged
  overdue, open tasks `expire_days` past due expire, and after `digest_hour` each active manager
  with an email address and open tasks due that local day gets one digest email, through the
  outbox (dedupe key `digest|<manager>|<date>`), as a run of kind `digest`.

Lists are in due order (earliest first, then id): a work list is worked from the top. The cursor
(`next`) is opaque: the last task's due time and id.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import Conflict, NotFound, Problem, Refused, ValidationFailed
from ..masking import mask_mobile
from ..rulebook.suggestions import did_you_mean
from ..vocabulary import (PHONE_CONSENT, Category, Channel, ConversionType, MessageStatus, Role, RunKind,
                          TaskOutcome, TaskStatus)
from .services import Services

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
DIGEST_RULE = "tasks:digest"  # the rule_id of digest messages (no rule can have it: ':' is not allowed in ids)
DIGEST_KEY = "digest|{manager}|{date}"
TYPE_NAMES = {Channel.CALL.value: "电联", Channel.VISIT.value: "面谈"}
CLOSE_ROLES = frozenset({Role.OPERATOR, Role.ADMIN, Role.MANAGER})  # manager: its own tasks only
CONVERTING = frozenset({TaskOutcome.INTERESTED, TaskOutcome.CONVERTED})
MAX_NOTE = 2000


@dataclass(frozen=True)
class Viewer:
    """Who asks: the actor (the audit log, completed_by), the role, and for role manager the
    manager it acts as. A manager viewer without a manager id sees nothing (fail closed)."""

    actor: str
    role: str
    manager_id: str | None = None

    @property
    def scoped(self) -> bool:
        return self.role == Role.MANAGER

    def sees(self, task: Mapping[str, Any]) -> bool:
        return not self.scoped or (self.manager_id is not None and task.get("manager_id") == self.manager_id)


# --------------------------------------------------------------------------- list and show

@dataclass(frozen=True)
class TaskQuery:
    """The list's filters. `due_before`: an instant (exclusive), or a date: due on or before that
    local day. `overdue` True: open and flagged overdue. `queue` True: branch-queue tasks only."""

    manager_id: str | None = None
    branch: str | None = None
    status: str | None = None
    due_before: dt.date | dt.datetime | None = None
    overdue: bool | None = None
    queue: bool | None = None
    rule_id: str | None = None
    run_id: int | None = None
    customer_id: str | None = None
    after: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class TaskPage:
    items: list[dict[str, Any]]
    next: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next}


def cursor_of(task: Mapping[str, Any]) -> str:
    """A page's `next`: the last task's due time (microseconds since the epoch) and id."""
    return f"{(task['due_at'] - EPOCH) // dt.timedelta(microseconds=1)}_{task['id']}"


def parse_cursor(text: str) -> tuple[dt.datetime, int]:
    micros, sep, task_id = text.partition("_")
    try:
        if not sep or not all(p.isascii() and p.lstrip("-").isdigit() for p in (micros, task_id)):
            raise ValueError(text)
        return EPOCH + dt.timedelta(microseconds=int(micros)), int(task_id)
    except (ValueError, OverflowError):
        raise ValidationFailed([Problem("not a cursor this list produced: pass the `next` of the previous page",
                                        field="after")], what="task query") from None


def local_bound(value: dt.date | dt.datetime | None, tz: dt.tzinfo, *, upper: bool) -> dt.datetime | None:
    """A date or an instant as a UTC instant: a date is the start of that local day (of the next
    one for an upper bound, so the day is included); an aware instant as it is."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.combine(value + dt.timedelta(days=1) if upper else value, dt.time(), tz)
        except OverflowError:  # the day after 9999-12-31: no bound
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=UTC) if upper else dt.datetime.min.replace(tzinfo=UTC)


def present(services: Services, task: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """A stored task as answered: its rule's name, the type in Chinese, the due time in the
    configured time zone, whether it is overdue now. `mobile` is the stored number: the entry
    point masks it as its medium's policy says."""
    out = {k: v for k, v in task.items() if k != "customer_known"}
    rule = services.rulebook.get(task["rule_id"])
    out["rule_name"] = rule.name if rule is not None else None
    out["type_name"] = TYPE_NAMES.get(task["type"], task["type"])
    out["due_local"] = task["due_at"].astimezone(services.settings.tz).isoformat()
    out["overdue"] = task["status"] == TaskStatus.OPEN.value and task.get("overdue_at") is not None
    return out


def list_tasks(services: Services, query: TaskQuery, viewer: Viewer) -> TaskPage:
    """A page of tasks in due order. A manager's list is their own tasks: `manager_id` naming
    another manager is NotFound (their tasks do not exist for this key)."""
    manager_id = query.manager_id
    if viewer.scoped:
        if manager_id is not None and manager_id != viewer.manager_id:
            raise NotFound("manager", manager_id)
        if viewer.manager_id is None:
            return TaskPage([], None)
        manager_id = viewer.manager_id
    rows = services.store.task_page(
        manager_id=manager_id, queue=query.queue, branch=query.branch, status=query.status,
        due_before=local_bound(query.due_before, services.settings.tz, upper=True), overdue=query.overdue,
        rule_id=query.rule_id, run_id=query.run_id, customer_id=query.customer_id,
        after=parse_cursor(query.after) if query.after else None, limit=query.limit)
    items = [present(services, row) for row in rows]
    return TaskPage(items, cursor_of(rows[-1]) if len(rows) == query.limit else None)


def _stored(services: Services, task_id: int, viewer: Viewer) -> dict[str, Any]:
    task = services.store.task(task_id)
    if task is None or not viewer.sees(task):
        raise NotFound("task", task_id)
    return task


def get_task(services: Services, task_id: int, viewer: Viewer) -> dict[str, Any]:
    """One task (NotFound for a task this viewer may not see, exactly as for one that does not exist)."""
    return present(services, _stored(services, task_id, viewer))


# --------------------------------------------------------------------------- outcomes

@dataclass(frozen=True)
class OutcomeRequest:
    outcome: TaskOutcome
    note: str | None = None
    next_contact_on: dt.date | None = None


def outcome_effects(task: Mapping[str, Any], outcome: TaskOutcome, *, now: dt.datetime) -> dict[str, Any]:
    """What closing `task` with `outcome` also changes (applied with the closing, in its transaction)."""
    source = f"task:{task['id']}"
    known = bool(task.get("customer_known"))
    effects: dict[str, Any] = {}
    if outcome is TaskOutcome.REFUSED and known:
        effects["consent"] = {"customer_id": task["customer_id"], "channel": PHONE_CONSENT, "source": source}
    if outcome is TaskOutcome.WRONG_NUMBER and task.get("mobile"):
        effects["suppress"] = {"channel": Channel.CALL.value, "address": task["mobile"],
                               "reason": TaskOutcome.WRONG_NUMBER.value, "source": source}
    if outcome in CONVERTING and known:
        effects["conversion"] = {"conversion_id": f"{source}:{outcome.value}", "customer_id": task["customer_id"],
                                 "type": ConversionType.CUSTOM.value, "product_code": None, "amount": None,
                                 "occurred_at": now, "source": source}
    return effects


def _audit_entries(task: Mapping[str, Any], request: OutcomeRequest, effects: Mapping[str, Any],
                   viewer: Viewer) -> list[dict[str, Any]]:
    target = f"task:{task['id']}"
    entries = [{"actor": viewer.actor, "action": "tasks.outcome", "target": target, "details": {
        "outcome": request.outcome.value, "rule": task["rule_id"], "type": task["type"],
        "customer_id": task["customer_id"], "manager_id": task["manager_id"], "note": bool(request.note),
        "next_contact_on": request.next_contact_on.isoformat() if request.next_contact_on else None}}]
    if "consent" in effects:  # as the consent API records a withdrawal
        entries.append({"actor": viewer.actor, "action": "consent.withdraw",
                        "target": f"{task['customer_id']}:{PHONE_CONSENT}",
                        "details": {"source": effects["consent"]["source"]}})
    if "suppress" in effects:
        entries.append({"actor": viewer.actor, "action": "suppression.add", "target": Channel.CALL.value,
                        "details": {"reason": effects["suppress"]["reason"], "source": effects["suppress"]["source"],
                                    "address": mask_mobile(effects["suppress"]["address"])}})
    return entries


def record_outcome(services: Services, task_id: int, request: OutcomeRequest, viewer: Viewer, *,
                   now: dt.datetime) -> dict[str, Any]:
    """Close an open task with its outcome and apply the outcome's effects, in one transaction.
    Refused for roles that do not close tasks; NotFound for a task the viewer may not see;
    Conflict when it is not open (any more)."""
    if viewer.role not in CLOSE_ROLES:
        raise Refused(f"role {viewer.role} may not close tasks (the task's own manager, operators and admins may)")
    problems = []
    today = now.astimezone(services.settings.tz).date()
    if request.next_contact_on is not None and request.next_contact_on < today:
        problems.append(Problem(f"next_contact_on must be today ({today.isoformat()}) or later",
                                field="next_contact_on"))
    if request.note is not None and len(request.note) > MAX_NOTE:
        problems.append(Problem(f"at most {MAX_NOTE} characters", field="note"))
    if problems:
        raise ValidationFailed(problems, what="task outcome")
    task = _stored(services, task_id, viewer)
    if task["status"] != TaskStatus.OPEN.value:
        raise Conflict(f"task {task_id} is {task['status']}, not open: only an open task takes an outcome")
    effects = outcome_effects(task, request.outcome, now=now)
    services.store.close_task(task_id, outcome=request.outcome.value, note=request.note or None,
                              next_contact_on=request.next_contact_on, by=viewer.actor, now=now,
                              manager_id=viewer.manager_id if viewer.scoped else None, effects=effects,
                              audit_entries=_audit_entries(task, request, effects, viewer))
    return present(services, _stored(services, task_id, viewer))


# --------------------------------------------------------------------------- assignment

@dataclass(frozen=True)
class AssignRequest:
    manager_id: str
    note: str | None = None


ASSIGN_ROLES = CLOSE_ROLES  # manager: claims a queue task of its own branch, for itself


def _assignable(services: Services, task_id: int, viewer: Viewer, manager_id: str) -> dict[str, Any]:
    """The task as the viewer may assign it. A manager key sees its own tasks and, to claim them,
    its branch's queue tasks; any other task does not exist for it (NotFound), and it claims for
    itself only (Refused)."""
    task = services.store.task(task_id)
    if task is None:
        raise NotFound("task", task_id)
    if not viewer.scoped:
        return task
    own = services.store.task_managers([viewer.manager_id]).get(viewer.manager_id or "") if viewer.manager_id else None
    claimable = (own is not None and task["manager_id"] is None and bool(own["branch"])
                 and task["branch"] == own["branch"])
    if not (viewer.sees(task) or claimable):
        raise NotFound("task", task_id)
    if manager_id != viewer.manager_id:
        raise Refused(f"a manager key claims a branch queue task for itself only: `manager` must be "
                      f"{viewer.manager_id}")
    return task


def assign_task(services: Services, task_id: int, request: AssignRequest, viewer: Viewer, *,
                now: dt.datetime) -> dict[str, Any]:
    """Give an open task to an active manager: operators and admins any open task (a branch queue's,
    or another manager's: reassigned) to any active manager; a manager key an open queue task of its
    own branch to itself (a claim). Audited as `tasks.assign` (from, to, the note).

    Capacity: the task takes a place on the manager's list on its due day, reserved in
    `manager_load` like the planning's own (one conditional UPDATE: a full day is Conflict, 409,
    never overbooked), and the previous manager's place on that day is given back. A task already
    past its due day (overdue in a queue) is counted on that day without a limit: that day's
    capacity is spent, and the point is that someone calls now.

    Refused for roles that do not close tasks; NotFound for a task the viewer may not see;
    ValidationFailed (400) naming an unknown manager (with a did-you-mean) or an inactive one;
    Conflict when the task is not open (any more) or was assigned meanwhile."""
    if viewer.role not in ASSIGN_ROLES:
        raise Refused(f"role {viewer.role} may not assign tasks (operators and admins may; a manager claims "
                      "its own branch's queue tasks)")
    if request.note is not None and len(request.note) > MAX_NOTE:
        raise ValidationFailed([Problem(f"at most {MAX_NOTE} characters", field="note")], what="task assignment")
    task = _assignable(services, task_id, viewer, request.manager_id)
    manager = services.store.task_managers([request.manager_id]).get(request.manager_id)
    if manager is None:
        hint = did_you_mean(request.manager_id, services.store.task_manager_ids())
        raise ValidationFailed([Problem(f"unknown manager {request.manager_id!r}{hint}", field="manager")],
                               what="task assignment")
    if not manager["active"]:
        raise ValidationFailed([Problem(f"manager {request.manager_id} is inactive: tasks go to active managers "
                                        "only", field="manager")], what="task assignment")
    if task["status"] != TaskStatus.OPEN.value:
        raise Conflict(f"task {task_id} is {task['status']}, not open: only an open task is assigned")
    if task["manager_id"] == request.manager_id:  # already theirs: nothing changes
        return present(services, task)
    tz = services.settings.tz
    day = task["due_at"].astimezone(tz).date()
    capacity = manager["daily_call_capacity" if task["type"] == Channel.CALL.value else "daily_visit_capacity"]
    limit = int(capacity) if day >= now.astimezone(tz).date() else None
    entry = {"actor": viewer.actor, "action": "tasks.assign", "target": f"task:{task_id}", "details": {
        "from_manager": task["manager_id"], "to_manager": request.manager_id, "branch": task["branch"],
        "customer_id": task["customer_id"], "rule": task["rule_id"], "type": task["type"],
        "due_day": day.isoformat(), "claimed": viewer.scoped, "note": request.note or None}}
    services.store.assign_task(task_id, manager_id=request.manager_id, expected=task["manager_id"], day=day,
                               type_=task["type"], capacity=limit, now=now, audit_entries=[entry])
    return present(services, _stored(services, task_id, viewer))


# --------------------------------------------------------------------------- overdue, expiry

def flag_overdue(services: Services, now: dt.datetime) -> int:
    """Flag open tasks whose due_at + sla_hours is before `now` (once each); how many now."""
    return services.store.flag_overdue_tasks(now, dt.timedelta(hours=services.settings.tasks.sla_hours))


def expire(services: Services, now: dt.datetime) -> int:
    """Open tasks due more than expire_days before `now` become expired; how many."""
    return services.store.expire_tasks(now, dt.timedelta(days=services.settings.tasks.expire_days))


# --------------------------------------------------------------------------- the daily digest

@dataclass(frozen=True)
class DigestResult:
    run_id: int | None = None
    written: int = 0  # digest emails written to the outbox now
    managers: list[str] = field(default_factory=list)


def _local_day(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tz)
    return start.astimezone(UTC), dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(UTC)


def digest_text(services: Services, manager: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]],
                day: dt.date) -> tuple[str, str]:
    """The digest's subject and plain-text body: the day's open tasks in due order."""
    tz = services.settings.tz
    lines = [f"{manager['name']}，您好：", "",
             f"{day.year}年{day.month}月{day.day}日 您有 {len(tasks)} 项客户跟进任务：", ""]
    for n, task in enumerate(tasks, 1):
        rule = services.rulebook.get(task["rule_id"])
        lines.append(f"{n}. {task['due_at'].astimezone(tz):%H:%M} {TYPE_NAMES.get(task['type'], task['type'])} "
                     f"{task['customer_name'] or task['customer_id']}（{task['customer_id']}） "
                     f"{rule.name if rule is not None else task['rule_id']}（任务 {task['id']}）")
    lines += ["", "谈话要点和客户信息见任务列表；每项任务完成后请记录结果。"]
    return f"今日客户跟进任务（{len(tasks)}项）", "\n".join(lines) + "\n"


def send_digests(services: Services, now: dt.datetime) -> DigestResult:
    """At or after `digest_hour` (local), one email to each active manager with an email address and
    open tasks due today, once per manager and local day (the outbox's dedupe key): recorded as a
    run of kind digest whose messages the delivery worker sends like any other."""
    tz = services.settings.tz
    local = now.astimezone(tz)
    if local.time() < services.settings.tasks.digest_hour:
        return DigestResult()
    day = local.date()
    start, end = _local_day(day, tz)
    prefix, suffix = DIGEST_KEY.split("{manager}")
    suffix = suffix.format(date=day.isoformat())
    due = services.store.digest_due(start=start, end=end, key_prefix=prefix, key_suffix=suffix)
    if not due:
        return DigestResult()
    by_manager: dict[str, list[dict[str, Any]]] = {}
    for task in services.store.digest_tasks([m["manager_id"] for m in due], start=start, end=end):
        by_manager.setdefault(task["manager_id"], []).append(task)
    rows = []
    for manager in due:
        tasks = by_manager.get(manager["manager_id"])
        if not tasks:  # closed since the first read
            continue
        subject, body = digest_text(services, manager, tasks, day)
        rows.append({
            "dedupe_key": DIGEST_KEY.format(manager=manager["manager_id"], date=day.isoformat()),
            "rule_id": DIGEST_RULE, "rule_version": None, "category": Category.SERVICE.value, "priority": 0,
            "customer_id": manager["manager_id"], "subject_type": "manager", "subject_id": manager["manager_id"],
            "channel": Channel.EMAIL.value, "recipient": manager["email"], "status": MessageStatus.QUEUED.value,
            "held_out_by": None, "subject": subject, "body": body, "html": None, "sms_segments": None,
            "error": None, "consent_source": None, "consent_at": None, "created_at": now, "due_at": now})
    if not rows:
        return DigestResult()
    run_id, written = services.store.record_digest(kind=RunKind.DIGEST, run_date=day, now=now, rule_id=DIGEST_RULE,
                                                   rows=rows)
    return DigestResult(run_id, written, [r["subject_id"] for r in rows] if written else [])


# --------------------------------------------------------------------------- the sweep

def sweep(services: Services, now: dt.datetime) -> dict[str, int]:
    """What the scheduler runs about once a minute: overdue flags, expiry, the daily digest. A step
    that fails is logged and the others still run."""
    done: dict[str, int] = {}
    steps = (("overdue", lambda: flag_overdue(services, now)), ("expired", lambda: expire(services, now)),
             ("digests", lambda: send_digests(services, now).written))
    for name, step in steps:
        try:
            done[name] = step()
        except Exception:
            log.exception("task sweep: %s failed", name)
    if any(done.values()):
        log.info("task sweep: %s", ", ".join(f"{k} {v}" for k, v in done.items() if v))
    return done


# --------------------------------------------------------------------------- reports

@dataclass(frozen=True)
class ReportRequest:
    rule_id: str | None = None
    run_id: int | None = None
    manager_id: str | None = None
    date_from: dt.date | None = None  # tasks created on these local days (to included)
    date_to: dt.date | None = None


STATUSES = tuple(s.value for s in TaskStatus)


def _empty() -> dict[str, Any]:
    return {"created": 0, **{s: 0 for s in STATUSES}, "overdue": 0, "overdue_open": 0, "by_outcome": {},
            "conversion_rate": None}


def _fold(into: dict[str, Any], row: Mapping[str, Any]) -> None:
    n = int(row["n"])
    into["created"] += n
    if row["status"] in into:
        into[row["status"]] += n
    if row["flagged"]:
        into["overdue"] += n
        if row["status"] == TaskStatus.OPEN.value:
            into["overdue_open"] += n
    if row["outcome"]:
        into["by_outcome"][row["outcome"]] = into["by_outcome"].get(row["outcome"], 0) + n


def _rate(counts: dict[str, Any]) -> dict[str, Any]:
    done = counts[TaskStatus.DONE.value]
    counts["conversion_rate"] = round(counts["by_outcome"].get(TaskOutcome.CONVERTED.value, 0) / done, 6) if done else None
    return counts


def task_report(services: Services, request: ReportRequest, viewer: Viewer) -> dict[str, Any]:
    """Per rule: tasks created, open, done, cancelled, expired, overdue (ever flagged; overdue_open:
    still open), by outcome. Per manager (and per branch queue): the same, and the conversion rate
    (converted / done). A manager sees their own figures only (another manager: NotFound)."""
    manager_id = request.manager_id
    if viewer.scoped:
        if manager_id is not None and manager_id != viewer.manager_id:
            raise NotFound("manager", manager_id)
        manager_id = viewer.manager_id
    if viewer.scoped and manager_id is None:  # a manager key bound to nobody sees nothing
        return {"rule": request.rule_id, "run": request.run_id, "manager": None, "from": None, "to": None,
                "rules": [], "managers": []}
    if request.date_from and request.date_to and request.date_from > request.date_to:
        raise ValidationFailed([Problem("`from` is after `to`", field="from")], what="task report")
    tz = services.settings.tz
    filters = {"rule_id": request.rule_id, "run_id": request.run_id, "manager_id": manager_id,
               "created_from": local_bound(request.date_from, tz, upper=False),
               "created_to": local_bound(request.date_to, tz, upper=True)}
    rules: dict[str, dict[str, Any]] = {}
    for row in services.store.task_report_counts(by="rule", **filters):
        _fold(rules.setdefault(row["rule_id"], _empty()), row)
    managers: dict[tuple[int, str], dict[str, Any]] = {}
    for row in services.store.task_report_counts(by="manager", **filters):
        key = (0, row["manager_id"]) if row["manager_id"] else (1, row["branch"] or "")
        _fold(managers.setdefault(key, _empty()), row)
    names = services.store.task_manager_names([m for queue, m in managers if not queue])
    rule_rows = []
    for rule_id in sorted(rules):
        rule = services.rulebook.get(rule_id)
        rule_rows.append({"rule": rule_id, "name": rule.name if rule is not None else None,
                          **({"run": request.run_id} if request.run_id else {}), **_rate(rules[rule_id])})
    manager_rows = []
    for (queue, ident) in sorted(managers):
        known = names.get(ident, {}) if not queue else {}
        manager_rows.append({"manager_id": None if queue else ident, "name": known.get("name"),
                             "branch": ident if queue else known.get("branch"), "queue": bool(queue),
                             **_rate(managers[(queue, ident)])})
    return {"rule": request.rule_id, "run": request.run_id, "manager": manager_id if request.manager_id or
            viewer.scoped else None, "from": request.date_from.isoformat() if request.date_from else None,
            "to": request.date_to.isoformat() if request.date_to else None,
            "rules": rule_rows, "managers": manager_rows}
