"""Rule drafts: submit a rule file (and its templates), read it with its diff and its effect on the
audience, approve or reject it (four eyes). The views are thin: pipeline.publishing decides."""

from __future__ import annotations



import marshmallow as ma
from flask import g

from ...pipeline import publishing
from ...vocabulary import DraftStatus
from ..auth import APPROVE, READ, RULES
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from ..input_limits import query_limits
from .rules import DraftSchema
from .common import StrictQuery, YAML_TYPES, existing_id, now, numeric_cursor, rule_file_body, services, today

blp = ApiBlueprint("drafts", __name__, url_prefix="/api/v1/rules/drafts",
                   description="Rule changes: drafts, review, four-eyes approval")


class DraftDetailSchema(DraftSchema):
    source = ma.fields.String()
    templates = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    diff = ma.fields.String(metadata={"description": "unified diff of the file and templates against the live versions"})


class DraftPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DraftSchema))
    next = ma.fields.String(allow_none=True)


class SubmitSchema(ma.Schema):
    file = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    source = ma.fields.String(required=True, validate=ma.validate.Length(max=publishing.SOURCE_MAX))
    templates = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(max=200)),
                               values=ma.fields.String(validate=ma.validate.Length(max=publishing.SOURCE_MAX)),
                               load_default=dict, validate=ma.validate.Length(max=100))
    note = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=publishing.NOTE_MAX))


class DraftQuery(StrictQuery):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf([s.value for s in DraftStatus]))
    file = ma.fields.String(load_default=None, validate=ma.validate.Length(max=255))
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))
    after = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64))


class ApproveSchema(ma.Schema):
    content_hash = ma.fields.String(load_default=None, validate=ma.validate.Length(equal=64), metadata={
        "description": "the content you reviewed: refused (409) if the draft is other content"})


class RejectSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=publishing.NOTE_MAX))


class DiffQuery(StrictQuery):
    date = ma.fields.Date(load_default=None)
    sample = ma.fields.Integer(load_default=10, validate=ma.validate.Range(min=0, max=100))


class DiffBody(ma.Schema):
    date = ma.fields.Date(load_default=None)
    sample = ma.fields.Integer(load_default=10, validate=ma.validate.Range(min=0, max=100))
    event = ma.fields.Dict(load_default=None, metadata={"description": "the event payload, for event rules"})


def _actor() -> str:
    return str(getattr(g, "actor", "anonymous"))


@blp.route("", methods=["POST"])
@blp.secured(RULES)
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": SubmitSchema},
    **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[::2]}}})
@blp.response(201, DraftSchema)
@blp.alt_response(415, schema=ErrorSchema, description="the body is neither YAML nor JSON")
@query_limits(note=publishing.NOTE_MAX)  # the note's own limit, not the edge's 1,000 for a query value
def submit_draft():  # type: ignore[no-untyped-def]
    """Submit a rule file: the body is the file itself (Content-Type application/yaml, with
    `?file=name.yaml&note=...`), or JSON `{"file", "source", "templates": {"<name>/sms.txt.j2": "..."},
    "note"}`. A template folder not sent is taken from the live set. Answers the draft: `invalid`
    (with its problems; the live versions keep running), `pending` approval, or `live` (nothing
    changed, or approval is off). Any other Content-Type (text/plain, none) is 415; `note` in the
    query string may have its 2,000 characters."""
    body = rule_file_body(SubmitSchema(), {"file": "", "note": ""})
    sub = publishing.Submission(body["file"], body["source"], body["templates"], body["note"], _actor())
    return publishing.submit(services(), sub, now=now())


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.arguments(DraftQuery, location="query")
@blp.response(200, DraftPageSchema)
def list_drafts(args):  # type: ignore[no-untyped-def]
    """Drafts, newest first (`status=pending` is the review queue)."""
    svc = services()
    rows = svc.store.drafts(status=args["status"], file=args["file"], before_id=numeric_cursor(args["after"]),
                            limit=args["limit"])
    items = [publishing.view_of(row) for row in rows]
    return {"items": items, "next": str(items[-1]["id"]) if len(items) == args["limit"] else None}


@blp.route("/<int:draft_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, DraftDetailSchema)
def get_draft(draft_id: int):  # type: ignore[no-untyped-def]
    """A draft with its texts and their diff against the live versions."""
    return publishing.draft_view(services(), existing_id("draft", draft_id), texts=True)


@blp.route("/<int:draft_id>/approve", methods=["POST"])
@blp.secured(APPROVE)
@blp.arguments(ApproveSchema(), required=False)
@blp.response(200, DraftSchema)
def approve_draft(body, draft_id: int):  # type: ignore[no-untyped-def]
    """Put a pending draft live: someone other than its author (403 to the author, audited), and
    with `content_hash`, only the content you reviewed (409 otherwise)."""
    return publishing.approve(services(), existing_id("draft", draft_id), actor=_actor(), now=now(),
                              content_hash=(body or {}).get("content_hash"))


@blp.route("/<int:draft_id>/reject", methods=["POST"])
@blp.secured(APPROVE)
@blp.arguments(RejectSchema)
@blp.response(200, DraftSchema)
def reject_draft(body, draft_id: int):  # type: ignore[no-untyped-def]
    """Send a pending draft back with a reason."""
    return publishing.reject(services(), existing_id("draft", draft_id), actor=_actor(), reason=body["reason"],
                             now=now())


@blp.route("/<int:draft_id>/diff", methods=["GET"])
@blp.secured(READ)
@blp.arguments(DiffQuery, location="query")
@blp.response(200, description="live and draft counts, customers added and removed, by reason, samples, "
                               "and the conditions that changed a sampled customer's verdict")
def diff_draft(args, draft_id: int):  # type: ignore[no-untyped-def]
    """What approving the draft would change for a date (default today): a dry run of each version."""
    return publishing.draft_audience(services(), existing_id("draft", draft_id), today=today(args["date"]),
                                     now=now(), event_payload=None, sample=args["sample"])


@blp.route("/<int:draft_id>/diff", methods=["POST"])
@blp.secured(READ)
@blp.arguments(DiffBody)
@blp.response(200, description="as GET, for an event payload")
def diff_draft_event(body, draft_id: int):  # type: ignore[no-untyped-def]
    """What approving the draft would change for an event payload (event rules) or a date."""
    return publishing.draft_audience(services(), existing_id("draft", draft_id), today=today(body["date"]),
                                     now=now(), event_payload=body["event"], sample=body["sample"])
