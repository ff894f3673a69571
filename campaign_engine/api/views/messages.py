"""The outbox and contact history."""

from __future__ import annotations

import marshmallow as ma

from ...errors import NotFound
from ...store.outbox import query_messages
from ..auth import READ
from ..blueprint import ApiBlueprint
from .common import MAX_ID, MessagePageSchema, MessageSchema, PageArgs, existing_id, numeric_cursor, services

blp = ApiBlueprint("messages", __name__, url_prefix="/api/v1/messages", description="Messages")


class MessageQuery(PageArgs):
    rule = ma.fields.String(validate=ma.validate.Length(max=64))
    customer = ma.fields.String(validate=ma.validate.Length(max=32))
    status = ma.fields.String(validate=ma.validate.Length(max=16))
    channel = ma.fields.String(validate=ma.validate.OneOf(["sms", "email"]))
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    created_from = ma.fields.AwareDateTime(data_key="from")
    created_to = ma.fields.AwareDateTime(data_key="to")


def message_page(args, **fixed):  # type: ignore[no-untyped-def]
    """A page of messages, newest first; `after` is the last id seen."""
    after = numeric_cursor(args.get("after"))
    with services().db.connect() as conn:
        items = query_messages(
            conn, rule_id=args.get("rule"), customer_id=fixed.get("customer_id", args.get("customer")),
            status=args.get("status"), channel=args.get("channel"), run_id=args.get("run"),
            created_from=args.get("created_from"), created_to=args.get("created_to"),
            limit=args["limit"], after_id=after)
    return {"items": items, "next": str(items[-1]["id"]) if len(items) == args["limit"] else None}


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.arguments(MessageQuery, location="query")
@blp.response(200, MessagePageSchema)
def list_messages(args):  # type: ignore[no-untyped-def]
    """Messages by rule, customer, status, channel, run and creation time, newest first."""
    return message_page(args)


@blp.route("/<int:message_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, MessageSchema)
def get_message(message_id: int):  # type: ignore[no-untyped-def]
    """One message."""
    with services().db.connect() as conn:
        rows = query_messages(conn, message_id=existing_id("message", message_id), limit=1)
    if not rows:
        raise NotFound("message", message_id)
    return rows[0]
