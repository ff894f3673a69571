"""Draining the outbox on a Celery worker: one delivery worker per process (channels kept open),
its send rates shared through Redis, for a bounded time per task."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..clock import utc_now
from ..delivery.worker import COUNT_KEYS, DeliveryWorker
from ..settings import Settings
from .slots import DELIVERY_BUDGET, kick_delivery, release_slot

_state: dict[str, Any] = {}


def process_worker(settings: Settings, db: Any, worker: str) -> DeliveryWorker:
    """This process's DeliveryWorker: channels opened once and kept (SMTP connections are reused)."""
    if "delivery" not in _state:
        from ..delivery.factory import build_delivery_worker

        _state["delivery"] = build_delivery_worker(settings, db, worker_id=worker, clock=utc_now)
    return _state["delivery"].worker


def close_process_worker() -> None:
    delivery = _state.pop("delivery", None)
    if delivery is not None:
        delivery.close()


def drain(settings: Settings, db: Any, slot: int, *, worker: str,
          budget: float | None = None) -> dict[str, int]:
    """Delivery passes until nothing is due or the budget is spent; then the slot is free again,
    and if messages remain, the next kick (the scheduler's sweep, a run closing) takes them."""
    deadline = time.monotonic() + (DELIVERY_BUDGET if budget is None else budget)
    totals: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
    more = False
    try:
        delivery = process_worker(settings, db, worker)
        while time.monotonic() < deadline:
            counts = delivery.run_once()
            totals.update(counts)
            if counts["claimed"] == 0:
                break
        else:
            more = True
    finally:
        release_slot(settings, slot)
    if more:
        kick_delivery(settings)
    return dict(totals)
