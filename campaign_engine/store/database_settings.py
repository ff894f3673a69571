"""Properties of the database itself (table database_settings), which no process's settings undo.

`approval: required`: recorded the first time a process configured `approval: required` takes a
publishing step on this database; from then on a process configured `approval: off` is refused
(pipeline.publishing.requires_approval). No code path deletes the row: an administrator does, with
SQL (README, "Publishing rules").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from .models import DatabaseSetting

APPROVAL = "approval"


def get_setting(conn: Connection, name: str) -> dict[str, Any] | None:
    """The recorded setting: {"name", "value", "set_at", "set_by"}, or None."""
    row = conn.execute(select(DatabaseSetting.name, DatabaseSetting.value, DatabaseSetting.set_at,
                              DatabaseSetting.set_by).where(DatabaseSetting.name == name)).mappings().first()
    return dict(row) if row else None


def set_once(conn: Connection, name: str, value: str, *, by: str, now: dt.datetime) -> tuple[dict[str, Any], bool]:
    """Record a setting unless it is recorded already (by another process meanwhile too): the
    recorded one, and whether this call recorded it. Runs in a savepoint of the caller's transaction."""
    try:
        with conn.begin_nested():
            conn.execute(insert(DatabaseSetting).values(name=name, value=value, set_at=now, set_by=by[:64]))
    except IntegrityError:
        found = get_setting(conn, name)
        assert found is not None
        return found, False
    found = get_setting(conn, name)
    assert found is not None
    return found, True
