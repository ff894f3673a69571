"""Who is signed in to the console, and what they may do.

A console user has a role from the same table the API's keys use (api/auth.py PERMISSIONS), so a
role means the same on every path. The session cookie (Flask's, signed with `secret_key`) holds
only a random token (store/users.py keeps its hash) and the CSRF secret; a login starts a new
cookie and a new token (no session fixation), logout and `user disable` revoke it everywhere.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable

from flask import abort, current_app, g, redirect, request, session, url_for

from ..api.auth import PERMISSIONS
from ..store import users
from ..vocabulary import Role

SESSION_IDLE = dt.timedelta(hours=8)  # a working day without a request ends the session
SESSION_LIFETIME = dt.timedelta(hours=12)
LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5  # failed logins per user name in the window, then that name waits
MAX_FAILURES_PER_ADDRESS = 20  # and per client address (many names tried from one place)


def state() -> Any:
    return current_app.extensions["campaign"]


def now() -> dt.datetime:
    return state().clock()


def db() -> Any:
    return g.services.db


def load_user() -> None:
    """Before every console request: g.user from the session's token, or None."""
    g.user = None
    token = session.get("token")
    if not token:
        return
    with db().begin() as conn:
        g.user = users.session_user(conn, token, now=now(), idle=SESSION_IDLE, lifetime=SESSION_LIFETIME)
    if g.user is None:  # revoked, expired or disabled: the cookie is worth nothing now
        session.pop("token", None)
        return
    g.actor = f"user:{g.user['name']}"
    g.role = g.user["role"]
    g.manager_id = g.user["manager_id"]


def can(permission: str) -> bool:
    user = g.get("user")
    return user is not None and permission in PERMISSIONS.get(user["role"], frozenset())


def is_manager() -> bool:
    user = g.get("user")
    return user is not None and user["role"] == Role.MANAGER


def requires(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view runs for a signed-in user whose role grants `permission`; others are sent to the
    login page (not signed in) or get the console's 403 page."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.get("user") is None:
                if request.method == "GET":
                    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
                abort(401)
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def client_address() -> str:
    return request.remote_addr or "unknown"


def login_blocked(username: str) -> bool:
    with db().connect() as conn:
        by_name, by_address = users.failed_logins(conn, username=username, address=client_address(),
                                                  since=now() - LOGIN_WINDOW)
    return by_name >= MAX_FAILURES_PER_NAME or by_address >= MAX_FAILURES_PER_ADDRESS


def sign_in(username: str, password: str) -> dict[str, Any] | None:
    """Check the password; on success a fresh session (new cookie, new token), else a failure noted."""
    with db().begin() as conn:
        user = users.check_login(conn, username, password)
        if user is None:
            users.note_failed_login(conn, username, client_address(), now())
            return None
        users.forget_failed_logins(conn, username=username, before=now() - LOGIN_WINDOW)
        token = users.start_session(conn, user["id"], now())
    lang = session.get("lang")
    session.clear()  # nothing from before the login survives it: a new CSRF secret too
    session["token"] = token
    if lang:
        session["lang"] = lang
    session.permanent = True
    return user


def sign_out() -> None:
    token = session.get("token")
    if token:
        with db().begin() as conn:
            users.end_session(conn, token, now())
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
