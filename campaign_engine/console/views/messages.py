"""The messages screen: search the outbox and contact history by rule, customer, status, channel and
creation date, newest first, recipients masked as the API masks them (GET /api/v1/messages: the same
argument schema, the same query, api.views.messages.message_page)."""

from __future__ import annotations

from typing import Any, Mapping

import marshmallow as ma
from flask import g, render_template, request, url_for

from ...api.auth import READ
from ...api.views.common import MAX_ID
from ...api.views.messages import STATUSES, MessageQuery, message_page
from ...masking import contact_access
from ...store.console_data import message_extras
from .. import auth
from ..blueprint import bp, t

FIELDS = ("rule", "customer", "status", "channel", "from", "to", "run")
LIMITS = (20, 50, 100)
DEFAULT_LIMIT = 50
CHANNELS = ("sms", "email")


def decided_access() -> Any:
    """What this user may see of contact data: the API's policy for their role (no reveal here)."""
    return contact_access(g.get("role", ""), reveal=False)


def parse_filters(values: Mapping[str, str], fields: tuple[str, ...] = FIELDS) -> tuple[dict[str, Any], list[str]]:
    """The form's values through the API's MessageQuery schema -> (loaded args, fields in error).

    Blank fields are left out; a bad cursor or limit is an error of its own, never a 500."""
    raw = {k: values.get(k, "").strip() for k in fields}
    raw = {k: v for k, v in raw.items() if v}
    bad: list[str] = []
    limit_text = (values.get("limit") or "").strip()
    if limit_text:
        if limit_text.isascii() and limit_text.isdigit() and 1 <= int(limit_text) <= 1000:
            raw["limit"] = limit_text
        else:
            bad.append("limit")
    after = (values.get("after") or "").strip()
    if after:
        if after.isascii() and after.isdigit() and int(after) <= MAX_ID:
            raw["after"] = after
        else:
            bad.append("after")
    try:
        args = MessageQuery().load(raw)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {}
        bad += [{"created_from": "from", "created_to": "to"}.get(k, k) for k in messages]
        args = {}
    if not bad and args.get("created_from") and args.get("created_to"):
        low, high = args["created_from"], args["created_to"]
        if type(low) is type(high) and low > high:
            bad.append("to")
    args.setdefault("limit", DEFAULT_LIMIT)
    return args, sorted(set(bad))


def with_extras(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message of a page with its rule version and suppression reason (one query by id)."""
    with g.services.db.connect() as conn:
        extras = message_extras(conn, [item["id"] for item in items])
    return [{**item, **extras.get(item["id"], {})} for item in items]


def next_url(endpoint: str, cursor: str | None, **kwargs: Any) -> str | None:
    if not cursor:
        return None
    # the page's own filters, never url_for's options (_external, _anchor ..) nor the route's arguments
    params: dict[str, Any] = {k: v for k, v in request.args.items() if v and not k.startswith("_")}
    params.update(kwargs, after=cursor)
    return url_for(endpoint, **params)


@bp.route("/messages")
@auth.requires(READ)
def messages() -> Any:
    args, bad = parse_filters(request.args)
    result: dict[str, Any] = {"items": [], "next": None}
    if not bad:
        result = message_page(args, decided_access(), target="messages")
    items = with_extras(result["items"]) if result["items"] else []
    return render_template("console/messages/list.html", form={k: request.args.get(k, "") for k in FIELDS},
                           limit=args["limit"], limits=LIMITS, bad=bad, statuses=STATUSES, channels=CHANNELS,
                           items=items, rule_ids=sorted(g.services.rulebook.rules),
                           next_url=None if bad else next_url("console.messages", result["next"]),
                           error=t("messages.bad_query") if bad else None), (400 if bad else 200)
