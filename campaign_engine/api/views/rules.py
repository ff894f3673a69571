"""Rules: list with status and next run, source, validate, reload, preview."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request

from ...errors import NotFound, Problem
from ...pipeline import preview
from ...pipeline.validate import calendar_warnings, catalogue_warnings, read_catalogue, validate_rules
from ...rulebook.loader import Rulebook, parse_rule_text
from ...rulebook.model import All, AnyOf, FieldRef, Node, Not, Rule
from ..auth import READ, RULES
from ..blueprint import ApiBlueprint
from ...store import scheduler_jobs
from .common import load_body, now, record, services, state, today

blp = ApiBlueprint("rules", __name__, url_prefix="/api/v1/rules", description="Campaign rules")


class ProblemSchema(ma.Schema):
    file = ma.fields.String()
    line = ma.fields.Integer()
    rule = ma.fields.String()
    field = ma.fields.String()
    reason = ma.fields.String(required=True)


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
    status = ma.fields.String(metadata={"description": "ok, or stale: live at its last good version while "
                                                      "its file has problems"})


class RuleDetailSchema(RuleSchema):
    conditions = ma.fields.Raw(metadata={"description": "the parsed condition tree"})
    source = ma.fields.String(metadata={"description": "the rule file's text"})


class RuleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RuleSchema))
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema))
    fingerprint = ma.fields.String()


class ValidateRequestSchema(ma.Schema):
    source = ma.fields.String(required=True, validate=ma.validate.Length(max=1_000_000),
                              metadata={"description": "rule YAML"})
    file = ma.fields.String(load_default="request.yaml", validate=ma.validate.Length(min=1, max=200))


class ValidateResultSchema(ma.Schema):
    valid = ma.fields.Boolean()
    rules = ma.fields.List(ma.fields.String())
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema))
    warnings = ma.fields.List(ma.fields.Nested(ProblemSchema), metadata={
        "description": "what could not be checked: product references while no products are loaded"})


class ReloadResultSchema(ma.Schema):
    rules = ma.fields.List(ma.fields.String())
    kept = ma.fields.List(ma.fields.String(), metadata={"description": "rules of broken files kept at their last good version"})
    problems = ma.fields.List(ma.fields.Nested(ProblemSchema))


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


def rule_data(rule: Rule, next_runs: dict[str, Any], broken_files: set[str]) -> dict[str, Any]:
    return {"status": "stale" if rule.file in broken_files else "ok","id": rule.id, "name": rule.name, "enabled": rule.enabled, "category": rule.category.value,
            "priority": rule.priority,
            "trigger": {"schedule": rule.trigger.schedule,
                        "event": rule.trigger.event.value if rule.trigger.event else None,
                        "subject": rule.trigger.subject.value},
            "channels": [c.value for c in rule.channels], "template": rule.template, "product": rule.product,
            "file": rule.file, "line": rule.line, "next_run": next_runs.get(rule.id)}


def _next_runs() -> dict[str, Any]:
    """From the shared job store: the scheduler may run in another process."""
    with services().db.connect() as conn:
        return scheduler_jobs.next_run_times(conn)


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.response(200, RuleListSchema)
def list_rules():  # type: ignore[no-untyped-def]
    """Live rules with their next scheduled run, and the problems of the rule folder."""
    rulebook = services().rulebook
    next_runs = _next_runs()
    broken = {p.file for p in rulebook.problems if p.file}
    return {"items": [rule_data(r, next_runs, broken) for r in sorted(rulebook.rules.values(), key=lambda r: r.id)],
            "problems": [p.as_dict() for p in rulebook.problems], "fingerprint": rulebook.fingerprint}


@blp.route("/<rule_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, RuleDetailSchema)
def get_rule(rule_id: str):  # type: ignore[no-untyped-def]
    """One rule: its parsed form and its file's source."""
    svc = services()
    rule = svc.rulebook.get(rule_id)
    if rule is None:
        raise NotFound("rule", rule_id)
    path = svc.settings.rules_dir / rule.file
    source = path.read_text(encoding="utf-8-sig") if path.is_file() else ""
    broken = {p.file for p in svc.rulebook.problems if p.file}
    return {**rule_data(rule, _next_runs(), broken), "conditions": node_data(rule.conditions), "source": source}


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


@blp.route("/validate", methods=["POST"])
@blp.secured(RULES)
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": ValidateRequestSchema},
    **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[::2]}}})
@blp.response(200, ValidateResultSchema)
def validate():  # type: ignore[no-untyped-def]
    """Check rule YAML without loading it: templates rendered against a sample, product codes and
    types checked against the products in the database.

    The body is the rule file itself (Content-Type application/yaml or text/yaml), or JSON
    `{"source": "<yaml>", "file": "name.yaml"}`.
    """
    if request.mimetype in YAML_TYPES:
        text = request.get_data(as_text=True)
        body = load_body(ValidateRequestSchema(), {"source": text,
                                                   "file": request.args.get("file", "request.yaml")})
    else:
        body = load_body(ValidateRequestSchema(), request.get_json(silent=True))
    svc = services()
    rules, problems = parse_rule_text(body["source"], body["file"])
    seen: dict[str, Rule] = {}
    for rule in rules:
        live = svc.rulebook.get(rule.id)
        if rule.id in seen:
            problems.append(Problem(f"duplicate rule id (first at line {seen[rule.id].line})", file=rule.file,
                                    line=rule.line, rule=rule.id, field="id"))
        elif live is not None and live.file != rule.file:
            problems.append(Problem(f"rule id already used in {live.file}:{live.line}", file=rule.file,
                                    line=rule.line, rule=rule.id, field="id"))
        seen.setdefault(rule.id, rule)
    missing = [r for r in rules if not (svc.settings.templates_dir / r.template).is_dir()]
    problems += [Problem(f"no template folder {r.template}/", file=r.file, line=r.line, rule=r.id,
                         field="template") for r in missing]
    rulebook = Rulebook({r.id: r for r in rules if r not in missing})
    catalogue = read_catalogue(svc.store)
    problems += validate_rules(rulebook, svc.templates, svc.settings, catalogue)
    return {"valid": not problems, "rules": [r.id for r in rules], "problems": [p.as_dict() for p in problems],
            "warnings": [w.as_dict() for w in catalogue_warnings(rulebook, catalogue)
                         + calendar_warnings(rulebook, svc.holidays, today())]}


@blp.route("/reload", methods=["POST"])
@blp.secured(RULES)
@blp.response(200, ReloadResultSchema)
def reload():  # type: ignore[no-untyped-def]
    """Reload rule files from disk atomically; a broken file keeps its last good rules live."""
    result = state().runtime.reload()
    record("rules.reload", None, {"rules": len(result.rules), "kept": list(result.kept),
                                  "problems": len(result.problems)})
    return {"rules": list(result.rules), "kept": list(result.kept),
            "problems": [p.as_dict() for p in result.problems]}


@blp.route("/<rule_id>/preview", methods=["POST"])
@blp.secured(RULES)
@blp.arguments(PreviewRequestSchema)
@blp.response(200, description="counts and sample messages, or one customer's condition outcomes")
def preview_rule(body, rule_id: str):  # type: ignore[no-untyped-def]
    """What a rule would do for a date or an event; nothing is written."""
    return preview(services(), rule_id, today=today(body.get("date")), now=now(),
                   customer_id=body.get("customer_id"), event_payload=body.get("event"),
                   sample=body.get("sample"))
