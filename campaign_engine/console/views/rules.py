"""The rules screen: the published set with status, version, next run and last run's funnel; a rule's
history; the emergency stop and enabling again; and the editor (YAML and templates) with live
validation, a dry-run preview and an explanation of the text being edited, and submitting it as a
draft. Thin: pipeline.publishing and pipeline.preview decide, as for the API's /rules and /rules/drafts."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...api.auth import READ, RULES
from ...errors import CampaignEngineError, Conflict, NotFound, Problem, Refused, ValidationFailed
from ...evaluation.engine import RuleEngine
from ...pipeline import preview as run_preview
from ...pipeline import publishing
from ...rulebook.fields import CALENDAR_FIELDS, CUSTOMER_FIELDS, DEPOSIT_FIELDS, EVENT_FIELDS
from ...rulebook.loader import parse_rule_text, template_texts
from ...rulebook.model import OPERATORS
from ...pipeline.validate import read_catalogue
from ...store import console_rules, scheduler_jobs
from ...vocabulary import DraftStatus
from .. import auth
from ..blueprint import bp, t, today

# The template parts the editor offers (a rule's folder may have fewer: an empty one is not sent).
TEMPLATE_PARTS = ("sms.txt.j2", "email.subject.j2", "email.txt.j2", "email.html.j2", "task.txt.j2")
PART_FIELD = "part:"  # form field name prefix of a template part's text area
PREVIEW_SAMPLE = 5
NEW_RULE = """# 规则文件：一个文件可以定义一条或多条规则
id: my-new-rule
name: 新规则
category: marketing
priority: 50
trigger:
  schedule: "0 9 * * *"
  subject: customer
conditions:
  all:
    - customer.tier: {in: [gold, platinum]}
channels: [sms]
template: my-new-rule
"""


def _services() -> Any:
    return g.services


def _now() -> dt.datetime:
    return auth.now()


# --------------------------------------------------------------------------- the list

def _pending_by_rule(limit: int = 200) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Pending drafts: the newest naming each rule, and all of them (bounded: the review queue)."""
    drafts = [publishing.view_of(d) for d in _services().store.drafts(status=DraftStatus.PENDING.value, limit=limit)]
    by_rule: dict[str, dict[str, Any]] = {}
    for draft in drafts:
        for rule_id in draft["rules"]:
            by_rule.setdefault(rule_id, draft)
    return by_rule, drafts


@bp.route("/rules")
@auth.requires(READ)
def rules() -> Any:
    svc = _services()
    book = svc.rulebook
    with svc.db.connect() as conn:
        next_runs = scheduler_jobs.next_run_times(conn)
        last = console_rules.last_run_stats(conn, [*book.rules, *book.broken])
    published = svc.store.live_state(list(book.rules) + list(book.broken))
    pending, _ = _pending_by_rule()
    rows = []
    for rule in sorted(book.rules.values(), key=lambda r: (r.priority, r.id)):
        state = published.get(rule.id) or {}
        rows.append({"id": rule.id, "name": rule.name, "status": "live" if rule.enabled else "disabled",
                     "kind": "event" if rule.trigger.event else "scheduled",
                     "event": rule.trigger.event.value if rule.trigger.event else None,
                     "schedule": rule.trigger.schedule, "category": rule.category.value,
                     "channels": [c.value for c in rule.channels], "version": rule.version,
                     "author": state.get("author"), "approver": state.get("approver"),
                     "published_at": state.get("published_at"),
                     "next_run": next_runs.get(rule.id) if rule.enabled and rule.trigger.schedule else None,
                     "last": last.get(rule.id), "pending": pending.get(rule.id),
                     "stopped": book.stopped.get(rule.id), "problems": ()})
    for rule_id, problems in sorted(book.broken.items()):
        state = published.get(rule_id) or {}
        rows.append({"id": rule_id, "name": None, "status": "broken", "kind": None, "event": None,
                     "schedule": None, "category": None, "channels": [], "version": state.get("version"),
                     "author": state.get("author"), "approver": state.get("approver"),
                     "published_at": state.get("published_at"), "next_run": None, "last": last.get(rule_id),
                     "pending": pending.get(rule_id), "stopped": None, "problems": problems})
    known = {r["id"] for r in rows}
    new_pending = [d for d in {id(d): d for d in pending.values()}.values()
                   if any(r not in known for r in d["rules"])]
    return render_template("console/rules/list.html", rows=rows, new_pending=new_pending,
                           generation=book.generation, unnamed=[p for p in book.problems if not p.rule])


# --------------------------------------------------------------------------- one rule

def _rule_or_404(rule_id: str) -> tuple[Any, list[dict[str, Any]]]:
    svc = _services()
    rule = svc.rulebook.get(rule_id)
    try:
        versions = publishing.history(svc, rule_id)
    except NotFound:
        versions = []
    if rule is None and not versions:
        abort(404)
    return rule, versions


@bp.route("/rules/<rule_id>")
@auth.requires(READ)
def rule_detail(rule_id: str) -> Any:
    svc = _services()
    rule, versions = _rule_or_404(rule_id)
    state = svc.store.live_state([rule_id]).get(rule_id)
    with svc.db.connect() as conn:
        next_run = scheduler_jobs.next_run_times(conn).get(rule_id) if rule is not None and rule.enabled else None
        last = console_rules.last_run_stats(conn, [rule_id]).get(rule_id)
    pending, _ = _pending_by_rule()
    status = "broken" if rule is None else "live" if rule.enabled else "disabled"
    return render_template("console/rules/detail.html", rule=rule, rule_id=rule_id, status=status, state=state,
                           versions=versions, next_run=next_run, last=last, pending=pending.get(rule_id),
                           stopped=svc.rulebook.stopped.get(rule_id), problems=svc.rulebook.problems_for(rule_id),
                           diff_lines=diff_lines)


@bp.route("/rules/<rule_id>/disable", methods=["POST"])
@auth.requires(RULES)
def rule_disable(rule_id: str) -> Any:
    reason = (request.form.get("reason") or "").strip()
    try:
        result = publishing.disable(_services(), rule_id, actor=g.actor, reason=reason, now=_now())
    except NotFound:
        abort(404)
    except ValidationFailed as exc:
        flash(t("rules.disable_failed", reason="; ".join(p.reason for p in exc.problems)), "error")
    else:
        flash(t("rules.disabled_note", rule=rule_id, n=result.get("suppressed_messages", 0)), "success")
    return redirect(url_for("console.rule_detail", rule_id=rule_id))


@bp.route("/rules/<rule_id>/enable", methods=["POST"])
@auth.requires(RULES)
def rule_enable(rule_id: str) -> Any:
    note = (request.form.get("note") or "").strip()[:publishing.NOTE_MAX]
    try:
        draft = publishing.enable(_services(), rule_id, actor=g.actor, note=note, now=_now())
    except NotFound:
        abort(404)
    except Conflict as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.rule_detail", rule_id=rule_id))
    flash(t("rules.enable_requested", id=draft["id"], status=t("status." + draft["status"])), "success")
    if draft["status"] == DraftStatus.PENDING.value:
        return redirect(url_for("console.review", draft_id=draft["id"]))
    return redirect(url_for("console.rule_detail", rule_id=rule_id))


def diff_lines(text: str) -> list[tuple[str, str]]:
    """A unified diff's lines with their class: add, del, hunk (@@ and file headers) or context."""
    out = []
    for line in (text or "").splitlines():
        kind = ("hunk" if line.startswith(("@@", "+++", "---")) else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "ctx")
        out.append((kind, line))
    return out


# --------------------------------------------------------------------------- the editor

def _catalogue() -> dict[str, Any]:
    """The fields a condition may use (by namespace), the operators, and the bank's products."""
    namespaces: list[tuple[str, str | None, dict[str, Any]]] = [
        ("customer", None, CUSTOMER_FIELDS), ("calendar", None, CALENDAR_FIELDS), ("deposit", None, DEPOSIT_FIELDS)]
    namespaces += [("event", event.value, fields) for event, fields in EVENT_FIELDS.items()]
    catalogue = read_catalogue(_services().store)
    products = dict(sorted(_services().store.known_products().items())) if catalogue.checkable else {}
    return {"namespaces": namespaces, "operators": OPERATORS, "products": products,
            "product_types": sorted(set(products.values())), "unavailable": catalogue.unavailable}


def _parts(templates: dict[str, str], folder: str | None) -> list[tuple[str, str]]:
    """(part, text) for each text area: the usual parts, and any other part the folder has."""
    own = {path.split("/", 1)[1]: text for path, text in template_texts(templates, folder).items()} if folder else {}
    names = list(TEMPLATE_PARTS) + sorted(p for p in own if p not in TEMPLATE_PARTS)
    return [(name, own.get(name, "")) for name in names]


def _form_parts() -> list[tuple[str, str]]:
    """The text areas as the form sent them (the editor shown again after a refused submit)."""
    sent = {k[len(PART_FIELD):]: v for k, v in request.form.items() if k.startswith(PART_FIELD)}
    return [(name, sent.get(name, "")) for name in list(TEMPLATE_PARTS) + sorted(set(sent) - set(TEMPLATE_PARTS))]


def _editor(*, file: str, source: str, parts: list[tuple[str, str]], folder: str | None, rule_id: str | None,
            note: str = "", problems: list[Problem] | None = None, status: int = 200) -> Any:
    return render_template("console/rules/editor.html", file=file, source=source, parts=parts,
                           folder=folder, rule_id=rule_id, note=note,
                           problems=_located(problems or [], source, file),
                           known_parts=TEMPLATE_PARTS, catalogue=_catalogue(), today=today()), status


@bp.route("/rules/new")
@auth.requires(RULES)
def rule_new() -> Any:
    return _editor(file="my-new-rule.yaml", source=NEW_RULE, parts=_parts({}, None), folder="my-new-rule",
                   rule_id=None)


@bp.route("/rules/<rule_id>/edit")
@auth.requires(RULES)
def rule_edit(rule_id: str) -> Any:
    svc = _services()
    state = svc.store.live_state([rule_id]).get(rule_id)
    if state is None:
        abort(404)
    [version] = svc.store.rule_versions([int(state["version_id"])])
    rule = svc.rulebook.get(rule_id)
    rules_of_file, _ = parse_rule_text(version["source"], version["file"])
    folder = rule.template if rule is not None else next(
        (r.template for r in rules_of_file if r.id == rule_id), None)
    return _editor(file=version["file"], source=version["source"], parts=_parts(dict(version["templates"]), folder),
                   folder=folder, rule_id=rule_id)


def _submission(note: str = "") -> tuple[publishing.Submission, str | None]:
    """The editor's form as a Submission: its template parts go to the folder its rule names."""
    form = request.form
    file = (form.get("file") or "").strip()
    source = (form.get("source") or "").replace("\r\n", "\n")
    rules_of_file, _ = parse_rule_text(source, file or "rule.yaml")
    wanted = (form.get("rule_id") or "").strip()
    chosen = next((r for r in rules_of_file if r.id == wanted), rules_of_file[0] if rules_of_file else None)
    folder = chosen.template if chosen is not None else None
    templates = {}
    if folder:
        for key, text in form.items():
            if key.startswith(PART_FIELD) and text.strip():
                templates[f"{folder}/{key[len(PART_FIELD):]}"] = text.replace("\r\n", "\n")
    sub = publishing.Submission(file, source, templates, note, g.actor)
    return sub, (chosen.id if chosen is not None else None)


def _checked() -> tuple[Any, list[Problem], str | None]:
    """publishing.check of the editor's text: (Checked or None, problems, the rule previewed)."""
    sub, rule_id = _submission("check")
    try:
        checked = publishing.check(_services(), sub)
    except ValidationFailed as exc:
        return None, list(exc.problems), rule_id
    return checked, list(checked.problems), rule_id


def _located(problems: list[Problem], source: str, file: str) -> list[dict[str, Any]]:
    """Each problem with the text of its line when it is in the rule file."""
    lines = source.splitlines()
    return [{**p.as_dict(), "text": lines[p.line - 1] if p.line and (p.file in (None, file))
             and 0 < p.line <= len(lines) else None} for p in problems]


@bp.route("/rules/check", methods=["POST"])
@auth.requires(RULES)
def rule_check() -> Any:
    """Live validation (htmx): the problems of the text in the editor, each at its line."""
    checked, problems, rule_id = _checked()
    form = request.form
    return render_template("console/rules/_check.html",
                           problems=_located(problems, form.get("source") or "", (form.get("file") or "").strip()),
                           rules=sorted(checked.book.rules) if checked is not None else [],
                           folder=(checked.book.rules[rule_id].template
                                   if checked is not None and rule_id in checked.book.rules else None))


def _dry_services(checked: Any) -> Any:
    """The services with the editor's rules in place of the published ones (as draft_diff dry-runs a
    draft): nothing is written, the live set is untouched."""
    return replace(_services(), rulebook=checked.book, engine=RuleEngine(list(checked.book.rules.values())))


def _event_payload() -> tuple[Any, str | None]:
    text = (request.form.get("event") or "").strip()
    if not text:
        return None, None
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, t("rules.event_not_json", reason=str(exc))


def _date() -> tuple[dt.date, str | None]:
    text = (request.form.get("date") or "").strip()
    if not text:
        return today(), None
    try:
        return dt.date.fromisoformat(text), None
    except ValueError:
        return today(), t("rules.bad_date", value=text[:20])


def _dry_run(customer_id: str | None) -> Any:
    checked, problems, rule_id = _checked()
    template = "console/rules/_explain.html" if customer_id is not None else "console/rules/_preview.html"
    source, file = request.form.get("source") or "", (request.form.get("file") or "").strip()
    if checked is None or problems or rule_id is None:
        return render_template(template, error=t("rules.fix_first"), problems=_located(problems, source, file))
    payload, bad_event = _event_payload()
    day, bad_date = _date()
    if bad_event or bad_date:
        return render_template(template, error=bad_event or bad_date, problems=[])
    try:
        result = run_preview(_dry_services(checked), rule_id, today=day, now=_now(), customer_id=customer_id,
                             event_payload=payload, sample=PREVIEW_SAMPLE)
    except ValidationFailed as exc:
        return render_template(template, error=t("rules.preview_failed"),
                               problems=_located(list(exc.problems), source, file))
    except NotFound:
        return render_template(template, error=t("rules.no_customer", id=customer_id), problems=[])
    except CampaignEngineError as exc:
        return render_template(template, error=str(exc), problems=[])
    return render_template(template, result=result, rule_id=rule_id, error=None, problems=[])


@bp.route("/rules/preview", methods=["POST"])
@auth.requires(RULES)
def rule_preview() -> Any:
    """What the text in the editor would do for a date or an event: counts and sample messages."""
    return _dry_run(None)


@bp.route("/rules/explain", methods=["POST"])
@auth.requires(RULES)
def rule_explain() -> Any:
    """For one customer: the outcome of each condition of the text in the editor."""
    customer_id = (request.form.get("customer_id") or "").strip()[:32]
    if not customer_id:
        return render_template("console/rules/_explain.html", error=t("rules.customer_needed"), problems=[])
    return _dry_run(customer_id)


@bp.route("/rules/submit", methods=["POST"])
@auth.requires(RULES)
def rule_submit() -> Any:
    """Submit the editor's text as a draft (pending approval, or invalid with its problems)."""
    note = (request.form.get("note") or "").strip()
    sub, rule_id = _submission(note)
    edited = (request.form.get("rule_id") or "").strip() or None

    def again(problems: list[Problem]) -> Any:
        folder = next((path.split("/", 1)[0] for path in sub.templates), None)
        return _editor(file=sub.file, source=sub.source, parts=_form_parts(), folder=folder, rule_id=edited,
                       note=note, problems=problems, status=422)

    try:
        draft = publishing.submit(_services(), sub, now=_now())
    except ValidationFailed as exc:
        flash(t("rules.submit_refused"), "error")
        return again(list(exc.problems))
    except (Conflict, Refused) as exc:
        flash(str(exc), "error")
        return again([])
    if draft["status"] == DraftStatus.INVALID.value:
        flash(t("rules.submitted_invalid", id=draft["id"]), "error")
        return again([Problem(**p) for p in draft["problems"]])
    flash(t("rules.submitted", id=draft["id"], status=t("status." + draft["status"])), "success")
    if draft["status"] == DraftStatus.PENDING.value:
        return redirect(url_for("console.review", draft_id=draft["id"]))
    target = rule_id if rule_id and _services().store.live_state([rule_id]) else None
    return redirect(url_for("console.rule_detail", rule_id=target) if target else url_for("console.rules"))
