"""The customers screen: find a customer, see their profile, consents, contact history, manager tasks
and conversions; an admin grants or withdraws a channel's marketing consent (the domain calls of the
API's PUT /api/v1/customers/<id>/consents/<channel>, audited the same way with the console user)."""

from __future__ import annotations

import unicodedata
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...api.auth import ADMIN, READ
from ...api.views.customers import TIERS
from ...api.views.messages import message_page
from ...masking import shown
from ...store import audit
from ...store import customers as store
from ...store.console_data import customer_conversions
from ...store.task_list import query_tasks
from ...vocabulary import PHONE_CONSENT
from .. import auth
from ..blueprint import bp, t
from .messages import decided_access, next_url, parse_filters, with_extras

CONSENT_CHANNELS = ("sms", "email", PHONE_CONSENT)
CONTACT_FIELDS = ("mobile", "email")  # api.views.contact_data.CUSTOMER_CONTACT_FIELDS
MAX_ID_LENGTH = 32
MAX_SOURCE = 100  # the API's ConsentInSchema
PAGE = 50
HISTORY = 20


def _plain(text: str) -> bool:
    return bool(text.strip()) and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _masked(row: dict[str, Any]) -> dict[str, Any]:
    return shown(row, CONTACT_FIELDS, decided_access().contact_data)


@bp.route("/customers")
@auth.requires(READ)
def customers() -> Any:
    """Find one customer by id, or browse them in id order (by tier, branch, manager)."""
    q = (request.args.get("q") or "").strip()
    problems: list[str] = []  # the request's own mistakes (400)
    missing = None
    if q:
        if len(q) > MAX_ID_LENGTH or not _plain(q):
            problems.append(t("customers.bad_id"))
        else:
            with g.services.db.connect() as conn:
                found = store.get_customer(conn, q)
            if found is not None:
                return redirect(url_for("console.customer", customer_id=q))
            missing = t("customers.not_found", id=q)
    filters = {"tier": (request.args.get("tier") or "").strip() or None,
               "branch": (request.args.get("branch") or "").strip()[:64] or None,
               "manager_id": (request.args.get("manager") or "").strip()[:32] or None}
    if filters["tier"] and filters["tier"] not in TIERS:
        problems.append(t("customers.bad_tier"))
        filters["tier"] = None
    after = (request.args.get("after") or "").strip()
    if len(after) > 64 or (after and not _plain(after)):
        problems.append(t("customers.bad_cursor"))
        after = ""
    with g.services.db.connect() as conn:
        items = store.list_customers(conn, limit=PAGE, after=after or None, **filters)
    items = [_masked(row) for row in items]
    more = next_url("console.customers", items[-1]["customer_id"]) if len(items) == PAGE else None
    form = {"q": q, "tier": request.args.get("tier", ""), "branch": request.args.get("branch", ""),
            "manager": request.args.get("manager", "")}
    return render_template("console/customers/list.html", form=form, tiers=TIERS, items=items, next_url=more,
                           problems=problems, missing=missing), (400 if problems else 200)


def _consents(conn: Any, customer_id: str) -> list[dict[str, Any]]:
    stored = {c["channel"]: c for c in store.get_consents(conn, customer_id)}
    return [stored.get(ch, {"channel": ch, "granted": None, "source": None, "recorded_at": None})
            for ch in CONSENT_CHANNELS]


def _detail(customer_id: str, *, status: int = 200, consent_error: dict[str, str] | None = None) -> Any:
    with g.services.db.connect() as conn:
        customer = store.get_customer(conn, customer_id)
        if customer is None:
            abort(404)
        consents = _consents(conn, customer_id)
        tasks = query_tasks(conn, customer_id=customer_id, limit=HISTORY)
        conversions = customer_conversions(conn, customer_id, limit=HISTORY)
    args, bad = parse_filters(request.args, fields=())
    if bad:  # a hand-made cursor: the first page instead
        args, _ = parse_filters({})
    args["limit"] = HISTORY
    history = message_page(args, decided_access(), target=f"customer:{customer_id}:messages",
                           customer_id=customer_id)
    return render_template(
        "console/customers/detail.html", customer=_masked(customer), consents=consents,
        history=with_extras(history["items"]) if history["items"] else [],
        history_next=next_url("console.customer", history["next"], customer_id=customer_id),
        tasks=[_masked(task) for task in tasks], conversions=conversions, consent_error=consent_error or {},
        max_source=MAX_SOURCE), status


@bp.route("/customers/<customer_id>")
@auth.requires(READ)
def customer(customer_id: str) -> Any:
    return _detail(customer_id)


@bp.route("/customers/<customer_id>/consents/<any(sms, email, phone):channel>", methods=["POST"])
@auth.requires(ADMIN)
def change_consent(customer_id: str, channel: str) -> Any:
    """Grant or withdraw one channel's marketing consent, with where the answer came from."""
    choice = request.form.get("granted", "")
    source = (request.form.get("source") or "").strip()
    if choice not in ("1", "0"):
        return _detail(customer_id, status=400, consent_error={channel: t("customers.consent.bad_choice")})
    if not source or len(source) > MAX_SOURCE or not _plain(source):
        return _detail(customer_id, status=400,
                       consent_error={channel: t("customers.consent.bad_source", max=MAX_SOURCE)})
    granted = choice == "1"
    now = auth.now()
    suppressed = 0
    with g.services.db.begin() as conn:
        if store.get_customer(conn, customer_id) is None:
            abort(404)
        if granted:
            store.set_consent(conn, customer_id, channel, granted=True, source=source, now=now)
        else:  # at once: queued marketing messages (phone: open marketing tasks) on this channel go too
            suppressed = store.withdraw_marketing(conn, customer_id, channel, source=source, now=now, route="console")
        details: dict[str, Any] = {"source": source}
        if not granted:
            details["suppressed_messages"] = suppressed
        audit.record(conn, actor=g.actor, action="consent." + ("grant" if granted else "withdraw"),
                     target=f"{customer_id}:{channel}", now=now, details=details)
    channel_name = t(f"channel.{channel}")
    if granted:
        flash(t("customers.consent.granted", channel=channel_name), "success")
    elif channel == PHONE_CONSENT:
        flash(t("customers.consent.withdrawn_phone", channel=channel_name, n=suppressed), "success")
    else:
        flash(t("customers.consent.withdrawn", channel=channel_name, n=suppressed), "success")
    return redirect(url_for("console.customer", customer_id=customer_id) + "#consents")
