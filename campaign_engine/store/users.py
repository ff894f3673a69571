"""Console users, their server-side sessions and failed login attempts.

Passwords are hashed with werkzeug's `generate_password_hash` (scrypt, a random salt per hash);
a session cookie carries a random token whose SHA-256 is the row's key, so a stolen database
copy holds no usable session and a revoked row ends the session in every server process."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Conflict
from .models import ConsoleSession, LoginAttempt, User

# A hash computed once so that a login for an unknown user costs what a wrong password costs
# (no telling which user names exist by timing).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))
_COLUMNS = (User.id, User.name, User.role, User.manager_id, User.disabled, User.demo, User.created_at,
            User.updated_at, User.last_login_at)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(conn: Connection, *, name: str, password: str, role: str, manager_id: str | None,
                now: dt.datetime, demo: bool = False) -> int:
    """A new user; Conflict when the name is taken (the transaction stays usable)."""
    try:
        with conn.begin_nested():
            user_id = conn.execute(insert(User).values(
                name=name, password_hash=generate_password_hash(password), role=role, manager_id=manager_id,
                disabled=False, demo=demo, created_at=now, updated_at=now).returning(User.id)).scalar_one()
    except IntegrityError:
        raise Conflict(f"a user named {name} exists already") from None
    return int(user_id)


def get_user(conn: Connection, *, name: str | None = None, user_id: int | None = None) -> dict[str, Any] | None:
    query = select(*_COLUMNS)
    query = query.where(User.name == name) if name is not None else query.where(User.id == user_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def list_users(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(*_COLUMNS).order_by(User.name)).mappings()]


def check_login(conn: Connection, name: str, password: str) -> dict[str, Any] | None:
    """The user if `password` is theirs and they are not disabled, else None (same cost either way)."""
    row = conn.execute(select(User.password_hash, *_COLUMNS).where(User.name == name)).mappings().first()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(row["password_hash"], password) or row["disabled"]:
        return None
    return {k: v for k, v in row.items() if k != "password_hash"}


def has_password(conn: Connection, name: str, password: str) -> bool:
    row = conn.execute(select(User.password_hash).where(User.name == name)).scalar_one_or_none()
    return row is not None and check_password_hash(row, password)


def set_disabled(conn: Connection, name: str, disabled: bool, now: dt.datetime) -> bool:
    """Disable (or enable) a user; disabling revokes every session they hold. False: no such user
    or already so."""
    user_id = conn.execute(update(User).where(User.name == name, User.disabled.is_not(disabled))
                           .values(disabled=disabled, updated_at=now).returning(User.id)).scalar_one_or_none()
    if user_id is None:
        return False
    if disabled:
        conn.execute(update(ConsoleSession).where(ConsoleSession.user_id == user_id,
                                                  ConsoleSession.revoked_at.is_(None)).values(revoked_at=now))
    return True


def set_password(conn: Connection, name: str, password: str, now: dt.datetime) -> bool:
    """A new password; every session the user holds ends (they sign in again)."""
    user_id = conn.execute(update(User).where(User.name == name).values(
        password_hash=generate_password_hash(password), updated_at=now).returning(User.id)).scalar_one_or_none()
    if user_id is None:
        return False
    conn.execute(update(ConsoleSession).where(ConsoleSession.user_id == user_id,
                                              ConsoleSession.revoked_at.is_(None)).values(revoked_at=now))
    return True


def start_session(conn: Connection, user_id: int, now: dt.datetime) -> str:
    """A new session for a user who just signed in; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    conn.execute(insert(ConsoleSession).values(token_hash=_token_hash(token), user_id=user_id, created_at=now,
                                               last_seen_at=now))
    conn.execute(update(User).where(User.id == user_id).values(last_login_at=now))
    return token


def session_user(conn: Connection, token: str, *, now: dt.datetime, idle: dt.timedelta,
                 lifetime: dt.timedelta) -> dict[str, Any] | None:
    """The user a live session token belongs to: not revoked, not idle longer than `idle`, not older
    than `lifetime`, and the user not disabled. Touches the session at most once a minute."""
    row = conn.execute(select(ConsoleSession.created_at, ConsoleSession.last_seen_at, *_COLUMNS)
                       .join(User, User.id == ConsoleSession.user_id)
                       .where(ConsoleSession.token_hash == _token_hash(token),
                              ConsoleSession.revoked_at.is_(None))).mappings().first()
    if row is None or row["disabled"] or now - row["last_seen_at"] > idle or now - row["created_at"] > lifetime:
        return None
    if now - row["last_seen_at"] > dt.timedelta(minutes=1):
        conn.execute(update(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token))
                     .values(last_seen_at=now))
    return {k: v for k, v in row.items() if k not in ("created_at", "last_seen_at")}


def end_session(conn: Connection, token: str, now: dt.datetime) -> None:
    conn.execute(update(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token),
                                              ConsoleSession.revoked_at.is_(None)).values(revoked_at=now))


def note_failed_login(conn: Connection, username: str, address: str, now: dt.datetime) -> None:
    conn.execute(insert(LoginAttempt).values(username=username[:64], address=address[:64], at=now))


def failed_logins(conn: Connection, *, username: str, address: str, since: dt.datetime) -> tuple[int, int]:
    """Failed attempts since `since`: (for this user name, from this address)."""
    by_name = conn.execute(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.username == username[:64], LoginAttempt.at >= since)).scalar_one()
    by_address = conn.execute(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.address == address[:64], LoginAttempt.at >= since)).scalar_one()
    return int(by_name), int(by_address)


def forget_failed_logins(conn: Connection, *, username: str, before: dt.datetime) -> None:
    """A successful login clears that name's failures; old attempts of everyone are pruned."""
    conn.execute(delete(LoginAttempt).where(LoginAttempt.username == username[:64]))
    conn.execute(delete(LoginAttempt).where(LoginAttempt.at < before))
