"""The review screen: the pending drafts, and one draft with its diff against the live version, its
effect on the audience for a date (or an event), and approve / reject (four eyes: never by its
author). Thin: pipeline.publishing decides and audits, as for the API's /rules/drafts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...api.auth import APPROVE, READ
from ...api.views.common import MAX_ID
from ...errors import CampaignEngineError, Conflict, NotFound, Refused, ValidationFailed
from ...pipeline import publishing
from ...vocabulary import DraftStatus
from .. import auth
from ..blueprint import bp, t, today
from .rules import diff_lines

PAGE = 50
AUDIENCE_SAMPLE = 10


def _services() -> Any:
    return g.services


@bp.route("/reviews")
@auth.requires(READ)
def reviews() -> Any:
    """The review queue (pending drafts, newest first), and the latest decided ones below it."""
    after = request.args.get("after", "")
    before_id = int(after) if after.isascii() and after.isdigit() and int(after) <= MAX_ID else None
    store = _services().store
    pending = [publishing.view_of(d) for d in store.drafts(status=DraftStatus.PENDING.value, before_id=before_id,
                                                           limit=PAGE)]
    next_url = url_for("console.reviews", after=pending[-1]["id"]) if len(pending) == PAGE else None
    recent = [] if before_id else [publishing.view_of(d) for d in store.drafts(limit=20)
                                   if d["status"] != DraftStatus.PENDING.value][:10]
    return render_template("console/reviews/list.html", pending=pending, recent=recent, next_url=next_url,
                           me=publishing.person(g.actor))


def _draft_or_404(draft_id: int) -> dict[str, Any]:
    if draft_id > MAX_ID:
        abort(404)
    try:
        return publishing.draft_view(_services(), draft_id, texts=True)
    except NotFound:
        abort(404)


def _audience(draft: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, list[Any]]:
    """draft_audience for the date (and event payload) asked, as the API's /drafts/{id}/diff."""
    if draft["status"] != DraftStatus.PENDING.value:
        return None, None, []
    text = (request.args.get("date") or "").strip()
    try:
        day = dt.date.fromisoformat(text) if text else today()
    except ValueError:
        return None, t("reviews.bad_date", value=text[:20]), []
    event = None
    if (request.args.get("event") or "").strip():
        try:
            event = json.loads(request.args["event"])
        except ValueError as exc:
            return None, t("reviews.event_not_json", reason=str(exc)), []
    try:
        result = publishing.draft_audience(_services(), draft["id"], today=day, now=auth.now(),
                                           event_payload=event, sample=AUDIENCE_SAMPLE)
    except ValidationFailed as exc:
        return None, t("reviews.audience_failed"), list(exc.problems)
    except CampaignEngineError as exc:
        return None, str(exc), []
    return result, None, []


@bp.route("/reviews/<int:draft_id>")
@auth.requires(READ)
def review(draft_id: int) -> Any:
    draft = _draft_or_404(draft_id)
    own = publishing.person(g.actor) == publishing.person(draft["author"])
    return render_template("console/reviews/detail.html", draft=draft, diff=diff_lines(draft.get("diff") or ""),
                           own=own, date=request.args.get("date") or today().isoformat(),
                           event=request.args.get("event") or "",
                           may_decide=auth.can(APPROVE) and not own and draft["status"] == DraftStatus.PENDING.value)


@bp.route("/reviews/<int:draft_id>/audience")
@auth.requires(READ)
def review_audience(draft_id: int) -> Any:
    """The audience change (htmx, after the page: a dry run of both versions may take a while)."""
    draft = _draft_or_404(draft_id)
    audience, audience_error, audience_problems = _audience(draft)
    return render_template("console/reviews/_audience.html", audience=audience, audience_error=audience_error,
                           audience_problems=audience_problems)


@bp.route("/reviews/<int:draft_id>/approve", methods=["POST"])
@auth.requires(APPROVE)
def review_approve(draft_id: int) -> Any:
    _draft_or_404(draft_id)
    content_hash = (request.form.get("content_hash") or "").strip() or None
    try:
        draft = publishing.approve(_services(), draft_id, actor=g.actor, now=auth.now(), content_hash=content_hash)
    except Refused as exc:  # its author: refused (and audited) by the domain
        flash(t("reviews.refused", reason=str(exc)), "error")
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        flash(t("reviews.approved", id=draft_id, rules=", ".join(draft["rules"])), "success")
    return redirect(url_for("console.review", draft_id=draft_id))


@bp.route("/reviews/<int:draft_id>/reject", methods=["POST"])
@auth.requires(APPROVE)
def review_reject(draft_id: int) -> Any:
    _draft_or_404(draft_id)
    reason = (request.form.get("reason") or "").strip()
    try:
        publishing.reject(_services(), draft_id, actor=g.actor, reason=reason, now=auth.now())
    except ValidationFailed:
        flash(t("reviews.reason_needed"), "error")
    except Refused as exc:
        flash(t("reviews.refused", reason=str(exc)), "error")
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        flash(t("reviews.rejected", id=draft_id), "success")
    return redirect(url_for("console.review", draft_id=draft_id))
