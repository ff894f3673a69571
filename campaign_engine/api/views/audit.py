"""The audit log, for auditors: who changed what, when (read only)."""

from __future__ import annotations

import marshmallow as ma

from ...store import audit as audit_store
from ..auth import AUDIT
from ..blueprint import ApiBlueprint
from .common import PageArgs, numeric_cursor, services
from .messages import DateOrDateTime, created_bound

blp = ApiBlueprint("audit", __name__, url_prefix="/api/v1/audit",
                   description="The audit log: every change, newest first (auditors and admins)")

MAX_LIMIT = 500


class AuditQuery(PageArgs):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=MAX_LIMIT))
    action = ma.fields.String(validate=ma.validate.Length(min=1, max=64), metadata={
        "description": "an action exactly (`rules.approve`), or every action beginning with a prefix ending in "
                       "`.` or `*` (`rules.` and `rules.*`: rules.submit, rules.approve, rules.disable, ...)",
        "example": "rules.*"})
    actor = ma.fields.String(validate=ma.validate.Length(min=1, max=64), metadata={
        "description": "who: a stored actor exactly (`key:alice#3`, `cli`, `cli:alice`), or a bare name (no `:` "
                       "or `#`) for every API key of that name and the CLI run as it (`alice`: key:alice#3, "
                       "key:alice#9, cli:alice); names compare exactly, case included", "example": "alice"})
    at_from = DateOrDateTime(data_key="from", metadata={
        "description": "written at or after: a date-time with offset, or a date (2026-12-01: from the start of "
                       "that day in the configured time zone)", "example": "2026-12-01"})
    at_to = DateOrDateTime(data_key="to", metadata={
        "description": "written before: a date-time with offset (exclusive), or a date (2026-12-01: up to the "
                       "end of that day in the configured time zone, the day included)", "example": "2026-12-01"})


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    at = ma.fields.DateTime()
    actor = ma.fields.String(metadata={"description": "`key:<name>#<id>` for an API key, `cli` or `cli:<name>`"})
    action = ma.fields.String()
    target = ma.fields.String(allow_none=True)
    details = ma.fields.Dict(allow_none=True, metadata={"description": "what changed; contact data masked"})


class AuditPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next = ma.fields.String(allow_none=True, metadata={
        "description": "pass as `after` for the next page; null on the last page"})


@blp.route("", methods=["GET"])
@blp.secured(AUDIT)
@blp.arguments(AuditQuery, location="query")
@blp.response(200, AuditPageSchema)
def list_audit(args):  # type: ignore[no-untyped-def]
    """Audit entries by action, actor and time, newest first; cursor paging with `after`. A query
    parameter it does not take (`actors=`) is a 400 naming it, never ignored."""
    after = numeric_cursor(args.get("after"))
    tz = services().settings.tz
    with services().db.connect() as conn:
        items = audit_store.list_entries(
            conn, action=args.get("action"), actor=args.get("actor"),
            since=created_bound(args.get("at_from"), tz, upper=False),
            until=created_bound(args.get("at_to"), tz, upper=True),
            before_id=after, limit=args["limit"])
    return {"items": items, "next": str(items[-1]["id"]) if len(items) == args["limit"] else None}
