"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

import marshmallow as ma

from ...pipeline.validate import calendar_warnings
from ...store import fires, scheduler_jobs
from ...store.db import ping
from ..blueprint import ApiBlueprint
from .common import services, today

blp = ApiBlueprint("health", __name__, url_prefix="", description="Probes")


class HealthSchema(ma.Schema):
    status = ma.fields.String()


class ReadySchema(ma.Schema):
    status = ma.fields.String()
    database = ma.fields.String()
    rules = ma.fields.Integer(metadata={"description": "published rules this process runs"})
    rule_problems = ma.fields.Integer()
    rules_generation = ma.fields.Integer(allow_none=True, metadata={
        "description": "the published set's generation this process runs (every process shows the same)"})
    scheduler = ma.fields.String()
    calendar = ma.fields.String(metadata={"description": "the official calendar on today's date: announced, or "
                                                       "why not and which rules it stops (the others run)"})


def _scheduler_state(svc) -> str:  # type: ignore[no-untyped-def]
    """Jobs in the shared store and the last fire, whichever process runs the scheduler."""
    with svc.db.connect() as conn:
        jobs = scheduler_jobs.next_run_times(conn)
        last = fires.last_fire(conn)
    if not jobs:
        return "no scheduled jobs (is a scheduler process running?)"
    return f"{len(jobs)} job(s); last fire {last.isoformat() if last else 'never'}"


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
def healthz():  # type: ignore[no-untyped-def]
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="not ready")
def readyz():  # type: ignore[no-untyped-def]
    """Database reachable, rules published (not ready before any is), scheduler state."""
    svc = services()
    try:
        ping(svc.db)
        database = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        database = f"unreachable: {type(exc).__name__}"
    day = today()
    unannounced = calendar_warnings(svc.rulebook, svc.holidays, day)
    body = {"database": database, "rules": len(svc.rulebook.rules), "rule_problems": len(svc.rulebook.problems),
            "rules_generation": svc.rulebook.generation,
            "scheduler": _scheduler_state(svc) if database == "ok" else "unknown",
            "calendar": unannounced[0].reason if unannounced else f"announced for {day}"}
    ready = database == "ok" and bool(svc.rulebook.rules)
    body["status"] = "ready" if ready else "not ready"
    return body, 200 if ready else 503
