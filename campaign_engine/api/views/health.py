"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

import marshmallow as ma
from sqlalchemy import text

from ..blueprint import ApiBlueprint
from .common import services, state

blp = ApiBlueprint("health", __name__, url_prefix="", description="Probes")


class HealthSchema(ma.Schema):
    status = ma.fields.String()


class ReadySchema(ma.Schema):
    status = ma.fields.String()
    database = ma.fields.String()
    rules = ma.fields.Integer()
    rule_problems = ma.fields.Integer()
    scheduler = ma.fields.String()


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz():  # type: ignore[no-untyped-def]
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="not ready")
def readyz():  # type: ignore[no-untyped-def]
    """Database reachable, rules loaded, scheduler state."""
    svc = services()
    try:
        with svc.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        database = f"unreachable: {type(exc).__name__}"
    scheduler = state().scheduler
    body = {"database": database, "rules": len(svc.rulebook.rules), "rule_problems": len(svc.rulebook.problems),
            "scheduler": scheduler.state_name() if scheduler is not None else "not running in this process"}
    ready = database == "ok" and bool(svc.rulebook.rules)
    body["status"] = "ready" if ready else "not ready"
    return body, 200 if ready else 503
