"""POST /events/*: validated, idempotent on event_id, answered at once while the run proceeds."""

from __future__ import annotations

from flask import request, url_for

from ...events import SCHEMAS
from ...pipeline import begin_event
from ...vocabulary import EventType
from ..auth import RUN
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from .common import RunAcceptedSchema, now, record, services, hand_off_run

blp = ApiBlueprint("events", __name__, url_prefix="/api/v1/events",
                   description="Events from other bank systems that trigger campaigns")


def _accept(event_type: EventType):  # type: ignore[no-untyped-def]
    svc = services()
    start = begin_event(svc, event_type, request.get_json(), now=now())
    if start.replay is not None:
        run_id = start.replay["run_id"]
        body = {"run_id": run_id, "status": start.replay["status"], "replayed": True,
                "event_key": start.replay["event_key"], "url": url_for("runs.get_run", run_id=run_id)}
        return body, 200
    pending = start.pending
    assert pending is not None and pending.run_id is not None
    record("event", pending.event_key, {"run_id": pending.run_id, "rules": [r.id for r in pending.rules]})
    hand_off_run(svc, pending)
    return {"run_id": pending.run_id, "status": "running", "replayed": False, "event_key": pending.event_key,
            "url": url_for("runs.get_run", run_id=pending.run_id)}, 202


def _endpoint(event_type: EventType, path: str, summary: str) -> None:
    def view(_payload):  # type: ignore[no-untyped-def]
        return _accept(event_type)

    view.__name__ = event_type.value
    view.__doc__ = summary
    view = blp.response(202, RunAcceptedSchema, description="accepted: the run proceeds in the background")(view)
    view = blp.alt_response(200, schema=RunAcceptedSchema, description="a replay: the event's first run")(view)
    view = blp.alt_response(409, schema=ErrorSchema, description="this event_id came with another payload")(view)
    view = blp.arguments(SCHEMAS[event_type])(view)
    view = blp.secured(RUN)(view)
    blp.route(path, methods=["POST"])(view)


_endpoint(EventType.RATE_CHANGE, "/rate-change", "A deposit or product rate changed")
_endpoint(EventType.PRODUCT_LAUNCH, "/product-launch", "A new product is launched (suitability enforced)")
_endpoint(EventType.LARGE_TRANSACTION, "/large-transaction", "A large transaction on one customer's account")
