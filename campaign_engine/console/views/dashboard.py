"""The dashboard (its screen is being built: today it greets and links the others)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template

from ...api.auth import READ, TASKS
from .. import auth
from ..blueprint import bp
from .core import landing


@bp.route("/")
@auth.requires(TASKS)
def dashboard() -> Any:
    if not auth.can(READ):
        return redirect(landing())
    return render_template("console/dashboard.html")
