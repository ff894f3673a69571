"""Published rules: drafts, immutable versions, the live set, the emergency stop and the generation.

Every change to what runs (a publish, a disable, an enable) increments the one-row generation in
the same transaction, so a process that sees generation G sees exactly the live set of G.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, func, insert, select, update

from ..vocabulary import MessageStatus, SuppressionReason
from .models import LiveRule, Message, RuleDraft, RuleGeneration, RuleVersion

GENERATION_ROW = 1
VERSION_COLUMNS = (RuleVersion.id, RuleVersion.rule_id, RuleVersion.version, RuleVersion.content_hash,
                   RuleVersion.file, RuleVersion.source, RuleVersion.templates, RuleVersion.author,
                   RuleVersion.approver, RuleVersion.note, RuleVersion.published_at, RuleVersion.draft_id)


def generation(conn: Connection) -> int:
    """The live set's generation (0 before anything was published)."""
    value = conn.execute(select(RuleGeneration.generation).where(RuleGeneration.id == GENERATION_ROW)).scalar()
    return int(value or 0)


def bump_generation(conn: Connection, now: dt.datetime) -> int:
    """Increment the generation (row-locked by the UPDATE until the transaction ends)."""
    done = conn.execute(update(RuleGeneration).where(RuleGeneration.id == GENERATION_ROW)
                        .values(generation=RuleGeneration.generation + 1, changed_at=now))
    if done.rowcount == 0:
        conn.execute(insert(RuleGeneration).values(id=GENERATION_ROW, generation=1, changed_at=now))
    return generation(conn)


def live_versions(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
    """The generation and every live rule's version with its enabled state, read in one snapshot
    (the caller's transaction: SELECTs under one REPEATABLE READ / SQLite read transaction)."""
    gen = generation(conn)
    rows = conn.execute(select(*VERSION_COLUMNS, LiveRule.enabled, LiveRule.changed_at, LiveRule.changed_by,
                               LiveRule.reason)
                        .join(LiveRule, LiveRule.version_id == RuleVersion.id)
                        .order_by(RuleVersion.rule_id)).mappings()
    return gen, [dict(r) for r in rows]


def live_state(conn: Connection, rule_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each live rule's version (number, id, hash, file, who published and approved it, when) and
    enabled state, without the texts."""
    query = (select(LiveRule.rule_id, LiveRule.enabled, LiveRule.reason, LiveRule.changed_by, LiveRule.changed_at,
                    RuleVersion.id.label("version_id"), RuleVersion.version, RuleVersion.content_hash,
                    RuleVersion.file, RuleVersion.author, RuleVersion.approver, RuleVersion.published_at)
             .join(RuleVersion, RuleVersion.id == LiveRule.version_id))
    if rule_ids is not None:
        query = query.where(LiveRule.rule_id.in_(sorted(set(rule_ids))))
    return {r["rule_id"]: dict(r) for r in conn.execute(query).mappings()}


def versions_by_id(conn: Connection, version_ids: Sequence[int]) -> list[dict[str, Any]]:
    if not version_ids:
        return []
    rows = conn.execute(select(*VERSION_COLUMNS).where(RuleVersion.id.in_(sorted(set(version_ids))))).mappings()
    return [dict(r) for r in rows]


def versions_by_number(conn: Connection, pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """Versions by (rule id, version number), as a run records them."""
    wanted = sorted(set(pairs))
    if not wanted:
        return []
    rows = conn.execute(select(*VERSION_COLUMNS).where(
        RuleVersion.rule_id.in_(sorted({r for r, _ in wanted})))).mappings()
    keep = set(wanted)
    return [dict(r) for r in rows if (r["rule_id"], r["version"]) in keep]


def history(conn: Connection, rule_id: str) -> list[dict[str, Any]]:
    """Every version of a rule, oldest first."""
    rows = conn.execute(select(*VERSION_COLUMNS).where(RuleVersion.rule_id == rule_id)
                        .order_by(RuleVersion.version)).mappings()
    return [dict(r) for r in rows]


def insert_version(conn: Connection, *, rule_id: str, content_hash: str, file: str, source: str,
                   templates: dict[str, str], author: str, approver: str | None, note: str,
                   draft_id: int | None, now: dt.datetime) -> dict[str, Any]:
    """A new version (number = the rule's last + 1; the unique (rule, version) refuses a race)."""
    last = conn.execute(select(func.max(RuleVersion.version)).where(RuleVersion.rule_id == rule_id)).scalar()
    number = int(last or 0) + 1
    version_id = conn.execute(insert(RuleVersion).values(
        rule_id=rule_id, version=number, content_hash=content_hash, file=file, source=source,
        templates=templates, author=author, approver=approver, note=note, draft_id=draft_id,
        published_at=now).returning(RuleVersion.id)).scalar_one()
    return {"id": int(version_id), "version": number}


def set_live(conn: Connection, *, rule_id: str, version_id: int, enabled: bool, by: str,
             now: dt.datetime, reason: str | None = None) -> None:
    values = dict(version_id=version_id, enabled=enabled, changed_at=now, changed_by=by, reason=reason)
    done = conn.execute(update(LiveRule).where(LiveRule.rule_id == rule_id).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(LiveRule).values(rule_id=rule_id, **values))


def publish_live(conn: Connection, *, rule_id: str, version_id: int, current: dict[str, Any] | None, by: str,
                 now: dt.datetime) -> bool:
    """Make a new version the rule's live one; returns whether it runs. A stopped rule stays
    stopped, and who stopped it, when and why stay as they were (the stop is theirs, not the
    approver's); otherwise the rule runs, changed by `by` at `now`."""
    if current is not None and not current["enabled"]:
        conn.execute(update(LiveRule).where(LiveRule.rule_id == rule_id).values(version_id=version_id))
        return False
    set_live(conn, rule_id=rule_id, version_id=version_id, enabled=True, by=by, now=now)
    return True


def set_enabled(conn: Connection, *, rule_id: str, enabled: bool, by: str, now: dt.datetime,
                reason: str | None, version_id: int | None = None) -> bool:
    """Switch a live rule on or off (only while it is live at `version_id`, when given)."""
    query = update(LiveRule).where(LiveRule.rule_id == rule_id, LiveRule.enabled.is_not(enabled))
    if version_id is not None:
        query = query.where(LiveRule.version_id == version_id)
    done = conn.execute(query.values(enabled=enabled, changed_at=now, changed_by=by, reason=reason))
    return bool(done.rowcount)


def disabled_rules(conn: Connection, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The rules among `rule_ids` stopped by `disable`, with who, when and why."""
    ids = sorted(set(rule_ids))
    if not ids:
        return {}
    rows = conn.execute(select(LiveRule.rule_id, LiveRule.changed_by, LiveRule.changed_at, LiveRule.reason)
                        .where(LiveRule.rule_id.in_(ids), LiveRule.enabled.is_(False))).mappings()
    return {r["rule_id"]: dict(r) for r in rows}


PENDING_STATUSES = (MessageStatus.QUEUED.value, MessageStatus.SCHEDULED.value)


def suppress_unsent(conn: Connection, rule_id: str, now: dt.datetime) -> int:
    """A disabled rule's messages not yet claimed for sending become suppressed `rule_disabled`
    (one being sent right now finishes; the worker's pre-send check stops any later one)."""
    done = conn.execute(update(Message).where(Message.rule_id == rule_id, Message.status.in_(PENDING_STATUSES),
                                              Message.claimed_by.is_(None))
                        .values(status=MessageStatus.SUPPRESSED.value,
                                suppressed_reason=SuppressionReason.RULE_DISABLED.value, due_at=None))
    return int(done.rowcount or 0)


# --------------------------------------------------------------------------- drafts

DRAFT_COLUMNS = (RuleDraft.id, RuleDraft.kind, RuleDraft.file, RuleDraft.content_hash, RuleDraft.changes,
                 RuleDraft.problems, RuleDraft.status, RuleDraft.note, RuleDraft.author, RuleDraft.created_at,
                 RuleDraft.decided_by, RuleDraft.decided_at, RuleDraft.reason)


def insert_draft(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(RuleDraft).values(**values).returning(RuleDraft.id)).scalar_one())


def get_draft(conn: Connection, draft_id: int, *, texts: bool = True) -> dict[str, Any] | None:
    columns = DRAFT_COLUMNS + ((RuleDraft.source, RuleDraft.templates) if texts else ())
    row = conn.execute(select(*columns).where(RuleDraft.id == draft_id)).mappings().first()
    return None if row is None else dict(row)


def list_drafts(conn: Connection, *, status: str | None = None, file: str | None = None,
                before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    query = select(*DRAFT_COLUMNS).order_by(RuleDraft.id.desc()).limit(limit)
    if status is not None:
        query = query.where(RuleDraft.status == status)
    if file is not None:
        query = query.where(RuleDraft.file == file)
    if before_id is not None:
        query = query.where(RuleDraft.id < before_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def decide_draft(conn: Connection, draft_id: int, *, from_status: str, to_status: str, by: str | None,
                 now: dt.datetime, reason: str | None = None) -> bool:
    """Move a draft on, only from `from_status` (two approvers racing: exactly one wins)."""
    done = conn.execute(update(RuleDraft).where(RuleDraft.id == draft_id, RuleDraft.status == from_status)
                        .values(status=to_status, decided_by=by, decided_at=now, reason=reason))
    return bool(done.rowcount)


ENABLE_KIND = "enable"  # vocabulary.DraftKind.ENABLE


def _draft_rules(changes: Any) -> set[str]:
    return {str(c["rule"]) for c in changes or () if isinstance(c, dict) and c.get("rule")}


def supersede_pending(conn: Connection, *, file: str, kind: str, except_id: int, now: dt.datetime,
                      by: str) -> list[int]:
    """Older pending drafts of the same kind give way to a newer one: of the same file for a
    publish, of the same rule for an enable (two rules of one file are enabled independently)."""
    rows = conn.execute(select(RuleDraft.id, RuleDraft.changes).where(
        RuleDraft.file == file, RuleDraft.kind == kind, RuleDraft.status == "pending",
        RuleDraft.id != except_id)).all()
    if kind == ENABLE_KIND:
        wanted = _draft_rules(conn.scalar(select(RuleDraft.changes).where(RuleDraft.id == except_id)))
        rows = [r for r in rows if _draft_rules(r.changes) & wanted]
    ids = [int(r.id) for r in rows]
    if ids:
        conn.execute(update(RuleDraft).where(RuleDraft.id.in_(ids)).values(
            status="superseded", decided_by=by, decided_at=now, reason=f"superseded by draft {except_id}"))
    return ids


def pending_enables(conn: Connection, rule_ids: Iterable[str], *, except_id: int | None = None) -> dict[int, str]:
    """Pending enable drafts of these rules: {draft id: rule id}."""
    wanted = set(rule_ids)
    if not wanted:
        return {}
    query = select(RuleDraft.id, RuleDraft.changes).where(RuleDraft.kind == ENABLE_KIND,
                                                          RuleDraft.status == "pending")
    if except_id is not None:
        query = query.where(RuleDraft.id != except_id)
    found: dict[int, str] = {}
    for row in conn.execute(query):
        rules = sorted(_draft_rules(row.changes) & wanted)
        if rules:
            found[int(row.id)] = rules[0]
    return found


def supersede_enables(conn: Connection, reasons: dict[str, str], *, except_id: int, now: dt.datetime,
                      by: str | None) -> list[int]:
    """Pending enables of rules that just got a new version or were enabled (`reasons`: rule id ->
    why) are superseded with that reason: each was requested for a state that is gone."""
    done = []
    for draft_id, rule_id in sorted(pending_enables(conn, reasons, except_id=except_id).items()):
        if decide_draft(conn, draft_id, from_status="pending", to_status="superseded", by=by, now=now,
                        reason=reasons[rule_id]):
            done.append(draft_id)
    return done


def stale_enable(conn: Connection, enable: Sequence[tuple[str, int]]) -> str | None:
    """Why an enable of (rule id, version id) pairs can no longer apply (the rule was published at
    another version, or is enabled already), or None when each rule is still stopped at that version."""
    state = live_state(conn, [rule_id for rule_id, _ in enable])
    for rule_id, version_id in enable:
        current = state.get(rule_id)
        if current is None:
            return f"rule {rule_id} is no longer live"
        if int(current["version_id"]) != int(version_id):
            return (f"rule {rule_id} was published at version {current['version']} after this enable was "
                    f"requested for an earlier version" + ("; it is enabled" if current["enabled"] else
                                                          f"; it stays disabled: `rules enable {rule_id}` again"))
        if current["enabled"]:
            return f"rule {rule_id} was enabled since (by {current['changed_by']})"
    return None
