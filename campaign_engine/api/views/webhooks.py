"""Callbacks from providers and customers: delivery receipts, SMS replies, unsubscribe links.

Providers are authenticated by an HMAC-SHA256 signature of the raw body (no API key);
customers by the signature inside their unsubscribe link (no login).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from html import escape
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_smorest import abort

from ...store import customers as customer_store
from ...store.outbox import record_receipt
from ...unsubscribe import read_token
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from .common import now, record, services

blp = ApiBlueprint("webhooks", __name__, url_prefix="", description="Provider and customer callbacks")


class ReceiptResultSchema(ma.Schema):
    updated = ma.fields.Integer()
    unknown = ma.fields.List(ma.fields.String())


class ReplyResultSchema(ma.Schema):
    opted_out = ma.fields.List(ma.fields.String(), metadata={"description": "customers whose SMS consent ended"})
    keyword = ma.fields.String(allow_none=True)


def _signed_items(provider: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The provider's settings and the body's items, after the signature check."""
    config = services().settings.webhooks.get(provider)
    if config is None:
        abort(404, message=f"no webhook settings for provider {provider!r}")
    raw = request.get_data()
    header = config.get("signature_header", "X-Signature")
    expected = hmac.new(str(config["secret"]).encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get(header, "").strip().lower(), expected):
        abort(401, message=f"bad or missing {header} signature")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        abort(400, message="the body is not JSON")
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(i, dict) for i in items):
        abort(400, message="expected a JSON object or a list of objects")
    return config, items


_SIGNED = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
           "security": []}


@blp.route("/api/v1/receipts/<provider>", methods=["POST"])
@blp.doc(**_SIGNED)
@blp.response(200, ReceiptResultSchema)
@blp.alt_response(401, schema=ErrorSchema, description="bad signature")
@blp.alt_response(404, schema=ErrorSchema, description="unknown provider")
def receipts(provider: str):  # type: ignore[no-untyped-def]
    """Delivery receipts: the message becomes delivered, or failed with the provider's reason."""
    config, items = _signed_items(provider)
    fields = config.get("receipt", {})
    delivered_values = {str(v).lower() for v in fields.get("delivered", ["delivered"])}
    failed_values = {str(v).lower() for v in fields.get("failed", ["failed"])}
    updated, unknown = 0, []
    with services().db.begin() as conn:
        for item in items:
            message_id = str(item.get(fields.get("id_field", "message_id"), ""))
            status = str(item.get(fields.get("status_field", "status"), "")).lower()
            if not message_id or status not in delivered_values | failed_values:
                unknown.append(message_id or "?")
                continue
            if record_receipt(conn, provider=provider, provider_message_id=message_id,
                              delivered=status in delivered_values,
                              error=str(item.get(fields.get("error_field", "error")) or status), now=now()):
                updated += 1
            else:
                unknown.append(message_id)
    return {"updated": updated, "unknown": unknown}


@blp.route("/api/v1/inbound/sms/<provider>", methods=["POST"])
@blp.doc(**_SIGNED)
@blp.response(200, ReplyResultSchema)
@blp.alt_response(401, schema=ErrorSchema, description="bad signature")
@blp.alt_response(404, schema=ErrorSchema, description="unknown provider")
def inbound_sms(provider: str):  # type: ignore[no-untyped-def]
    """An SMS reply; an opt-out keyword (TD, T, 退订, R, STOP…) ends SMS marketing consent at once."""
    config, items = _signed_items(provider)
    fields = config.get("reply", {})
    keywords = services().settings.opt_out_keywords
    opted_out: list[str] = []
    keyword = None
    for item in items:
        sender = str(item.get(fields.get("from_field", "from"), "")).strip()
        text = str(item.get(fields.get("text_field", "text"), "")).strip()
        if not sender or text.upper() not in keywords:
            continue
        keyword = text
        with services().db.begin() as conn:
            for customer_id in customer_store.customers_by_address(conn, "sms", sender):
                suppressed = customer_store.withdraw_marketing(conn, customer_id, "sms", now=now(),
                                                               source=f"sms-reply:{provider}:{text}"[:100], route="sms_reply")
                opted_out.append(customer_id)
                record("consent.withdraw", f"{customer_id}:sms",
                       {"source": f"sms-reply:{provider}", "keyword": text, "suppressed_messages": suppressed},
                       conn=conn)
    return {"opted_out": opted_out, "keyword": keyword}


_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em; color: #222">
{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=escape(title), body=body), status=status, mimetype="text/html")


@blp.route("/u/<token>", methods=["GET", "POST"])
@blp.doc(security=[])
@blp.response(200, content_type="text/html", description="the page (GET) or the confirmation (POST)")
@blp.alt_response(404, content_type="text/html", description="an invalid link")
def unsubscribe(token: str):  # type: ignore[no-untyped-def]
    """One-click unsubscribe (RFC 8058 POST from mail clients, or the button on this page).

    GET only shows the page: link scanners fetch links, and must not unsubscribe anyone.
    """
    found = read_token(services().settings.secret_key, token)
    if found is None:
        return _page("链接无效 / Invalid link", "<p>此退订链接无效或已损坏。</p><p>This unsubscribe link is not valid.</p>",
                     404)
    customer_id, channel = found
    what_zh, what_en = ("短信", "text messages") if channel == "sms" else ("邮件", "emails")
    if request.method == "GET":
        return _page("退订 / Unsubscribe", f"""<h1>退订营销{what_zh}</h1>
<p>点击下方按钮后，您将不再收到我行的营销{what_zh}。服务通知（如到期提醒）不受影响。</p>
<p>Click the button to stop marketing {what_en} from us. Service notices are not affected.</p>
<form method="post"><button type="submit" style="font-size: 1.1em; padding: .5em 1.5em">
确认退订 / Unsubscribe</button></form>""")
    with services().db.begin() as conn:
        if customer_store.get_customer(conn, customer_id) is not None:
            suppressed = customer_store.withdraw_marketing(conn, customer_id, channel, now=now(),
                                                           source=f"unsubscribe-link:{channel}", route="unsubscribe_link")
            record("consent.withdraw", f"{customer_id}:{channel}",
                   {"source": "unsubscribe-link", "suppressed_messages": suppressed}, conn=conn)
    return _page("已退订 / Unsubscribed", f"""<h1>您已成功退订</h1>
<p>您将不再收到我行的营销{what_zh}。如需重新订阅，请联系您的客户经理或前往网点。</p>
<h2>You are unsubscribed</h2><p>You will no longer receive marketing {what_en} from us.</p>""")
