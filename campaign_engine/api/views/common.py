"""Shared view helpers and response schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask import current_app, g, url_for
from flask_smorest import abort

from ... import masking
from ...errors import NotFound
from ...rulebook.suggestions import did_you_mean
from ...store import audit


def state():  # type: ignore[no-untyped-def]
    return current_app.extensions["campaign"]


def services():  # type: ignore[no-untyped-def]
    """The request's snapshot of the services (taken when it began), else the current one."""
    return g.get("services") or state().runtime.services


def now() -> dt.datetime:
    return state().clock()


def accepted(report: Any) -> dict[str, Any]:
    """A RunReport as the 202 (or a replay's 200) body: where to follow the run."""
    return {"run_id": report.run_id, "status": report.status.value, "replayed": report.replayed,
            "event_key": report.event_key, "url": url_for("runs.get_run", run_id=report.run_id)}


def today(value: dt.date | None = None) -> dt.date:
    return value or now().astimezone(services().settings.tz).date()


def record(action: str, target: str | None, details: dict[str, Any] | None = None, *,
           conn: Any = None) -> None:
    """Append to the audit log as the calling key; pass `conn` to commit with the change itself."""
    if conn is not None:
        audit.record(conn, actor=getattr(g, "actor", "anonymous"), action=action, target=target,
                     now=now(), details=details)
        return
    with services().db.begin() as own:
        record(action, target, details, conn=own)


def mask_mobile(value: str | None) -> str | None:
    """campaign_engine.masking's 138****5678, for audit details; None stays None."""
    return masking.mask_mobile(value) if value else None


def mask_email(value: str | None) -> str | None:
    """campaign_engine.masking's z***@example.com, for audit details; None stays None."""
    return masking.mask_email(value) if value else value


class StrictQuery(ma.Schema):
    """Query arguments a list endpoint takes: any other parameter is a 400 naming it, with the
    closest one it takes (`actors=` would otherwise drop the filter silently and answer
    everything). webargs excludes unknown query parameters; this hook sees them first."""

    @ma.pre_load
    def _only_known_parameters(self, data: Any, **kwargs: Any) -> Any:
        known = sorted({field.data_key or name for name, field in self.fields.items() if not field.dump_only})
        unknown = sorted({str(k) for k in data} - set(known)) if hasattr(data, "keys") else []
        if unknown:
            first = unknown[0]
            abort(400, message=f"unknown query parameter {first[:40]!r}{did_you_mean(first, known)}: this endpoint "
                               f"takes {', '.join(known)}",
                  errors={"query": {name[:40]: [f"unknown parameter{did_you_mean(name, known)}"] for name in unknown}})
        return data


class PageArgs(StrictQuery):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=1000))
    after = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64),
                             metadata={"description": "cursor: the last id of the previous page"})


class RuleCountsSchema(ma.Schema):
    rule = ma.fields.String()
    candidates = ma.fields.Integer()
    matched = ma.fields.Integer()
    queued = ma.fields.Integer()
    scheduled = ma.fields.Integer()
    held_out = ma.fields.Integer(metadata={"description": "held out (the rule's holdout or the control group): "
                                                          "recorded as held_out messages, never sent"})
    duplicates = ma.fields.Integer()
    failed = ma.fields.Integer()
    suppressed = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    error = ma.fields.String(allow_none=True)
    skipped = ma.fields.String(metadata={"description": "why the rule did not run on the date (workdays_only on "
                                                       "an official non-working day); absent when it ran"})
    tasks = ma.fields.Integer(metadata={"description": "relationship-manager tasks (call, visit) planned; "
                                                       "present for rules that plan tasks"})
    merged = ma.fields.Integer(metadata={"description": "repeated alerts merged into the customer's open task"})
    seconds = ma.fields.Float()
    delivery = ma.fields.Dict(metadata={"description": "its messages now: counts per status (queued, scheduled, "
                                                      "sending, sent, delivered, failed) and suppressed by reason"})


class ShardsSchema(ma.Schema):
    """How far a run's shards are: each is a range of customers executed by one worker."""

    total = ma.fields.Integer()
    pending = ma.fields.Integer()
    running = ma.fields.Integer()
    completed = ma.fields.Integer()
    failed = ma.fields.Integer()


class RunSchema(ma.Schema):
    run_id = ma.fields.Integer(allow_none=True)
    kind = ma.fields.String()
    date = ma.fields.String()
    dry_run = ma.fields.Boolean()
    status = ma.fields.String()
    error = ma.fields.String(allow_none=True)
    event_key = ma.fields.String(allow_none=True)
    started_at = ma.fields.String(allow_none=True)
    finished_at = ma.fields.String(allow_none=True)
    replayed = ma.fields.Boolean()
    rule_ids = ma.fields.List(ma.fields.String(), metadata={"description": "the run's rules, in priority order"})
    rule_versions = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(), allow_none=True, metadata={
        "description": "the published version each rule ran in: {rule: {version, hash, generation}}"})
    shards = ma.fields.Nested(ShardsSchema, allow_none=True)
    rules = ma.fields.List(ma.fields.Nested(RuleCountsSchema))


class RunAcceptedSchema(ma.Schema):
    run_id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    replayed = ma.fields.Boolean(required=True)
    event_key = ma.fields.String(allow_none=True)
    url = ma.fields.String(required=True)


# The OpenAPI description of every contact-data field (campaign_engine.masking is the policy).
CONTACT_DATA_NOTE = ("masked (138****5678, z***@example.com) unless the key's role is admin, or an operator "
                     "(or admin) asks `reveal=contact` with a `reason`, which is written to the audit log")


class MessageSchema(ma.Schema):
    id = ma.fields.Integer()
    run_id = ma.fields.Integer()
    rule_id = ma.fields.String()
    category = ma.fields.String()
    priority = ma.fields.Integer()
    customer_id = ma.fields.String()
    subject_type = ma.fields.String()
    subject_id = ma.fields.String()
    channel = ma.fields.String()
    recipient = ma.fields.String(allow_none=True, metadata={"description": CONTACT_DATA_NOTE})
    status = ma.fields.String()
    subject = ma.fields.String(allow_none=True)
    body = ma.fields.String(allow_none=True)
    html = ma.fields.String(allow_none=True)
    sms_segments = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)
    consent_source = ma.fields.String(allow_none=True)
    consent_at = ma.fields.DateTime(allow_none=True)
    dedupe_key = ma.fields.String()
    created_at = ma.fields.DateTime()
    history = ma.fields.List(ma.fields.Dict(), allow_none=True, metadata={
        "description": "each operator retry: at, by, previous_status, previous_error, previous_attempts, "
                       "previous_channel, outcome, error (suppressed_reason when the policy refused it)"})
    due_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "when it may next be attempted: its creation, the start of its channel's sending "
                       "window (quiet hours), or a retry's backoff"})


class MessagePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MessageSchema))
    next = ma.fields.String(allow_none=True)


MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist (and would overflow the driver)


def numeric_cursor(value: str | None) -> int | None:
    """An `after` cursor for id-ordered lists: ASCII digits within BIGINT, else 400."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        abort(400, message="invalid cursor: pass the `next` value of the previous page",
              errors={"query": {"after": ["not a cursor this list produced"]}})
    return int(value)


def existing_id(kind: str, value: int) -> int:
    """A path id, or 404 when it is beyond any id the database can hold."""
    if value > MAX_ID:
        raise NotFound(kind, value)
    return value


def load_body(schema: ma.Schema, data: Any) -> dict[str, Any]:
    """Validate a body a view parses itself; errors answer 400 like any other body."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        abort(400, errors={"json": exc.messages})
        raise  # unreachable: abort raises


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def rule_file_body(schema: ma.Schema, query: dict[str, str]) -> dict[str, Any]:
    """A rule file sent as the body itself (a YAML content type; the other fields from the query
    string, with these defaults), or as JSON `{"source": ..., ...}`; validated by `schema`."""
    from flask import request

    if request.mimetype in YAML_TYPES:
        return load_body(schema, {"source": request.get_data(as_text=True),
                                  **{name: request.args.get(name, default) for name, default in query.items()}})
    if not request.is_json:  # text/plain, a form, or no Content-Type: never read as an empty body
        fields = "&".join(f"{name}=..." for name in query)
        sent = request.mimetype or "no Content-Type"
        abort(415, message=f"send the rule file as the body with Content-Type: application/yaml (?{fields} in the "
                           f"query string), or as JSON with Content-Type: application/json; got {sent[:80]}",
              details={"accepted": ["application/json", *YAML_TYPES]})
    return load_body(schema, request.get_json(silent=True))


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    """A keyset page: `next` is the cursor for the following page, null on the last."""
    return {"items": items, "next": str(items[-1][key]) if len(items) == limit else None}
