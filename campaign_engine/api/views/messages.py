"""The outbox and contact history."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import marshmallow as ma

from ...errors import NotFound
from ...masking import Access
from ...store.outbox import query_messages
from ...vocabulary import MessageStatus
from ..auth import READ
from ..blueprint import ApiBlueprint
from .common import MAX_ID, MessagePageSchema, MessageSchema, PageArgs, existing_id, numeric_cursor, services
from .contact_data import MESSAGE_CONTACT_FIELDS, RevealArgs, access, present

blp = ApiBlueprint("messages", __name__, url_prefix="/api/v1/messages", description="Messages")

STATUSES = [status.value for status in MessageStatus]
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_UTC_MIN = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
_UTC_MAX = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


class DateOrDateTime(ma.fields.String):
    """A date-time with its offset, or a date alone (a whole day in the configured time zone)."""

    _datetime = ma.fields.AwareDateTime()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date | dt.datetime:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _DATE_ONLY.fullmatch(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise ma.ValidationError("not a date YYYY-MM-DD") from None
        moment: dt.datetime = self._datetime._deserialize(text, attr, data, **kwargs)
        return moment


class MessageQuery(PageArgs, RevealArgs):
    rule = ma.fields.String(validate=ma.validate.Length(max=64))
    customer = ma.fields.String(validate=ma.validate.Length(max=32))
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    channel = ma.fields.String(validate=ma.validate.OneOf(["sms", "email"]))
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID))
    created_from = DateOrDateTime(data_key="from", metadata={
        "description": "created at or after: a date-time with offset, or a date (2026-12-01: from the start of "
                       "that day in the configured time zone)", "example": "2026-12-01"})
    created_to = DateOrDateTime(data_key="to", metadata={
        "description": "created before: a date-time with offset, or a date (2026-12-01: up to the end of that "
                       "day in the configured time zone, the day included)", "example": "2026-12-01"})


def created_bound(value: dt.date | dt.datetime | None, tz: dt.tzinfo, *, upper: bool) -> dt.datetime | None:
    """A `from`/`to` value as a UTC instant: a date is the start of that day in `tz` (of the next day
    for `to`, which is exclusive); an instant beyond what a datetime can hold is clamped."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.combine(value + dt.timedelta(days=1) if upper else value, dt.time(), tz)
        except OverflowError:  # the day after 9999-12-31: no upper bound
            return None
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        return _UTC_MIN if value.year == dt.MINYEAR else _UTC_MAX


def message_page(args: dict[str, Any], decided: Access, *, target: str, **fixed: Any) -> dict[str, Any]:
    """A page of messages, newest first; `after` is the last id seen. Filters see the real
    contact data; the answer shows it as `decided`."""
    after = numeric_cursor(args.get("after"))
    tz = services().settings.tz
    with services().db.connect() as conn:
        items = query_messages(
            conn, rule_id=args.get("rule"), customer_id=fixed.get("customer_id", args.get("customer")),
            status=args.get("status"), channel=args.get("channel"), run_id=args.get("run"),
            created_from=created_bound(args.get("created_from"), tz, upper=False),
            created_to=created_bound(args.get("created_to"), tz, upper=True),
            limit=args["limit"], after_id=after)
    items = present(items, MESSAGE_CONTACT_FIELDS, decided, args, target=target, key="id")
    return {"items": items, "next": str(items[-1]["id"]) if len(items) == args["limit"] else None}


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.arguments(MessageQuery, location="query")
@blp.response(200, MessagePageSchema)
def list_messages(args):  # type: ignore[no-untyped-def]
    """Messages by rule, customer, status, channel, run and creation time, newest first.

    Recipients are masked unless the key's role is admin, or an operator asks `reveal=contact`
    with a `reason` (audited).
    """
    return message_page(args, access(args), target="messages")


@blp.route("/<int:message_id>", methods=["GET"])
@blp.secured(READ)
@blp.arguments(RevealArgs, location="query")
@blp.response(200, MessageSchema)
def get_message(args, message_id: int):  # type: ignore[no-untyped-def]
    """One message; its recipient masked as in the list."""
    decided = access(args)
    with services().db.connect() as conn:
        rows = query_messages(conn, message_id=existing_id("message", message_id), limit=1)
    if not rows:
        raise NotFound("message", message_id)
    return present(rows, MESSAGE_CONTACT_FIELDS, decided, args, target=f"message:{message_id}", key="id")[0]
