"""Campaign runs: list, inspect, and start scheduled rules now."""

from __future__ import annotations

import marshmallow as ma
from flask import jsonify

from ...pipeline import ScheduledRunRequest, get_report, start_run
from ...store import runs as run_store
from ...vocabulary import RunKind
from ..auth import READ, RUN
from ..blueprint import ApiBlueprint
from .common import (PageArgs, RunAcceptedSchema, RunSchema, accepted, existing_id, now, numeric_cursor, record,
                     services, today)

blp = ApiBlueprint("runs", __name__, url_prefix="/api/v1/runs", description="Campaign runs and their counts")


class RunListArgs(PageArgs):
    kind = ma.fields.String(validate=ma.validate.OneOf([k.value for k in RunKind]))
    status = ma.fields.String(validate=ma.validate.Length(max=32))


class RunSummarySchema(ma.Schema):
    run_id = ma.fields.Integer()
    kind = ma.fields.String()
    date = ma.fields.String()
    status = ma.fields.String()
    event_key = ma.fields.String(allow_none=True)
    error = ma.fields.String(allow_none=True)
    started_at = ma.fields.String()
    finished_at = ma.fields.String(allow_none=True)


class RunPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RunSummarySchema))
    next = ma.fields.String(allow_none=True)


class RunRequestSchema(ma.Schema):
    rules = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=64)),
                           metadata={"description": "rule ids; default every enabled scheduled rule"})
    date = ma.fields.Date(metadata={"description": "run date; default today in the configured time zone"})
    dry_run = ma.fields.Boolean(load_default=False)


@blp.route("", methods=["GET"])
@blp.secured(READ)
@blp.arguments(RunListArgs, location="query")
@blp.response(200, RunPageSchema)
def list_runs(args):  # type: ignore[no-untyped-def]
    """Runs, newest first."""
    after = numeric_cursor(args.get("after"))
    with services().db.connect() as conn:
        items = run_store.list_runs(conn, kind=args.get("kind"), status=args.get("status"),
                                    limit=args["limit"], before_id=after)
    return {"items": items, "next": str(items[-1]["run_id"]) if len(items) == args["limit"] else None}


@blp.route("/<int:run_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, RunSchema)
def get_run(run_id: int):  # type: ignore[no-untyped-def]
    """One run with per-rule counts and suppression reasons."""
    return get_report(services(), existing_id("run", run_id)).as_dict()


@blp.route("", methods=["POST"])
@blp.secured(RUN)
@blp.arguments(RunRequestSchema)
@blp.response(202, RunAcceptedSchema, description="accepted: the run proceeds in the background")
@blp.alt_response(200, schema=RunSchema, description="a dry run's report (nothing written)")
def create_run(body):  # type: ignore[no-untyped-def]
    """Run scheduled rules now for a date."""
    request = ScheduledRunRequest(today(body.get("date")), tuple(body.get("rules") or ()), dry_run=body["dry_run"])
    report = start_run(services(), request, now=now(), wait=False)
    if report.dry_run:  # its own schema: the 202 schema would drop the counts
        return jsonify(RunSchema().dump(report.as_dict()))
    record("run", f"run:{report.run_id}", {"date": report.date.isoformat(),
                                            "rules": list(report.rule_ids)})
    return accepted(report), 202
