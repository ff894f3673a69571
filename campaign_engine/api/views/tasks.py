"""Relationship-manager tasks (issue #12): the work list, one task, its outcome, the reports.

A key of role manager sees only its own manager's tasks: any other task is 404, exactly as a task
that does not exist. Mobile numbers are masked as in /messages (campaign_engine.masking).
"""

from __future__ import annotations


import marshmallow as ma
from flask import g

from ...errors import ValidationFailed
from ...pipeline import tasks as worklist
from ...vocabulary import TaskOutcome, TaskStatus
from ..auth import TASKS, abort
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from .common import CONTACT_DATA_NOTE, MAX_ID, PageArgs, existing_id, now, services
from .contact_data import RevealArgs, access, present
from .messages import DateOrDateTime

blp = ApiBlueprint("tasks", __name__, url_prefix="/api/v1/tasks",
                   description="Relationship-manager tasks (电联 calls, 面谈 visits): the work list, outcomes, reports")

STATUSES = [s.value for s in TaskStatus]
OUTCOMES = [o.value for o in TaskOutcome]
TASK_CONTACT_FIELDS = ("mobile",)
NOT_FOUND = "no such task, or (a manager key) another manager's or a branch queue's"
OTHER_MANAGER = "(a manager key) `manager` names another manager"


class TaskQueryArgs(PageArgs, RevealArgs):
    manager = ma.fields.String(validate=ma.validate.Length(min=1, max=32), metadata={
        "description": "a manager's tasks (a manager key: its own id only; another id is 404)"})
    branch = ma.fields.String(validate=ma.validate.Length(min=1, max=64),
                              metadata={"description": "the customers' branch (a supervisor's scope)"})
    queue = ma.fields.Boolean(metadata={"description": "true: the branch queues' tasks only (no manager); "
                                                       "false: assigned tasks only"})
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    due_before = DateOrDateTime(metadata={
        "description": "due before a date-time with offset, or a date: due on or before that local day",
        "example": "2026-03-11"})
    overdue = ma.fields.Boolean(metadata={"description": "true: open tasks past due by the SLA (flagged "
                                                         "overdue); false: the others"})
    rule = ma.fields.String(validate=ma.validate.Length(max=64))
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    customer = ma.fields.String(validate=ma.validate.Length(max=32))


class TaskSchema(ma.Schema):
    id = ma.fields.Integer()
    run_id = ma.fields.Integer()
    rule_id = ma.fields.String()
    rule_name = ma.fields.String(allow_none=True)
    rule_version = ma.fields.Integer(allow_none=True)
    category = ma.fields.String()
    priority = ma.fields.Integer()
    type = ma.fields.String(metadata={"description": "call or visit"})
    type_name = ma.fields.String(metadata={"description": "电联 or 面谈"})
    customer_id = ma.fields.String()
    customer_name = ma.fields.String(allow_none=True)
    mobile = ma.fields.String(allow_none=True, metadata={"description": "the customer's mobile: " + CONTACT_DATA_NOTE})
    subject_type = ma.fields.String()
    subject_id = ma.fields.String()
    manager_id = ma.fields.String(allow_none=True, metadata={"description": "null: the branch queue"})
    manager_name = ma.fields.String(allow_none=True)
    branch = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "open, done, cancelled or expired"})
    due_at = ma.fields.DateTime()
    due_local = ma.fields.String(metadata={"description": "due_at in the configured time zone, with its offset"})
    overdue = ma.fields.Boolean(metadata={"description": "open and past due by the SLA"})
    overdue_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when the sweep flagged it overdue (kept once it is closed: done late)"})
    alerts = ma.fields.Integer(metadata={"description": "matches merged into it (1: itself)"})
    last_alert_at = ma.fields.DateTime(allow_none=True)
    talking_points = ma.fields.String(allow_none=True)
    outcome = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    next_contact_on = ma.fields.Date(allow_none=True)
    completed_at = ma.fields.DateTime(allow_none=True)
    completed_by = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    dedupe_key = ma.fields.String()


class TaskPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TaskSchema))
    next = ma.fields.String(allow_none=True, metadata={"description": "pass as `after` for the next page"})


class TaskOutcomeSchema(ma.Schema):
    outcome = ma.fields.String(required=True, validate=ma.validate.OneOf(OUTCOMES), metadata={
        "description": "refused: withdraws the phone-marketing consent; wrong_number: the mobile goes on the "
                       "suppression list (no call and no SMS to it until `suppress remove call`); interested, "
                       "converted: a conversion the effect report counts"})
    note = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=worklist.MAX_NOTE))
    next_contact_on = ma.fields.Date(allow_none=True, metadata={"description": "today or later"})


class TaskAssignSchema(ma.Schema):
    manager = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=32), metadata={
        "description": "the active manager to take the task (a manager key: its own id, to claim a queue task "
                       "of its branch)", "example": "M030"})
    note = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=worklist.MAX_NOTE), metadata={
        "description": "why (kept in the audit log)"})


class TaskReportArgs(ma.Schema):
    rule = ma.fields.String(validate=ma.validate.Length(max=64))
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    manager = ma.fields.String(validate=ma.validate.Length(min=1, max=32))
    date_from = ma.fields.Date(data_key="from", metadata={"description": "tasks created from this local day"})
    date_to = ma.fields.Date(data_key="to", metadata={"description": "to this local day, included"})


class TaskCountsSchema(ma.Schema):
    created = ma.fields.Integer()
    open = ma.fields.Integer()
    done = ma.fields.Integer()
    cancelled = ma.fields.Integer()
    expired = ma.fields.Integer()
    overdue = ma.fields.Integer(metadata={"description": "ever past due by the SLA, whatever they are now"})
    overdue_open = ma.fields.Integer(metadata={"description": "overdue and still open"})
    by_outcome = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    conversion_rate = ma.fields.Float(allow_none=True, metadata={"description": "converted / done"})


class TaskRuleCountsSchema(TaskCountsSchema):
    rule = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    run = ma.fields.Integer()


class TaskManagerCountsSchema(TaskCountsSchema):
    manager_id = ma.fields.String(allow_none=True, metadata={"description": "null: a branch queue"})
    name = ma.fields.String(allow_none=True)
    branch = ma.fields.String(allow_none=True)
    queue = ma.fields.Boolean()


class TaskReportSchema(ma.Schema):
    rule = ma.fields.String(allow_none=True)
    run = ma.fields.Integer(allow_none=True)
    manager = ma.fields.String(allow_none=True)
    date_from = ma.fields.String(attribute="from", data_key="from", allow_none=True)
    date_to = ma.fields.String(attribute="to", data_key="to", allow_none=True)
    rules = ma.fields.List(ma.fields.Nested(TaskRuleCountsSchema))
    managers = ma.fields.List(ma.fields.Nested(TaskManagerCountsSchema))


def _viewer() -> worklist.Viewer:
    return worklist.Viewer(actor=g.actor, role=g.role, manager_id=g.get("manager_id"))


@blp.route("", methods=["GET"])
@blp.secured(TASKS)
@blp.arguments(TaskQueryArgs, location="query")
@blp.response(200, TaskPageSchema)
@blp.alt_response(404, schema=ErrorSchema, description=OTHER_MANAGER)
def list_tasks(args):  # type: ignore[no-untyped-def]
    """Tasks in due order (earliest first): by manager, branch, queue, status, due time, overdue, rule,
    run and customer; cursor paging with `after`. A manager key lists its own tasks only."""
    decided = access(args)
    if args.get("after"):
        try:
            worklist.parse_cursor(args["after"])
        except ValidationFailed as exc:  # named like the other query parameters
            abort(400, message="invalid cursor", errors={"query": {"after": [exc.problems[0].reason]}})
    query = worklist.TaskQuery(
        manager_id=args.get("manager"), branch=args.get("branch"), queue=args.get("queue"),
        status=args.get("status"), due_before=args.get("due_before"), overdue=args.get("overdue"),
        rule_id=args.get("rule"), run_id=args.get("run"), customer_id=args.get("customer"),
        after=args.get("after"), limit=args["limit"])
    result = worklist.list_tasks(services(), query, _viewer())
    items = present(result.items, TASK_CONTACT_FIELDS, decided, args, target="tasks", key="id")
    return {"items": items, "next": result.next}


@blp.route("/report", methods=["GET"])
@blp.secured(TASKS)
@blp.arguments(TaskReportArgs, location="query")
@blp.response(200, TaskReportSchema)
@blp.alt_response(404, schema=ErrorSchema, description=OTHER_MANAGER)
def task_report(args):  # type: ignore[no-untyped-def]
    """Per rule (of one run with `run`): tasks created, open, done, overdue, expired, by outcome; per
    manager and branch queue: the same and the conversion rate. A manager key: its own figures."""
    request = worklist.ReportRequest(rule_id=args.get("rule"), run_id=args.get("run"),
                                     manager_id=args.get("manager"), date_from=args.get("date_from"),
                                     date_to=args.get("date_to"))
    return worklist.task_report(services(), request, _viewer())


@blp.route("/<int:task_id>", methods=["GET"])
@blp.secured(TASKS)
@blp.arguments(RevealArgs, location="query")
@blp.response(200, TaskSchema)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
def get_task(args, task_id: int):  # type: ignore[no-untyped-def]
    """One task with its talking points; 404 for a task of another manager (a manager key)."""
    decided = access(args)
    task = worklist.get_task(services(), existing_id("task", task_id), _viewer())
    return present([task], TASK_CONTACT_FIELDS, decided, args, target=f"task:{task_id}", key="id")[0]


@blp.route("/<int:task_id>/outcome", methods=["POST"])
@blp.secured(TASKS)
@blp.arguments(TaskOutcomeSchema)
@blp.response(200, TaskSchema)
@blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
@blp.alt_response(409, schema=ErrorSchema, description="the task is not open (any more)")
def post_outcome(body, task_id: int):  # type: ignore[no-untyped-def]
    """Close an open task with its outcome (the task's own manager key, operators, admins; other roles
    403; another manager's task 404; a task no longer open 409). Its effects and the closing are one
    transaction, audited as `tasks.outcome`."""
    request = worklist.OutcomeRequest(TaskOutcome(body["outcome"]), note=body.get("note"),
                                      next_contact_on=body.get("next_contact_on"))
    task = worklist.record_outcome(services(), existing_id("task", task_id), request, _viewer(), now=now())
    return present([task], TASK_CONTACT_FIELDS, access({}), {}, target=f"task:{task_id}", key="id")[0]


@blp.route("/<int:task_id>/assign", methods=["POST"])
@blp.secured(TASKS)
@blp.arguments(TaskAssignSchema)
@blp.response(200, TaskSchema)
@blp.alt_response(400, schema=ErrorSchema, description="an unknown or inactive manager")
@blp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND + " (a manager key: its own branch's queue "
                                                                   "tasks can be claimed)")
@blp.alt_response(409, schema=ErrorSchema, description="the task is not open, was assigned meanwhile, or the "
                                                       "manager's due day is full")
def post_assign(body, task_id: int):  # type: ignore[no-untyped-def]
    """Give an open task to an active manager (operators, admins), or claim an open queue task of
    the key's own branch (a manager key, for itself only; other roles 403). The task takes a place
    on the manager's list on its due day (a full day: 409). Audited as `tasks.assign`."""
    request = worklist.AssignRequest(body["manager"], note=body.get("note"))
    task = worklist.assign_task(services(), existing_id("task", task_id), request, _viewer(), now=now())
    return present([task], TASK_CONTACT_FIELDS, access({}), {}, target=f"task:{task_id}", key="id")[0]
