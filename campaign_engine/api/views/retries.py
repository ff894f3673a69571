"""POST /messages/retry: failed messages rendered again and queued once their cause is fixed."""

from __future__ import annotations

import marshmallow as ma
from flask import g

from ...pipeline.retry import RETRYABLE, RetryRequest, retry_messages
from ..auth import RUN
from ..blueprint import ApiBlueprint
from .common import MAX_ID, now, record, services

blp = ApiBlueprint("retries", __name__, url_prefix="/api/v1/messages", description="Retrying failed messages")

MAX_MESSAGE_IDS = 10_000


class RetryBodySchema(ma.Schema):
    message_ids = ma.fields.List(ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID)),
                                 validate=ma.validate.Length(min=1, max=MAX_MESSAGE_IDS),
                                 metadata={"description": "these messages (instead of run/rule)"})
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID),
                            metadata={"description": "the failed messages of this run"})
    rule = ma.fields.String(validate=ma.validate.Length(min=1, max=64),
                            metadata={"description": "the failed messages of this rule (with run: of that run)"})
    status = ma.fields.String(load_default=RETRYABLE[0], validate=ma.validate.OneOf(RETRYABLE))
    dry_run = ma.fields.Boolean(load_default=False, metadata={"description": "render and decide, write nothing"})


class RetriedMessageSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    status = ma.fields.String(allow_none=True, metadata={"description": "where it stands now (null: no such "
                                                                         "message); in a dry run, would stand"})
    error = ma.fields.String(metadata={"description": "why it is still failed or was skipped"})
    skipped_because = ma.fields.String(metadata={
        "description": "not_found, not_failed, rule_not_live, template_failed (still failed, with the new "
                       "error), subject_gone, or the contact policy's suppression reason (status suppressed)"})


class RetryResultSchema(ma.Schema):
    dry_run = ma.fields.Boolean(required=True)
    retried = ma.fields.Integer(required=True, metadata={"description": "queued (or scheduled) again"})
    skipped = ma.fields.Integer(required=True)
    messages = ma.fields.List(ma.fields.Nested(RetriedMessageSchema), required=True)


@blp.route("/retry", methods=["POST"])
@blp.secured(RUN)
@blp.arguments(RetryBodySchema)
@blp.response(200, RetryResultSchema)
def retry(body):  # type: ignore[no-untyped-def]
    """Render failed messages again with the live rule and template and queue them (same message, same
    idempotency key; the contact policy decided again now). Each message's history keeps the retry."""
    request = RetryRequest(message_ids=tuple(body.get("message_ids") or ()), run_id=body.get("run"),
                           rule_id=body.get("rule"), status=body["status"], dry_run=body["dry_run"])
    result = retry_messages(services(), request, now=now(), actor=getattr(g, "actor", "anonymous"))
    if not request.dry_run and result.messages:
        record("messages.retry", result.audit_target(), result.audit_details())
    return result.as_dict()

