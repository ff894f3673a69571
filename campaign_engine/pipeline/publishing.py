"""Rules owned by marketing: submit a draft, approve it (four eyes), reject it, stop a rule, enable
it again, read a rule's history, export the live set. The only way a rule becomes what runs.

The rule and template folders are the authoring format; what runs is the published versions in the
database (store.rule_versions), the same in every process: each compares the generation its rule
set was built from with the database's (`live_rulebook`, runtime.Runtime.refresh).

Identities: an actor is `key:<name>#<id>` (an API key) or `cli:<name>`; the person is `<name>`, so
one person's CLI and API keys are the same person, and nobody approves their own change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import Conflict, NotFound, Problem, Refused, ValidationFailed
from ..rulebook.loader import (Rulebook, build_rulebook, environment_for, parse_rule_text, read_rule_files,
                               read_templates, refusal, template_texts)
from ..rulebook.published import VersionCache, published_rulebook, text_diff
from ..vocabulary import Approval, DraftKind, DraftStatus
from .ports import RunStore
from .services import Services
from .validate import read_catalogue, validate_rules

log = logging.getLogger(__name__)

NOTE_MAX = 2000
SOURCE_MAX = 1_000_000
FILE_NAME = re.compile(r"^(?!/)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]{0,250}\.ya?ml$")
TEMPLATE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}\.j2$")

CACHE = VersionCache()  # built versions, per process


def person(actor: str) -> str:
    """`key:alice#3`, `cli:alice` and the console's `user:alice` -> `alice` (who a four-eyes check
    compares: one person is one person through every door)."""
    name = actor.split(":", 1)[1] if actor.startswith(("key:", "cli:", "user:")) else actor
    return name.rsplit("#", 1)[0] if "#" in name else name


def live_rulebook(store: RunStore) -> Rulebook:
    """What runs now: every live rule's published version with its enabled state, and the generation."""
    generation, rows = store.live_versions()
    return published_rulebook(generation, rows, CACHE)


def rulebook_of_versions(store: RunStore, versions: Mapping[str, Mapping[str, Any]]) -> Rulebook:
    """The rules a run recorded ({rule: {"version", "hash"}}), each at exactly that version."""
    rows = store.rule_versions_by_number([(rule_id, int(v["version"])) for rule_id, v in versions.items()
                                          if v.get("version") is not None])
    return published_rulebook(-1, rows, CACHE)


def not_live_hint(store: RunStore, rule_ids: Sequence[str], *, recent: int = 200) -> str | None:
    """Why rules that are not live are not: a pending draft awaiting approval, or the latest
    invalid draft naming them with its problems; else that none was published (None: nothing known)."""
    found: dict[str, str] = {}
    unreadable: dict[str, str] = {}  # file -> its latest invalid draft, when its problems name no rule
    for draft in store.drafts(limit=recent):
        if (draft["status"] == DraftStatus.INVALID.value and draft["problems"] and draft["file"] not in unreadable
                and not any(p.get("rule") for p in draft["problems"])):
            unreadable[draft["file"]] = (f"{draft['file']} (draft {draft['id']}): "
                                         + "; ".join(str(Problem(**p)) for p in draft["problems"]))
        for rule_id in rule_ids:
            if rule_id in found:
                continue
            if draft["status"] == DraftStatus.PENDING.value and any(c["rule"] == rule_id for c in draft["changes"]):
                found[rule_id] = f"{rule_id}: draft {draft['id']} ({draft['file']}) awaits approval"
            elif draft["status"] == DraftStatus.INVALID.value and any(p.get("rule") == rule_id
                                                                      for p in draft["problems"]):
                problems = "; ".join(str(Problem(**p)) for p in draft["problems"] if p.get("rule") in (rule_id, None))
                found[rule_id] = f"{rule_id}: its latest draft {draft['id']} is invalid, not live: {problems}"
    hint = "; ".join(found[r] for r in rule_ids if r in found) if found else \
        "not published (`rules publish`, or POST /api/v1/rules/drafts; `rules list` shows what is live)"
    if len(found) < len(rule_ids) and unreadable:
        hint += "; drafts whose rules could not be read: " + "; ".join(unreadable.values())
    return hint


class ApprovalLocked(Conflict):
    """A process configured `approval: off` asked to publish to a database that requires approval."""


def requires_approval(services: Services) -> bool:
    """Whether a change needs a second person here: this process is configured `approval: required`,
    or the database requires approval (a process so configured published to it: `approval_in_force`).
    A process configured `approval: off` on such a database is refused (ApprovalLocked): `off` no
    longer turns four eyes off once they were required."""
    if services.settings.approval is Approval.REQUIRED:
        return True
    mark = services.store.approval_mark()
    if mark is not None:
        at = mark["set_at"]
        when = at.strftime("%Y-%m-%d %H:%M UTC") if isinstance(at, dt.datetime) else str(at)
        raise ApprovalLocked(
            f"this database requires approval since {when} (recorded by {mark['set_by']}); this process "
            "is configured `approval: off` (the approval setting: CAMPAIGN_ENGINE_APPROVAL or the config "
            "file), which cannot publish to it: publish with `approval: required` and have someone else "
            "approve (README, Publishing rules)")
    return False


def approval_in_force(services: Services, *, actor: str, now: dt.datetime) -> bool:
    """`requires_approval`; with `approval: required` the database records that it requires approval
    (once, audited `rules.approval_required`), so that from then on every process does."""
    if not requires_approval(services):
        return False
    if services.settings.approval is Approval.REQUIRED and services.store.approval_mark() is None:
        services.store.require_approval(by=actor, now=now)
    return True


def draft_hash(file: str, source: str, templates: Mapping[str, str]) -> str:
    """What an approver approves: the file's name and text and every template's text."""
    body = json.dumps({"file": file, "source": source, "templates": dict(sorted(templates.items()))},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Submission:
    """A rule file's text, as on disk or sent over HTTP, with the templates it brings."""

    file: str
    source: str
    templates: Mapping[str, str]  # "<template>/<part>" -> text; a folder not given is taken from the live set
    note: str
    author: str


def _check_submission(sub: Submission) -> list[Problem]:
    problems = []
    if not FILE_NAME.match(sub.file):
        problems.append(Problem("a rule file name is a relative path ending .yaml or .yml (letters, digits, "
                                "'_', '-', '.', '/'; no '..')", field="file"))
    if not sub.note.strip():
        problems.append(Problem("say what the change does and why (the reviewer and the audit log read it)",
                                field="note"))
    elif len(sub.note) > NOTE_MAX:
        problems.append(Problem(f"at most {NOTE_MAX} characters", field="note"))
    if len(sub.source) > SOURCE_MAX:
        problems.append(Problem(f"a rule file is at most {SOURCE_MAX:,} characters", field="source"))
    for path, text in sub.templates.items():
        if not TEMPLATE_PATH.match(path):
            problems.append(Problem(f"template {path[:80]!r}: a template is '<folder>/<part>.j2'",
                                    field="templates"))
        elif len(text) > SOURCE_MAX:
            problems.append(Problem(f"template {path}: at most {SOURCE_MAX:,} characters", field="templates"))
    return problems


def _live_templates(services: Services, name: str, rule_id: str) -> dict[str, str]:
    """A template folder's texts as the live set has them: the rule's own live version first, else
    any live rule using that folder."""
    book = services.rulebook
    candidates = [book.rules[rule_id]] if rule_id in book.rules else []
    candidates += [r for r in book.rules.values() if r.id != rule_id]
    for rule in candidates:
        if rule.template == name and rule.id in book.template_sets:
            return dict(book.template_sets[rule.id].texts)
    return {}


def _resolve_templates(services: Services, sub: Submission) -> tuple[dict[str, str], list[Problem]]:
    """The complete texts of every template folder the file's rules use: those given, else the live
    ones. A given template no rule of the file uses is a problem (a typo in a folder name)."""
    rules, broken = parse_rule_text(sub.source, sub.file)
    used = {r.template: r.id for r in rules}
    resolved: dict[str, str] = {}
    problems = []
    for name, rule_id in sorted(used.items()):
        given = template_texts(sub.templates, name)
        resolved.update(given or _live_templates(services, name, rule_id))
    for path in sorted(sub.templates) if not broken else ():  # a broken rule may be what uses it
        if path.split("/", 1)[0] not in used:
            problems.append(Problem(f"template {path} is not used by any rule of {sub.file} "
                                    f"(they use: {', '.join(sorted(used)) or 'none'})", file=sub.file,
                                    field="templates"))
    return resolved, problems


def _draft_problems(services: Services, sub: Submission, book: Rulebook,
                    live: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    problems = list(book.problems)
    catalogue = read_catalogue(services.store)
    for rule in book.rules.values():
        found = live.get(rule.id)
        if found is not None and found["file"] != sub.file:
            problems.append(Problem(f"rule id {rule.id} is live from {found['file']}: a rule id belongs to "
                                    "one file", file=sub.file, line=rule.line, rule=rule.id, field="id"))
    if book.rules:
        env = environment_for(dict(_all_texts(book)))
        problems += [p for p in validate_rules(book, env, services.settings, catalogue) if p not in problems]
    return problems


def _all_texts(book: Rulebook) -> Iterable[tuple[str, str]]:
    for template_set in book.template_sets.values():
        yield from template_set.texts.items()


def _changes(book: Rulebook, live: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rule in sorted(book.rules.values(), key=lambda r: r.id):
        found = live.get(rule.id)
        change = ("new" if found is None else "unchanged" if found["content_hash"] == rule.content_hash
                  else "changed")
        out.append({"rule": rule.id, "template": rule.template, "content_hash": rule.content_hash,
                    "base_version": found["version"] if found else None, "change": change})
    return out


@dataclass(frozen=True)
class Checked:
    """A submission as validated: its rules built from its texts, the templates it resolves to, the
    live state of its rules and every problem."""

    book: Rulebook
    templates: Mapping[str, str]
    live: Mapping[str, Mapping[str, Any]]
    problems: list[Problem]


def check(services: Services, sub: Submission) -> Checked:
    """Validate a submission without storing it (POST /rules/validate; submit stores the same)."""
    problems = _check_submission(sub)
    if any(p.field == "file" for p in problems):
        raise ValidationFailed(problems, what="draft")
    templates, template_problems = _resolve_templates(services, sub)
    problems += template_problems
    book = build_rulebook({sub.file: sub.source}, templates, templates_label="the draft or the live set")
    live = services.store.live_state([r.id for r in book.rules.values()])
    problems += _draft_problems(services, sub, book, live)
    if not book.rules and not problems:
        problems.append(Problem("the file defines no rule", file=sub.file))
    return Checked(book, templates, live, problems)


def submit(services: Services, sub: Submission, *, now: dt.datetime) -> dict[str, Any]:
    """Record a draft. `invalid` (stored with its problems: the live versions keep running),
    `live` at once when nothing changed or approval is off, else `pending` approval."""
    if any(p.field == "note" for p in _check_submission(sub)):
        raise ValidationFailed([p for p in _check_submission(sub) if p.field in ("file", "note")], what="draft")
    refused = refusal(sub.source, sub.file)  # a text not to store nor read again (an alias bomb, a NUL)
    if refused is not None:
        raise ValidationFailed([refused], what="draft")
    approval_off = not approval_in_force(services, actor=sub.author, now=now)
    checked = check(services, sub)
    book, templates, problems = checked.book, checked.templates, checked.problems
    changes = _changes(book, checked.live) if not problems else []
    unchanged = all(c["change"] == "unchanged" for c in changes)
    status = DraftStatus.INVALID if problems else DraftStatus.LIVE if unchanged else DraftStatus.PENDING
    content = draft_hash(sub.file, sub.source, templates)
    values = dict(kind=DraftKind.PUBLISH.value, file=sub.file, source=sub.source, templates=templates,
                  content_hash=content, changes=changes, problems=[p.as_dict() for p in problems],
                  status=status.value, note=sub.note, author=sub.author, created_at=now)
    entry = {"actor": sub.author, "action": "rules.submit",
             "details": {"file": sub.file, "status": status.value, "content_hash": content,
                         "rules": {c["rule"]: c["change"] for c in changes}, "problems": len(problems),
                         "note": sub.note}}
    draft_id, _ = services.store.record_draft(values, audit_entries=[entry], now=now)
    if status is DraftStatus.PENDING and approval_off:
        _apply(services, draft_id, approver=None, now=now, action="rules.publish",
               details={"approval": Approval.OFF.value})
    return draft_view(services, draft_id)


def _apply(services: Services, draft_id: int, *, approver: str | None, now: dt.datetime, action: str,
           details: dict[str, Any] | None = None) -> dict[str, Any]:
    draft = services.store.draft(draft_id)
    assert draft is not None
    versions, enable = [], []
    if draft["kind"] == DraftKind.ENABLE.value:
        enable = [(c["rule"], int(c["version_id"])) for c in draft["changes"]]
    else:
        versions = [{"rule_id": c["rule"], "content_hash": c["content_hash"], "base_version": c["base_version"],
                     "file": draft["file"], "source": draft["source"],
                     "templates": template_texts(draft["templates"], c["template"])}
                    for c in draft["changes"] if c["change"] != "unchanged"]
    entry = {"actor": approver or draft["author"], "action": action,
             "details": {**(details or {}), "file": draft["file"], "content_hash": draft["content_hash"],
                         "author": draft["author"]}}
    result = services.store.apply_draft(draft_id, from_status=DraftStatus.PENDING.value, versions=versions,
                                        enable=enable, author=draft["author"], approver=approver,
                                        note=draft["note"], now=now, audit_entries=[entry])
    log.info("draft %s live (generation %s): %s", draft_id, result["generation"],
             ", ".join(f"{v['rule']} v{v['version']}" for v in result["versions"]) or "enable")
    return result


def _pending(services: Services, draft_id: int) -> dict[str, Any]:
    draft = services.store.draft(draft_id)
    if draft is None:
        raise NotFound("draft", draft_id)
    if draft["status"] != DraftStatus.PENDING.value:
        raise Conflict(f"draft {draft_id} is {draft['status']}, not pending"
                       + (f" ({draft['reason']})" if draft.get("reason") else ""))
    return draft


def approve(services: Services, draft_id: int, *, actor: str, now: dt.datetime,
            content_hash: str | None = None) -> dict[str, Any]:
    """Put a pending draft live: only someone other than its author, and (when given) only the
    content the approver reviewed."""
    draft = _pending(services, draft_id)
    if content_hash is not None and content_hash != draft["content_hash"]:
        raise Conflict(f"draft {draft_id} is content {draft['content_hash'][:12]}, not the "
                       f"{content_hash[:12]} you reviewed: review it again")
    if person(actor) == person(draft["author"]):
        services.store.record_audit([{"actor": actor, "action": "rules.approve_refused",
                                      "target": f"draft:{draft_id}",
                                      "details": {"reason": "self-approval", "author": draft["author"]}}], now)
        raise Refused(f"draft {draft_id} was submitted by {person(draft['author'])}: someone else must "
                      "approve it (four eyes)")
    _apply(services, draft_id, approver=actor, now=now, action="rules.approve")
    return draft_view(services, draft_id)


def reject(services: Services, draft_id: int, *, actor: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    draft = _pending(services, draft_id)
    if not reason.strip():
        raise ValidationFailed([Problem("say why, so the author can fix it", field="reason")], what="rejection")
    if person(actor) == person(draft["author"]):
        raise Refused(f"draft {draft_id} was submitted by {person(draft['author'])}: a reviewer rejects it")
    services.store.reject_draft(draft_id, by=actor, reason=reason[:NOTE_MAX], now=now, audit_entries=[{
        "actor": actor, "action": "rules.reject", "details": {"reason": reason[:NOTE_MAX],
                                                              "author": draft["author"]}}])
    return draft_view(services, draft_id)


def disable(services: Services, rule_id: str, *, actor: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The emergency stop: no second person, at once in every process; unsent messages suppressed."""
    if not reason.strip():
        raise ValidationFailed([Problem("say why (the audit log and the team read it)", field="reason")],
                               what="disable request")
    if rule_id not in services.store.live_state([rule_id]):
        raise NotFound("live rule", rule_id)
    result = services.store.disable_rule(rule_id, by=actor, reason=reason[:NOTE_MAX], now=now, audit_entries=[
        {"actor": actor, "action": "rules.disable", "details": {"reason": reason[:NOTE_MAX]}}])
    log.warning("rule %s disabled by %s: %s (%s unsent message(s) suppressed)", rule_id, actor, reason,
                result["suppressed_messages"])
    return {"rule": rule_id, "enabled": False, **result}


def enable(services: Services, rule_id: str, *, actor: str, note: str, now: dt.datetime) -> dict[str, Any]:
    """Ask to switch a stopped rule on again at its live version: a draft like any change."""
    approval_off = not approval_in_force(services, actor=actor, now=now)
    state = services.store.live_state([rule_id]).get(rule_id)
    if state is None:
        raise NotFound("live rule", rule_id)
    if state["enabled"]:
        raise Conflict(f"rule {rule_id} is enabled")
    [version] = services.store.rule_versions([int(state["version_id"])])
    note = note.strip() or f"enable {rule_id} again"
    changes = [{"rule": rule_id, "template": None, "content_hash": version["content_hash"],
                "base_version": version["version"], "version_id": version["id"], "change": "enable"}]
    values = dict(kind=DraftKind.ENABLE.value, file=version["file"], source=version["source"],
                  templates=version["templates"], content_hash=version["content_hash"], changes=changes,
                  problems=[], status=DraftStatus.PENDING.value, note=note[:NOTE_MAX], author=actor, created_at=now)
    draft_id, _ = services.store.record_draft(values, audit_entries=[{
        "actor": actor, "action": "rules.enable_requested", "details": {"rule": rule_id, "note": note[:NOTE_MAX]}}],
        now=now)
    if approval_off:
        _apply(services, draft_id, approver=None, now=now, action="rules.enable",
               details={"approval": Approval.OFF.value})
    return draft_view(services, draft_id)


# --------------------------------------------------------------------------- reading

def draft_view(services: Services, draft_id: int, *, texts: bool = False) -> dict[str, Any]:
    """One draft as the API and CLI show it; with `texts`, its file, templates and text diff."""
    draft = services.store.draft(draft_id, texts=texts)
    if draft is None:
        raise NotFound("draft", draft_id)
    view = view_of(draft)
    if texts:
        view.update(source=draft["source"], templates=draft["templates"], diff=draft_text_diff(services, draft))
    return view


def view_of(draft: Mapping[str, Any]) -> dict[str, Any]:
    """A stored draft row (store.drafts / store.draft) as shown, without its texts."""
    view = {"id": draft["id"], "kind": draft["kind"], "status": draft["status"], "file": draft["file"],
            "rules": [c["rule"] for c in draft["changes"]], "changes": draft["changes"],
            "problems": draft["problems"], "content_hash": draft["content_hash"], "note": draft["note"],
            "author": draft["author"], "created_at": draft["created_at"], "decided_by": draft["decided_by"],
            "decided_at": draft["decided_at"], "reason": draft["reason"]}
    if not draft["changes"] and draft["problems"]:
        view["rules"] = sorted({p["rule"] for p in draft["problems"] if p.get("rule")})
    return view


def draft_text_diff(services: Services, draft: Mapping[str, Any]) -> str:
    """The draft's file and templates against the versions it was based on (the live ones when it
    was submitted), so a decided draft still shows what it changed."""
    if draft["kind"] == DraftKind.ENABLE.value:
        return ""
    pairs = [(c["rule"], int(c["base_version"])) for c in draft["changes"] if c.get("base_version") is not None]
    before: dict[str, str] = {}
    for row in services.store.rule_versions_by_number(pairs):
        before.setdefault(row["file"], row["source"])
        before.update(row["templates"])
    after = {draft["file"]: draft["source"], **draft["templates"]}
    return text_diff({k: v for k, v in before.items() if k in after or k == draft["file"]}, after,
                     before_label="live", after_label=f"draft-{draft['id']}")


def draft_rulebook(draft: Mapping[str, Any]) -> Rulebook:
    """The rules a draft would put live, built from its texts (for dry-run diffs)."""
    return build_rulebook({draft["file"]: draft["source"]}, draft["templates"])


def draft_audience(services: Services, draft_id: int, *, today: dt.date, now: dt.datetime,
                   event_payload: Any = None, sample: int = 10) -> dict[str, Any]:
    """The dry-run diff (draft_diff.audience_diff) of each rule a draft changes against its live
    version, for a date or an event payload: what approving it would change."""
    from ..events import parse_event
    from .draft_diff import audience_diff

    draft = services.store.draft(draft_id)
    if draft is None:
        raise NotFound("draft", draft_id)
    if draft["status"] == DraftStatus.INVALID.value:
        raise ValidationFailed([Problem(**p) for p in draft["problems"]], what=f"draft {draft_id}")
    book = draft_rulebook(draft)
    out: list[dict[str, Any]] = []
    for change in draft["changes"]:
        rule = book.rules.get(change["rule"])
        if rule is None:
            continue
        event = None
        if rule.trigger.event is not None:
            if event_payload is None:
                raise ValidationFailed([Problem("an event rule is compared on an event payload (POST "
                                                "{\"event\": {...}}, or --event)", rule=rule.id, field="event")],
                                       what="diff request")
            event = parse_event(rule.trigger.event, event_payload)
        out.append(audience_diff(services, services.rulebook.get(rule.id), rule, book, today=today, now=now,
                                 event=event, sample=sample, enable=draft["kind"] == DraftKind.ENABLE.value))
    first = out[0] if len(out) == 1 else {}
    return {"draft_id": draft_id, "date": today.isoformat(), **first, "rules": out}


def history(services: Services, rule_id: str) -> list[dict[str, Any]]:
    """Every published version of a rule, newest first, each with its diff against the one before."""
    rows = services.store.rule_history(rule_id)
    if not rows:
        raise NotFound("rule", rule_id, "no published version: `rules publish` it first")
    live = services.store.live_state([rule_id]).get(rule_id)
    out = []
    previous: dict[str, str] = {}
    for row in rows:
        texts = {row["file"]: row["source"], **row["templates"]}
        out.append({"rule": rule_id, "version": row["version"], "content_hash": row["content_hash"],
                    "file": row["file"], "author": row["author"], "approver": row["approver"],
                    "note": row["note"], "published_at": row["published_at"], "draft_id": row["draft_id"],
                    "live": bool(live and live["version_id"] == row["id"]),
                    "diff": text_diff(previous, texts, before_label=f"v{row['version'] - 1}",
                                      after_label=f"v{row['version']}")})
        previous = texts
    return out[::-1]


# --------------------------------------------------------------------------- the folders

def publish_folder(services: Services, paths: Sequence[Path] | None, *, note: str, author: str,
                   now: dt.datetime) -> list[dict[str, Any]]:
    """Submit rule files from the rule folder (all of them, or `paths`), each with the templates
    its rules use from the template folder: one draft per file."""
    settings = services.settings
    files, problems = read_rule_files(settings.rules_dir, paths)
    if problems:
        raise ValidationFailed(problems, what="rule files")
    templates, problems = read_templates(settings.templates_dir)
    if problems:
        raise ValidationFailed(problems, what="templates")
    drafts = []
    for name, text in sorted(files.items()):
        rules, _ = parse_rule_text(text, name)
        own = {p: t for r in rules for p, t in template_texts(templates, r.template).items()}
        drafts.append(submit(services, Submission(name, text, own, note, author), now=now))
    return drafts


def export_live(services: Services, rules_dir: Path, templates_dir: Path) -> tuple[list[str], list[Problem]]:
    """Write the live set back as files: each file as its newest published text (a rule left unchanged
    by a later publish of its file is the same rule in that text), and every live template. A live
    rule that text no longer defines as it runs (it was dropped from the file but not disabled) is
    a problem: it is not in the exported file."""
    _, rows = services.store.live_versions()
    by_file: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    written: list[str] = []
    problems: list[Problem] = []
    for name, versions in sorted(by_file.items()):
        newest = max(versions, key=lambda v: v["published_at"])
        text = newest["source"]
        defined = {r.id: r.definition_hash for r in parse_rule_text(text, name)[0]}
        for v in versions:
            built = CACHE.get(v).rule
            if built is not None and defined.get(v["rule_id"]) != built.definition_hash:
                problems.append(Problem(f"rule {v['rule_id']} runs at version {v['version']}, which the newest "
                                        f"published text of {name} does not define: it is not in the export",
                                        file=name, rule=v["rule_id"]))
        target = rules_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
        for path, template in sorted({p: t for v in versions for p, t in v["templates"].items()}.items()):
            out = templates_dir / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(template, encoding="utf-8")
            written.append(str(out))
    return written, problems
