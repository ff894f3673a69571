"""Console users of the local demo database (`demo-data` creates them; `make serve` prints the login).

They are marked `demo`: a real bank's database never gets them, since `demo-data` is for the
quick start only. One per role that has screens, the manager bound to RM0012 (北京分行丰台支行), the
manager of the quick start's diamond customer C00000053, so the README's large transfer is on its list."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..store import users

DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = (("demo-admin", "admin", None), ("demo-marketer", "marketer", None),
              ("demo-approver", "approver", None), ("demo-operator", "operator", None),
              ("demo-manager", "manager", "RM0012"))


def create_demo_users(engine: Any, now: dt.datetime) -> int:
    """The demo users not there yet; returns how many were created."""
    created = 0
    with engine.begin() as conn:
        for name, role, manager_id in DEMO_USERS:
            if users.get_user(conn, name=name) is None:
                users.create_user(conn, name=name, password=DEMO_PASSWORD, role=role, manager_id=manager_id,
                                  now=now, demo=True)
                created += 1
    return created


def demo_login(engine: Any) -> tuple[str, str] | None:
    """The demo admin's login if it is still the demo one (marked demo, password unchanged)."""
    with engine.connect() as conn:
        user = users.get_user(conn, name=DEMO_USERS[0][0])
        if user is None or not user["demo"] or user["disabled"] or not users.has_password(
                conn, DEMO_USERS[0][0], DEMO_PASSWORD):
            return None
    return DEMO_USERS[0][0], DEMO_PASSWORD
