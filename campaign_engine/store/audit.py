"""The audit log: who changed what, when."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, func, insert, or_, select

from .models import AuditEntry


def record(conn: Connection, *, actor: str, action: str, target: str | None, now: dt.datetime,
           details: dict[str, Any] | None = None) -> None:
    """Append one entry; callers pass contact data masked."""
    conn.execute(insert(AuditEntry).values(at=now, actor=actor, action=action, target=target,
                                           details=details))


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` begins with `prefix`, compared exactly (case and `%`/`_` are no patterns) on every
    database: SQLite's LIKE ignores ASCII case, PostgreSQL's prefix ranges follow the collation."""
    return func.substr(column, 1, len(prefix), type_=String) == prefix


def action_filter(action: str) -> ColumnElement[bool] | None:
    """`rules.approve` exactly; `rules.` or `rules.*` (a value ending in `.` or `*`) every action
    beginning with `rules.`; None (no filter) for `*` alone."""
    if action.endswith("*"):
        prefix = action[:-1]
        return _starts_with(AuditEntry.action, prefix) if prefix else None
    if action.endswith("."):
        return _starts_with(AuditEntry.action, action)
    return AuditEntry.action == action


def actor_filter(actor: str) -> ColumnElement[bool]:
    """Who: the stored actor exactly (`key:alice#3`, `cli`, `cli:alice`, `anonymous`), or, for a bare
    name (no `:` and no `#`), also every key of that name and the CLI run as it: `alice` finds
    `key:alice#3`, `key:alice#9` and `cli:alice` (not `key:alice-ops#4`, nor `key:Alice#5`:
    names compare exactly). API keys are stored as `key:<name>#<id>`, see api/auth.py."""
    if ":" in actor or "#" in actor:
        return AuditEntry.actor == actor
    key = f"key:{actor}#"
    any_key_id = and_(_starts_with(AuditEntry.actor, key),  # the id after the name's `#`, nothing more
                      ~func.substr(AuditEntry.actor, len(key) + 1, type_=String).contains("#"))
    return or_(AuditEntry.actor.in_([actor, f"cli:{actor}"]), any_key_id)


def list_entries(conn: Connection, *, action: str | None = None, actor: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Audit entries newest first (by id, the order they were written), filtered; `before_id` is the
    cursor: the id of the last entry of the previous page.

    `action` and `actor` as action_filter and actor_filter say; `since` inclusive, `until`
    exclusive (aware datetimes). Each entry: id, at (aware, UTC), actor, action, target, details.
    An exact action or actor reads ix_audit_log_action_id (action, id) or ix_audit_log_actor_id
    (actor, id) newest first; a prefix or a bare name walks the primary key back from the cursor.
    """
    filters = [f for f in (
        action_filter(action) if action else None,
        actor_filter(actor) if actor else None,
        AuditEntry.at >= since if since is not None else None,
        AuditEntry.at < until if until is not None else None,
        AuditEntry.id < before_id if before_id is not None else None,
    ) if f is not None]
    query = (select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                    AuditEntry.details).where(*filters).order_by(AuditEntry.id.desc()).limit(limit))
    return [dict(row) for row in conn.execute(query).mappings()]

