"""API keys sent as `Authorization: Bearer <key>`, and what each role may do."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable, NoReturn

from flask import current_app, g, request
from flask_smorest import abort as _untyped_abort

from ..store import apikeys
from ..vocabulary import Role

READ, RULES, RUN, ADMIN = "read", "rules", "run", "admin"
APPROVE = "approve"  # approve or reject a submitted rule change (four eyes)
AUDIT = "audit"  # read the audit log
# relationship-manager tasks: every role reads them; a manager key (role manager, bound to a
# manager_id: g.manager_id) only its own customers'. What a key may close the tasks views decide.
TASKS = "tasks"
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({READ, TASKS}),
    Role.MARKETER: frozenset({READ, RULES, TASKS}),
    Role.OPERATOR: frozenset({READ, RUN, TASKS}),
    Role.APPROVER: frozenset({READ, APPROVE, TASKS}),
    Role.AUDITOR: frozenset({READ, AUDIT, TASKS}),
    Role.MANAGER: frozenset({TASKS}),
    Role.ADMIN: frozenset({READ, RULES, RUN, ADMIN, APPROVE, AUDIT, TASKS}),
}

# flask_smorest ships no types (Any here); its abort is webargs' and always raises an HTTPException.
abort: Callable[..., NoReturn] = _untyped_abort


def _authenticate() -> dict[str, Any]:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        abort(401, message="send an API key as 'Authorization: Bearer <key>'",
              headers={"WWW-Authenticate": "Bearer"})
    state = current_app.extensions["campaign"]
    with state.runtime.services.db.connect() as conn:
        found = apikeys.find_key(conn, key.strip())
    if found is None:
        abort(401, message="unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    _note_use(state, found["id"])
    return found


TOUCH_EVERY = dt.timedelta(minutes=1)


def _note_use(state: Any, key_id: int) -> None:
    """Record a key's last use, at most once a minute per key and process (not a write per request)."""
    now = state.clock()
    last = state.key_last_touched.get(key_id)
    if last is not None and now - last < TOUCH_EVERY:
        return
    state.key_last_touched[key_id] = now
    with state.runtime.services.db.begin() as conn:
        apikeys.touch_key(conn, key_id, now)


def requires(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let the view run only for a key whose role grants `permission`; sets g.actor, g.role and
    g.manager_id (the manager a key of role manager acts as; None for other keys). A manager key
    bound to no manager is refused: it would otherwise be told apart from a supervisor by nothing."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = _authenticate()
            wait = current_app.extensions["campaign"].limiter.acquire(key["id"])
            if wait > 0:
                abort(429, message="too many requests for this key: slow down",
                      headers={"Retry-After": str(max(1, round(wait)))})
            if permission not in PERMISSIONS.get(key["role"], frozenset()):
                abort(403, message=f"role {key['role']} may not do this (needs {permission})")
            if key["role"] == Role.MANAGER and not key.get("manager_id"):
                abort(403, message=f"role {key['role']}: this key is bound to no manager (create one with "
                                   "`apikey create --role manager --manager ID`)")
            g.actor = f"key:{key['name']}#{key['id']}"
            g.role = key["role"]
            g.manager_id = key.get("manager_id")
            return view(*args, **kwargs)
        return wrapper
    return decorate
