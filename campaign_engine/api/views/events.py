"""POST /events/*: validated, idempotent on event_id, answered at once while the run proceeds."""

from __future__ import annotations

from typing import Any, Mapping

from ...events import SCHEMAS, Event
from ...pipeline import EventRunRequest, start_run
from ...vocabulary import EventType
from ..auth import RUN
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from .common import RunAcceptedSchema, accepted, now, record, services

blp = ApiBlueprint("events", __name__, url_prefix="/api/v1/events",
                   description="Events from other bank systems that trigger campaigns")


def _accept(event_type: EventType, payload: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """The payload as the schema loaded it (validated once, here at the edge) -> a run."""
    report = start_run(services(), EventRunRequest(Event.from_validated(event_type, payload)), now=now(), wait=False)
    if report.replayed:
        return accepted(report), 200
    record("event", report.event_key, {"run_id": report.run_id, "rules": list(report.rule_ids)})
    return accepted(report), 202


def _endpoint(event_type: EventType, path: str, summary: str) -> None:
    def view(payload):  # type: ignore[no-untyped-def]
        return _accept(event_type, payload)

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
