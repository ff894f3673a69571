"""Signing in and out, and the language switch."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import flash, g, redirect, render_template, request, session, url_for

from ...store import audit
from .. import auth
from ..blueprint import bp, t
from ..i18n import LANGUAGES


def _safe_next(target: str | None) -> str | None:
    """Only a path on this server (no scheme, no host, no `//`): never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console") or target.startswith("//"):
        return None
    return target


def landing() -> str:
    """Where a user starts: a relationship manager at their work list, everyone else the dashboard."""
    from flask import current_app

    if auth.is_manager() and "console.tasks" in current_app.view_functions:
        return url_for("console.tasks")
    return url_for("console.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if g.user is not None:
            return redirect(_safe_next(request.args.get("next")) or landing())
        return render_template("console/login.html", next=request.args.get("next", ""), username="")
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    nxt = request.form.get("next") or ""
    if auth.login_blocked(username):
        with auth.db().begin() as conn:
            audit.record(conn, actor=f"user:{username}", action="console.login_blocked", target=None,
                         now=auth.now(), details={"address": auth.client_address()})
        return render_template("console/login.html", error=t("login.blocked"), next=nxt, username=username), 429
    user = auth.sign_in(username, password) if username and password else None
    if user is None:
        return render_template("console/login.html", error=t("login.failed"), next=nxt, username=username), 401
    with auth.db().begin() as conn:
        audit.record(conn, actor=f"user:{user['name']}", action="console.login", target=None, now=auth.now(),
                     details={"address": auth.client_address()})
    g.user = user
    return redirect(_safe_next(nxt) or landing())


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    if g.user is not None:
        with auth.db().begin() as conn:
            audit.record(conn, actor=f"user:{g.user['name']}", action="console.logout", target=None,
                         now=auth.now())
    auth.sign_out()
    flash(t("login.signed_out"), "info")
    return redirect(url_for("console.login"))


@bp.route("/lang/<code>")
def language(code: str) -> Any:
    """Switch the console's language (a preference in the session, not a change of any data)."""
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(_safe_next(request.args.get("next")) or url_for("console.login"))
