"""The console's one blueprint, its navigation, and what every page's template can use."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from ..api.auth import APPROVE, READ, TASKS
from . import auth
from .i18n import DEFAULT_LANGUAGE, LANGUAGES, translate

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")
csrf = CSRFProtect()

# (endpoint, catalogue key, permission): the navigation bar, in order; an entry shows when the
# user's role grants its permission and its screen is installed.
NAV: tuple[tuple[str, str, str], ...] = (
    ("console.dashboard", "nav.dashboard", READ),
    ("console.rules", "nav.rules", READ),
    ("console.reviews", "nav.reviews", APPROVE),
    ("console.runs", "nav.runs", READ),
    ("console.messages", "nav.messages", READ),
    ("console.customers", "nav.customers", READ),
    ("console.effect", "nav.effect", READ),
    ("console.tasks", "nav.tasks", TASKS),
    ("console.calendar", "nav.calendar", READ),
)


def lang() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, /, **values: Any) -> str:
    return translate(key, lang(), **values)


def tz() -> ZoneInfo:
    return ZoneInfo(g.services.settings.timezone)


def local(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time as the bank's clock shows it (the configured time zone)."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(tz()).strftime(fmt)


def number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def today() -> dt.date:
    return auth.now().astimezone(tz()).date()


def nav_items() -> list[dict[str, Any]]:
    """The entries this user may open; the one whose screen module serves this page is marked
    current (a run's page belongs to Runs, a task's to Tasks)."""
    installed = current_app.view_functions
    here = installed.get(request.endpoint or "")
    module = getattr(here, "__module__", None)
    return [{"endpoint": endpoint, "label": t(key), "url": url_for(endpoint),
             "active": module is not None and installed[endpoint].__module__ == module}
            for endpoint, key, permission in NAV if endpoint in installed and auth.can(permission)]


@bp.before_request
def _before() -> None:
    auth.load_user()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # every state-changing request: a form's csrf_token or htmx's X-CSRFToken header


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"t": t, "lang": lang(), "languages": LANGUAGES, "user": g.get("user"), "can": auth.can,
            "nav_items": nav_items, "local": local, "number": number}


@bp.app_template_filter("local")
def _local_filter(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return local(moment, fmt)


@bp.app_template_filter("number")
def _number_filter(value: Any) -> str:
    return number(value)


# Also as globals, so that imported macros (`{% import "console/_macros.html" as m %}`, no context)
# can translate and check roles.
bp.add_app_template_global(t, "t")
bp.add_app_template_global(auth.can, "can")
