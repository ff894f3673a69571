"""Delivery slots: at most `delivery_tasks` drain tasks at once across every worker.

A slot is a Redis key that expires if its worker dies; a free slot gets a `deliver` task,
queued by name (this module never imports the task definitions).
"""

from __future__ import annotations

import logging

from ..settings import Settings
from .app import sender

log = logging.getLogger(__name__)

DELIVERY_BUDGET = 30.0  # seconds one delivery task drains before handing its slot back
SLOT_KEY = "campaign-engine:deliver:slot:"
DELIVER_TASK = "campaign_engine.deliver"


def workers_deliver(settings: Settings) -> bool:
    """Delivery is spread over the workers only with Redis for shared slots and send rates."""
    return bool(settings.rate_limit_url and settings.delivery_tasks)


def kick_delivery(settings: Settings, slots: int | None = None) -> int:
    """Queue a delivery task for each free slot. Returns how many were queued. Without Redis
    there is no shared slot or rate: run `campaign-engine send`."""
    from ..delivery.send_rates import redis_client

    url = settings.rate_limit_url
    if not url:
        log.warning("delivery is not spread over Celery workers without Redis (redis_url); "
                    "run `campaign-engine send`")
        return 0
    client = redis_client(url)
    app = sender(settings)
    queued = 0
    for slot in range(settings.delivery_tasks if slots is None else slots):
        if client.set(SLOT_KEY + str(slot), "queued", nx=True, ex=int(DELIVERY_BUDGET * 4)):
            app.send_task(DELIVER_TASK, args=(slot,), queue=settings.celery_queue)
            queued += 1
    return queued


def release_slot(settings: Settings, slot: int) -> None:
    from ..delivery.send_rates import redis_client

    if settings.rate_limit_url:
        redis_client(settings.rate_limit_url).delete(SLOT_KEY + str(slot))
