"""Relationship managers (客户经理): whose customers' calls and visits they are planned, and how many a day."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import g

from ...errors import NotFound, Problem, ValidationFailed
from ...imports import COLUMNS, parse_row
from ...imports.rows import MAX_CAPACITY
from ...store import managers as store
from ..auth import ADMIN, READ
from ..blueprint import ApiBlueprint
from .common import CONTACT_DATA_NOTE, PageArgs, mask_email, mask_mobile, now, page, record, services, today
from .contact_data import CUSTOMER_CONTACT_FIELDS, RevealArgs, access, present

blp = ApiBlueprint("managers", __name__, url_prefix="/api/v1",
                   description="Relationship managers: branch, contact, daily call and visit capacity")

CAPACITY = {"minimum": 0, "maximum": MAX_CAPACITY}


class ManagerSchema(ma.Schema):
    manager_id = ma.fields.String()
    name = ma.fields.String()
    branch = ma.fields.String(allow_none=True)
    mobile = ma.fields.String(allow_none=True, metadata={"description": CONTACT_DATA_NOTE})
    email = ma.fields.String(allow_none=True, metadata={"description": CONTACT_DATA_NOTE})
    daily_call_capacity = ma.fields.Integer(metadata={"description": "call tasks (电联) a day", **CAPACITY})
    daily_visit_capacity = ma.fields.Integer(metadata={"description": "visit tasks (面谈) a day", **CAPACITY})
    active = ma.fields.Boolean(metadata={"description": "false: the manager's customers' tasks go to the "
                                                        "branch queue"})
    updated_at = ma.fields.DateTime()
    source = ma.fields.String(metadata={"description": "where the row came from: import:<file> or api:<key>"})
    requeued_tasks = ma.fields.Integer(metadata={
        "description": "(PUT) open tasks of the manager moved to their customers' branch queues now, because the "
                       "manager is inactive"})


class ManagerPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ManagerSchema))
    next = ma.fields.String(allow_none=True)


class ManagerQuery(PageArgs, RevealArgs):
    branch = ma.fields.String(validate=ma.validate.Length(max=64))
    active = ma.fields.Boolean(metadata={"description": "true: active managers only; false: inactive only"})


class ManagerInSchema(ma.Schema):
    """The managers CSV columns but manager_id as JSON; validated by the same rules as an import row."""

    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    branch = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=64))
    mobile = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    email = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=254))
    daily_call_capacity = ma.fields.Integer(required=True, strict=True,
                                            validate=ma.validate.Range(min=0, max=MAX_CAPACITY))
    daily_visit_capacity = ma.fields.Integer(required=True, strict=True,
                                             validate=ma.validate.Range(min=0, max=MAX_CAPACITY))
    active = ma.fields.Boolean(required=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _checked(manager_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run the import's own row checks on an API body, so both paths accept the same data."""
    values = {**body, "manager_id": manager_id}
    row, problems = parse_row("managers", {c: _text(values.get(c)) for c in COLUMNS["managers"]}, today=today())
    if problems or row is None:
        raise ValidationFailed(problems or [Problem("invalid row")], what="manager")
    if row["manager_id"] != manager_id:
        raise ValidationFailed([Problem("a manager id has no leading or trailing spaces", field="manager_id")],
                               what="manager")
    return row


@blp.route("/managers", methods=["GET"])
@blp.secured(READ)
@blp.arguments(ManagerQuery, location="query")
@blp.response(200, ManagerPageSchema)
def list_managers(args):  # type: ignore[no-untyped-def]
    """Managers in id order, by branch and active; page with `after`. Mobile and email masked as
    the customers' are (unmasked for admins, or an operator's `reveal=contact` with a `reason`, audited)."""
    decided = access(args)
    with services().db.connect() as conn:
        items = store.list_managers(conn, branch=args.get("branch"), active=args.get("active"),
                                    after=args.get("after"), limit=args["limit"])
    items = present(items, CUSTOMER_CONTACT_FIELDS, decided, args, target="managers", key="manager_id")
    return page(items, args["limit"], "manager_id")


@blp.route("/managers/<manager_id>", methods=["GET"])
@blp.secured(READ)
@blp.arguments(RevealArgs, location="query")
@blp.response(200, ManagerSchema)
def get_manager(args, manager_id: str):  # type: ignore[no-untyped-def]
    """One manager; mobile and email masked as in the list."""
    decided = access(args)
    with services().db.connect() as conn:
        manager = store.get_manager(conn, manager_id)
    if manager is None:
        raise NotFound("manager", manager_id)
    return present([manager], CUSTOMER_CONTACT_FIELDS, decided, args, target=f"manager:{manager_id}",
                   key="manager_id")[0]


@blp.route("/managers/<manager_id>", methods=["PUT"])
@blp.secured(ADMIN)
@blp.arguments(ManagerInSchema)
@blp.response(200, ManagerSchema)
def put_manager(body, manager_id: str):  # type: ignore[no-untyped-def]
    """Create or update a manager (the same checks as a CSV row); audited as `managers.upsert`.
    A manager made inactive hands their open tasks to the branch queue of each task's customer's
    branch in the same transaction (`requeued_tasks`; each audited as `tasks.requeue`)."""
    row = _checked(manager_id, body)
    with services().db.begin() as conn:
        created = store.get_manager(conn, manager_id) is None
        manager = store.upsert_manager(conn, row, now(), f"api:{g.actor}")
        moved = [] if row["active"] else store.requeue_open_tasks(
            conn, [manager_id], actor=g.actor, now=now(), tz=services().settings.tz, reason="manager inactive")
        record("managers.upsert", manager_id, {
            "created": created, "branch": row.get("branch"), "active": row["active"],
            "daily_call_capacity": row["daily_call_capacity"], "daily_visit_capacity": row["daily_visit_capacity"],
            "mobile": mask_mobile(row.get("mobile")), "email": mask_email(row.get("email")),
            **({"requeued_tasks": len(moved)} if moved else {})}, conn=conn)
    return {**manager, "requeued_tasks": len(moved)}
