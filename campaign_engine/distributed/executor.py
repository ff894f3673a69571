"""The Celery executor: a recorded run's shards queued as tasks for the workers (by task name:
this module never imports the task definitions, so nothing here imports an entry point)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Sequence

from ..pipeline.services import Services
from .app import sender
from .slots import kick_delivery, workers_deliver

log = logging.getLogger(__name__)

SHARD_TASK = "campaign_engine.execute_shard"


class CeleryExecutor:
    name = "celery"

    def submit(self, services: Services, run_id: int, shards: Sequence[int], *, now: dt.datetime) -> None:
        """Queue one task per shard; returns at once (the workers close the run)."""
        settings = services.settings
        app = sender(settings)
        for shard_no in shards:
            app.send_task(SHARD_TASK, args=(run_id, shard_no), queue=settings.celery_queue)
        log.info("run %s: %s shard(s) queued for the workers", run_id, len(shards))

    def sweep_delivery(self, services: Services) -> int:
        if not workers_deliver(services.settings):
            return 0
        return kick_delivery(services.settings)

    def close(self) -> None:
        pass
