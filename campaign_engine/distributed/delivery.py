"""A delivery worker per Celery worker process, sharing its send rates through Redis."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from sqlalchemy import Engine

from ..clock import utc_now
from ..delivery.worker import COUNT_KEYS, DeliveryWorker
from ..settings import Settings

_state: dict[str, Any] = {}


def process_worker(settings: Settings, db: Engine, worker: str) -> DeliveryWorker:
    """This process's DeliveryWorker: channels opened once and kept (SMTP connections are reused)."""
    if "worker" not in _state:
        from ..delivery.channels import build_channels
        from ..delivery.presend import presend_check, unsubscribe_link
        from ..delivery.ratelimit import make_bucket

        channels = build_channels(settings.channels)
        url = settings.rate_limit_url
        _state["channels"] = channels
        _state["worker"] = DeliveryWorker(
            db, channels, worker_id=worker, rates=settings.send_rates,
            bucket_factory=lambda name, rate: make_bucket(rate, url, channel=name),
            before_send=presend_check(db, settings, utc_now), unsubscribe_url=unsubscribe_link(settings))
    return _state["worker"]


def close_process_worker() -> None:
    worker = _state.pop("worker", None)
    if worker is not None:
        worker.close()
    for channel in _state.pop("channels", {}).values():
        channel.close()


def drain(settings: Settings, db: Engine, slot: int, *, worker: str,
          budget: float | None = None) -> dict[str, int]:
    """Delivery passes until nothing is due or the budget is spent; then the slot is free again,
    and if messages remain, the next kick (the scheduler's sweep, a run closing) takes them."""
    from .dispatch import DELIVERY_BUDGET, kick_delivery, release_slot

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
