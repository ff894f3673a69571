"""Rules: the live set with versions and next runs, a rule's source and history, validate, preview,
and the emergency stop (disable) and its undoing (enable, through approval)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask import g

from ...errors import NotFound
from ...pipeline import preview, publishing
from ...pipeline.validate import calendar_warnings, catalogue_warnings, read_catalogue
from ...rulebook.loader import parse_rule_text
from ...rulebook.model import All, AnyOf, FieldRef, Node, Not, Rule
from ..auth import READ, RULES
from ..blueprint import ApiBlueprint
from ...store import scheduler_jobs
from .common import YAML_TYPES, now, rule_file_body, services, today

blp = ApiBlueprint("rules", __name__, url_prefix="/api/v1/rules", description="Campaign rules")


class ProblemSchema(ma.Schema):
    file = ma.fields.String()
    line = ma.fields.Integer()
    rule = ma.fields.String()
    field = ma.fields.String()
    reason = ma.fields.String(required=True)


class ChangeSchema(ma.Schema):
    rule = ma.fields.String()
    template = ma.fields.String(allow_none=True)
    content_hash = ma.fields.String()
    base_version = ma.fields.Integer(allow_none=True, metadata={"description": "the live version when submitted"})
    change = ma.fields.String(metadata={"description": "new, changed, unchanged, or enable"})
    version_id = ma.fields.Integer()


class DraftSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"description": "publish (a rule file) or enable (a stopped rule)"})
    status = ma.fields.String(metadata={"description": "pending, live, invalid, rejected or superseded"})
    file = ma.fields.String()
    rules = ma.fields.List(ma.fields.String())
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema))
    content_hash = ma.fields.String(metadata={"description": "what an approver approves"})
    note = ma.fields.String()
    author = ma.fields.String()
    created_at = ma.fields.DateTime()
    decided_by = ma.fields.String(allow_none=True)
    decided_at = ma.fields.DateTime(allow_none=True)
    reason = ma.fields.String(allow_none=True)


class TriggerSchema(ma.Schema):
    schedule = ma.fields.String(allow_none=True)
    event = ma.fields.String(allow_none=True)
    subject = ma.fields.String()


class RuleSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    enabled = ma.fields.Boolean()
    category = ma.fields.String()
    priority = ma.fields.Integer()
    trigger = ma.fields.Nested(TriggerSchema)
    channels = ma.fields.List(ma.fields.String())
    template = ma.fields.String()
    product = ma.fields.String(allow_none=True)
    file = ma.fields.String()
    line = ma.fields.Integer()
    next_run = ma.fields.DateTime(allow_none=True)
    status = ma.fields.String(metadata={"description": "live, or disabled (the emergency stop, or "
                                                      "`enabled: false` in its file)"})
    version = ma.fields.Integer(allow_none=True, metadata={"description": "the published version running"})
    content_hash = ma.fields.String()
    author = ma.fields.String(allow_none=True)
    approver = ma.fields.String(allow_none=True)
    published_at = ma.fields.DateTime(allow_none=True)
    disabled = ma.fields.String(allow_none=True, metadata={"description": "who stopped it, when, why"})


class RuleDetailSchema(RuleSchema):
    conditions = ma.fields.Raw(metadata={"description": "the parsed condition tree"})
    source = ma.fields.String(metadata={"description": "the rule file's text"})


class RuleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RuleSchema))
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema), metadata={
        "description": "published versions that no longer build here (not live)"})
    generation = ma.fields.Integer(allow_none=True, metadata={"description": "of the published set"})
    pending_drafts = ma.fields.Integer()


class VersionSchema(ma.Schema):
    rule = ma.fields.String()
    version = ma.fields.Integer()
    content_hash = ma.fields.String()
    file = ma.fields.String()
    author = ma.fields.String()
    approver = ma.fields.String(allow_none=True)
    note = ma.fields.String()
    published_at = ma.fields.DateTime()
    draft_id = ma.fields.Integer(allow_none=True)
    live = ma.fields.Boolean()
    diff = ma.fields.String(metadata={"description": "unified diff against the version before"})


class VersionListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(VersionSchema))


class DisableSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))


class EnableSchema(ma.Schema):
    note = ma.fields.String(load_default="", validate=ma.validate.Length(max=2000))


class ValidateRequestSchema(ma.Schema):
    source = ma.fields.String(required=True, validate=ma.validate.Length(max=1_000_000),
                              metadata={"description": "rule YAML"})
    file = ma.fields.String(load_default="request.yaml", validate=ma.validate.Length(min=1, max=200))
    templates = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(max=200)),
                               values=ma.fields.String(validate=ma.validate.Length(max=1_000_000)),
                               load_default=dict, validate=ma.validate.Length(max=100), metadata={
                                   "description": "template texts by '<folder>/<part>'; a folder not given is "
                                                  "taken from the live set"})


class ValidateResultSchema(ma.Schema):
    valid = ma.fields.Boolean()
    rules = ma.fields.List(ma.fields.String())
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema))
    warnings = ma.fields.List(ma.fields.Nested(ProblemSchema), metadata={
        "description": "what could not be checked: product references while no products are loaded"})


class PreviewRequestSchema(ma.Schema):
    date = ma.fields.Date()
    customer_id = ma.fields.String(validate=ma.validate.Length(min=1, max=32))
    event = ma.fields.Dict(metadata={"description": "the event payload, for event rules"})
    sample = ma.fields.Integer(validate=ma.validate.Range(min=0, max=100))


def node_data(node: Node) -> Any:
    """A condition tree as plain data (the rule file's own shape)."""
    if isinstance(node, All):
        return {"all": [node_data(n) for n in node.items]}
    if isinstance(node, AnyOf):
        return {"any": [node_data(n) for n in node.items]}
    if isinstance(node, Not):
        return {"not": node_data(node.item)}
    operand = {"ref": node.operand.field} if isinstance(node.operand, FieldRef) else node.operand
    return {node.field: {node.op: list(operand) if isinstance(operand, tuple) else operand}}


def _stopped(state: dict[str, Any] | None, stopped: str | None) -> str | None:
    """Who stopped the rule, when (ISO 8601 with offset, as every time the API answers) and why."""
    if stopped is None or state is None or state["enabled"] or not isinstance(state.get("changed_at"), dt.datetime):
        return stopped
    at = state["changed_at"]
    at = at if at.tzinfo is not None else at.replace(tzinfo=dt.timezone.utc)
    return f"disabled by {state['changed_by']} at {at.isoformat(timespec='seconds')}: {state['reason']}"


def rule_data(rule: Rule, next_runs: dict[str, Any], state: dict[str, Any] | None,
              stopped: str | None) -> dict[str, Any]:
    stopped = _stopped(state, stopped)
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled, "status": "live" if rule.enabled else "disabled",
            "category": rule.category.value, "priority": rule.priority,
            "trigger": {"schedule": rule.trigger.schedule,
                        "event": rule.trigger.event.value if rule.trigger.event else None,
                        "subject": rule.trigger.subject.value},
            "channels": [c.value for c in rule.channels], "template": rule.template, "product": rule.product,
            "file": rule.file, "line": rule.line, "next_run": next_runs.get(rule.id) if rule.enabled else None,
            "version": rule.version, "content_hash": rule.content_hash,
            "author": state["author"] if state else None, "approver": state["approver"] if state else None,
            "published_at": state["published_at"] if state else None, "disabled": stopped}


def _next_runs() -> dict[str, Any]:
    """From the shared job store: the scheduler may run in another process."""
    with services().db.connect() as conn:
        return scheduler_jobs.next_run_times(conn)


def _published(rule_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Who published and approved each rule's live version, and when (no texts read)."""
    return services().store.live_state(rule_ids)


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.response(200, RuleListSchema)
def list_rules():  # type: ignore[no-untyped-def]
    """The published rules every process runs: version, author, publish time, status, next run."""
    rulebook = services().rulebook
    next_runs = _next_runs()
    published = _published(list(rulebook.rules))
    return {"items": [rule_data(r, next_runs, published.get(r.id), rulebook.stopped.get(r.id))
                      for r in sorted(rulebook.rules.values(), key=lambda r: r.id)],
            "problems": [p.as_dict() for p in rulebook.problems], "generation": rulebook.generation,
            "pending_drafts": len(services().store.drafts(status="pending", limit=500))}


@blp.route("/<rule_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, RuleDetailSchema)
def get_rule(rule_id: str):  # type: ignore[no-untyped-def]
    """One live rule: its parsed form and the text of the file it was published from."""
    svc = services()
    rule = svc.rulebook.get(rule_id)
    if rule is None:
        raise NotFound("rule", rule_id)
    published = _published([rule_id]).get(rule_id)
    source = svc.store.rule_versions([int(published["version_id"])])[0]["source"] if published else ""
    return {**rule_data(rule, _next_runs(), published, svc.rulebook.stopped.get(rule_id)),
            "conditions": node_data(rule.conditions), "source": source}


@blp.route("/<rule_id>/versions", methods=["GET"])
@blp.secured(READ)
@blp.response(200, VersionListSchema)
def rule_versions(rule_id: str):  # type: ignore[no-untyped-def]
    """Every published version of a rule, newest first, each with its diff against the one before."""
    return {"items": publishing.history(services(), rule_id)}


@blp.route("/<rule_id>/disable", methods=["POST"])
@blp.secured(RULES)
@blp.arguments(DisableSchema)
@blp.response(200, description="the rule, now disabled, and how many unsent messages were suppressed")
def disable_rule(body, rule_id: str):  # type: ignore[no-untyped-def]
    """The emergency stop: no second person needed; at once in every process (runs skip it from
    their next rule on, and its unsent messages are suppressed `rule_disabled`)."""
    return publishing.disable(services(), rule_id, actor=g.actor, reason=body["reason"], now=now())


@blp.route("/<rule_id>/enable", methods=["POST"])
@blp.secured(RULES)
@blp.arguments(EnableSchema)
@blp.response(201, DraftSchema, description="a draft of kind enable: pending approval (live at once with approval off)")
def enable_rule(body, rule_id: str):  # type: ignore[no-untyped-def]
    """Ask to switch a disabled rule on again, at the version it is live in: approved like any change."""
    return publishing.enable(services(), rule_id, actor=g.actor, note=body["note"], now=now())




@blp.route("/validate", methods=["POST"])
@blp.secured(RULES)
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": ValidateRequestSchema},
    **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[::2]}}})
@blp.response(200, ValidateResultSchema)
def validate():  # type: ignore[no-untyped-def]
    """Check rule YAML as a draft would be checked, storing nothing: templates (sent, else the live
    set's) rendered against a sample, product codes and types checked against the products in the
    database, a rule id that another file owns.

    The body is the rule file itself (Content-Type application/yaml or text/yaml), or JSON
    `{"source": "<yaml>", "file": "name.yaml"}`.
    """
    body = rule_file_body(ValidateRequestSchema(), {"file": "request.yaml"})
    svc = services()
    checked = publishing.check(svc, publishing.Submission(body["file"], body["source"], body["templates"],
                                                          "validate", g.actor))
    rules, _ = parse_rule_text(body["source"], body["file"])
    catalogue = read_catalogue(svc.store)
    return {"valid": not checked.problems, "rules": [r.id for r in rules],
            "problems": [p.as_dict() for p in checked.problems],
            "warnings": [w.as_dict() for w in catalogue_warnings(checked.book, catalogue)
                         + calendar_warnings(checked.book, svc.holidays, today())]}


@blp.route("/reload", methods=["POST"])
@blp.secured(RULES)
@blp.response(410, description="gone: rules are published, not reloaded")
def reload():  # type: ignore[no-untyped-def]
    """Gone. There is nothing to reload on a server: submit the file as a draft
    (`POST /api/v1/rules/drafts`, or `campaign-engine rules publish`); every process runs a change
    within a second of its approval."""
    from ..errors import error_response

    return error_response(410, "there is nothing to reload: rules are published. Submit a rule file with "
                               "POST /api/v1/rules/drafts (or `campaign-engine rules publish FILE --note ...`); "
                               "once approved, every process runs it within a second")


@blp.route("/<rule_id>/preview", methods=["POST"])
@blp.secured(RULES)
@blp.arguments(PreviewRequestSchema)
@blp.response(200, description="counts and sample messages, or one customer's condition outcomes")
def preview_rule(body, rule_id: str):  # type: ignore[no-untyped-def]
    """What a rule would do for a date or an event; nothing is written."""
    return preview(services(), rule_id, today=today(body.get("date")), now=now(),
                   customer_id=body.get("customer_id"), event_payload=body.get("event"),
                   sample=body.get("sample"))
