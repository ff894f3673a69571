"""Relationship-manager tasks: a manager's work list (today's calls and visits, overdue first) with
the talking points and the outcome form; one task; a supervisor's overdue list by branch and manager.

The same domain functions as the API's /api/v1/tasks (pipeline/tasks.py): a manager sees and closes
only their own customers' tasks (another's is 404, exactly as one that does not exist), the outcome's
effects (refused withdraws the phone consent, wrong_number puts the mobile on the call suppression
list, which stops SMS to it too, interested/converted count as conversions) and its audit entries are record_outcome's. The
mobile number is shown as the API shows it to the role (campaign_engine.masking).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...api.auth import READ, TASKS
from ...errors import Conflict, NotFound, Refused, ValidationFailed
from ...masking import ContactData, contact_access, shown
from ...pipeline import tasks as worklist
from ...store import managers as managers_store
from ...vocabulary import TaskOutcome, TaskStatus
from .. import auth
from ..blueprint import bp, t, today

OUTCOMES = [o.value for o in TaskOutcome]
CONTACT_FIELDS = ("mobile",)  # as the API's tasks views (TASK_CONTACT_FIELDS)
WORKLIST_LIMIT = 100  # open tasks of one manager up to a week ahead: more is a "more" note
OVERDUE_LIMIT = 50
SUPERVISOR_PAGE = 50
MANAGER_CHOICES = 300  # managers offered in the supervisor's filter
UPCOMING_DAYS = 7
QUEUE = "__queue__"  # the manager filter's "branch queue (no manager)"


def _viewer() -> worklist.Viewer:
    return worklist.Viewer(actor=g.actor, role=g.role, manager_id=g.get("manager_id"))


def _shown(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks with the mobile number as the API answers it to this role (no reveal in the console)."""
    decided = contact_access(g.role, reveal=False)
    return [shown(task, CONTACT_FIELDS, decided.contact_data) for task in tasks]


def may_close() -> bool:
    """The roles the domain lets close tasks (the task's own manager, operators, admins)."""
    return auth.can(TASKS) and g.role in worklist.CLOSE_ROLES


def _render(template: str, **values: Any) -> str:
    """A tasks page with what every one of them uses: the outcomes, who may close, the day."""
    full = contact_access(g.role, reveal=False).contact_data is ContactData.FULL
    return render_template(template, outcomes=OUTCOMES, may_close=may_close(), contact_full=full, day=today(),
                           **values)


def _local_day(task: dict[str, Any]) -> dt.date:
    due: dt.datetime = task["due_at"]
    return due.astimezone(g.services.settings.tz).date()


@bp.route("/tasks")
@auth.requires(TASKS)
def tasks() -> Any:
    if auth.is_manager():
        return _manager_worklist()
    if not auth.can(READ):
        abort(403)
    return _supervisor_list()


def _manager_worklist() -> Any:
    services, viewer, day = g.services, _viewer(), today()
    overdue = worklist.list_tasks(services, worklist.TaskQuery(status=TaskStatus.OPEN.value, overdue=True,
                                                                limit=OVERDUE_LIMIT), viewer)
    ahead = worklist.list_tasks(services, worklist.TaskQuery(
        status=TaskStatus.OPEN.value, overdue=False, due_before=day + dt.timedelta(days=UPCOMING_DAYS - 1),
        limit=WORKLIST_LIMIT), viewer)
    due_today = [task for task in ahead.items if _local_day(task) <= day]
    upcoming = [task for task in ahead.items if _local_day(task) > day]
    done = None
    done_id = request.args.get("done", type=int)
    if done_id:
        try:  # the task just closed, shown done at the top (only one of this manager's own)
            done = worklist.get_task(services, done_id, viewer)
        except NotFound:
            done = None
        if done is not None and done["status"] == TaskStatus.OPEN.value:
            done = None  # still open: it is in its list below
    return _render("console/tasks/worklist.html", overdue=_shown(overdue.items), due_today=_shown(due_today),
                   upcoming=_shown(upcoming), more=bool(overdue.next or ahead.next),
                   done=_shown([done])[0] if done else None, upcoming_days=UPCOMING_DAYS)


def _supervisor_list() -> Any:
    branch = (request.args.get("branch") or "").strip()[:64] or None
    chosen = (request.args.get("manager") or "").strip()[:32] or None
    after = request.args.get("after") or None
    query = worklist.TaskQuery(status=TaskStatus.OPEN.value, overdue=True, branch=branch,
                               manager_id=None if chosen == QUEUE else chosen,
                               queue=True if chosen == QUEUE else None, after=after, limit=SUPERVISOR_PAGE)
    try:
        page = worklist.list_tasks(g.services, query, _viewer())
    except ValidationFailed:  # a cursor this list did not produce: start from the top
        flash(t("tasks.error.cursor"), "error")
        return redirect(url_for("console.tasks", branch=branch, manager=chosen))
    with g.services.db.connect() as conn:
        choices = managers_store.list_managers(conn, branch=branch, limit=MANAGER_CHOICES)
        branches = sorted({m["branch"] for m in managers_store.list_managers(conn, limit=MANAGER_CHOICES)
                           if m["branch"]} | ({branch} if branch else set()))
    if chosen and chosen != QUEUE and chosen not in {m["manager_id"] for m in choices}:
        choices.append({"manager_id": chosen, "name": None, "branch": None})
    next_url = url_for("console.tasks", branch=branch, manager=chosen, after=page.next) if page.next else None
    return _render("console/tasks/overdue.html", items=_shown(page.items), branch=branch or "",
                   manager=chosen or "", managers=choices, branches=branches, queue=QUEUE, next_url=next_url,
                   first_page=after is None)


@bp.route("/tasks/<int:task_id>")
@auth.requires(TASKS)
def task(task_id: int) -> Any:
    try:
        found = worklist.get_task(g.services, task_id, _viewer())
    except NotFound:
        abort(404)
    return _render("console/tasks/task.html", task=_shown([found])[0])


@bp.route("/tasks/<int:task_id>/outcome", methods=["POST"])
@auth.requires(TASKS)
def record_outcome(task_id: int) -> Any:
    if not may_close():
        abort(403)
    back = url_for("console.task", task_id=task_id) if request.form.get("back") == "task" else url_for("console.tasks")
    try:
        outcome = TaskOutcome(request.form.get("outcome") or "")
    except ValueError:
        flash(t("tasks.error.outcome"), "error")
        return redirect(back)
    next_contact_on = None
    raw_date = (request.form.get("next_contact_on") or "").strip()
    if raw_date:
        try:
            next_contact_on = dt.date.fromisoformat(raw_date)
        except ValueError:
            flash(t("tasks.error.next_contact_on", today=today().isoformat()), "error")
            return redirect(back)
    note = (request.form.get("note") or "").strip() or None
    outcome_request = worklist.OutcomeRequest(outcome, note=note, next_contact_on=next_contact_on)
    try:
        closed = worklist.record_outcome(g.services, task_id, outcome_request, _viewer(), now=auth.now())
    except NotFound:
        abort(404)
    except Refused:
        abort(403)
    except ValidationFailed as exc:
        for problem in exc.problems:
            if problem.field == "next_contact_on":
                flash(t("tasks.error.next_contact_on", today=today().isoformat()), "error")
            elif problem.field == "note":
                flash(t("tasks.error.note", n=worklist.MAX_NOTE), "error")
            else:
                flash(problem.reason, "error")
        return redirect(back)
    except Conflict:
        flash(t("tasks.error.closed"), "error")
        return redirect(url_for("console.task", task_id=task_id))
    flash(t("tasks.recorded", customer=closed.get("customer_name") or closed["customer_id"],
            outcome=t("outcome." + outcome.value)), "success")
    if auth.is_manager() and request.form.get("back") != "task":
        return redirect(url_for("console.tasks", done=task_id))
    return redirect(url_for("console.task", task_id=task_id))
