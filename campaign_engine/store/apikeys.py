"""API keys: created once (the key is returned, never stored), verified by SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .models import ApiKey

KEY_PREFIX = "ce_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: Connection, *, name: str, role: str, now: dt.datetime,
               manager_id: str | None = None) -> tuple[int, str]:
    """A new key for a role (role manager: bound to `manager_id`, the manager it acts as); returns
    (id, key). The key cannot be recovered later."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = conn.execute(insert(ApiKey).values(
        name=name, role=role, key_hash=hash_key(key), prefix=key[:10], created_at=now, manager_id=manager_id)
        .returning(ApiKey.id)).scalar_one()
    return int(key_id), key


def find_key(conn: Connection, key: str) -> dict[str, Any] | None:
    """The live key with this secret (unique index on key_hash), or None; with the manager it is bound to."""
    row = conn.execute(select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.manager_id)
                       .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))).mappings().first()
    return dict(row) if row else None


def keys_named(conn: Connection, name: str) -> list[dict[str, Any]]:
    """The live keys with this name (who `--as NAME` on the command line is)."""
    rows = conn.execute(select(ApiKey.id, ApiKey.name, ApiKey.role)
                        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).order_by(ApiKey.id)).mappings()
    return [dict(r) for r in rows]


def touch_key(conn: Connection, key_id: int, now: dt.datetime) -> None:
    conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.prefix, ApiKey.created_at,
                               ApiKey.revoked_at, ApiKey.last_used_at, ApiKey.manager_id)
                        .order_by(ApiKey.id)).mappings()
    return [dict(r) for r in rows]


def revoke_key(conn: Connection, key_id: int, now: dt.datetime) -> bool:
    result = conn.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                          .values(revoked_at=now))
    return result.rowcount == 1
