"""Handing runs and delivery to Celery workers (used only when a broker is configured)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Callable

from .. import pipeline
from ..errors import NotFound, Problem, ValidationFailed
from ..settings import Settings
from ..store import runs
from ..vocabulary import RunStatus

log = logging.getLogger(__name__)

DELIVERY_BUDGET = 30.0  # seconds one delivery task drains before handing its slot back
SLOT_KEY = "campaign-engine:deliver:slot:"


def submit_run(services: pipeline.Services, pending: pipeline.PendingRun) -> dict[str, Any]:
    """Record the run's shards and queue one task per shard; returns at once."""
    from .app import configure
    from .tasks import run_shard

    assert pending.run_id is not None and not pending.dry_run
    shards = pipeline.plan_shards(services, pending)
    configure(services.settings)
    for shard in shards:
        run_shard.apply_async((pending.run_id, shard.number), queue=services.settings.celery_queue)
    return {"run_id": pending.run_id, "status": RunStatus.RUNNING.value, "shards": len(shards)}


def execute(services: pipeline.Services, pending: pipeline.PendingRun, *, wait: bool = True,
            timeout: float | None = None) -> dict[str, Any]:
    """Execute an accepted run: on the workers when a broker is configured (waiting for the run
    to close unless `wait` is False), else here. Dry runs always execute here."""
    if pending.dry_run or not services.settings.distributed:
        return pipeline.finish_run(services, pending)
    accepted = submit_run(services, pending)
    if not wait:
        return accepted
    assert pending.run_id is not None
    return wait_for_run(services, pending.run_id, timeout=timeout)


def resume(services: pipeline.Services, run_id: int, *, now: Callable[[], dt.datetime],
           wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Finish a run whose process or workers were lost: its unfinished shards are queued again
    (with a broker) or executed here. Messages already written stand; none is written twice."""
    with services.db.connect() as conn:
        if runs.run_record(conn, run_id) is None:
            raise NotFound("run", run_id)
    shards = pipeline.unfinished_shards(services, run_id)
    if not shards:
        raise ValidationFailed([Problem(f"run {run_id} has no unfinished shard", field="run_id")],
                               what="resume request")
    if not services.settings.distributed:
        pipeline.resume_run(services, run_id, clock=now)
    else:
        from .app import configure
        from .tasks import run_shard

        configure(services.settings)
        for shard_no in shards:
            run_shard.apply_async((run_id, shard_no), queue=services.settings.celery_queue)
        if not wait:
            return {"run_id": run_id, "status": RunStatus.RUNNING.value, "shards": len(shards)}
    return wait_for_run(services, run_id, timeout=timeout)


def wait_for_run(services: pipeline.Services, run_id: int, *, timeout: float | None = None,
                 poll: float = 0.5) -> dict[str, Any]:
    """Poll the run record until its last shard closes it (TimeoutError after `timeout` s)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with services.db.connect() as conn:
            report = runs.get_run(conn, run_id)
        assert report is not None
        if report["status"] != RunStatus.RUNNING.value:
            return report
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still running after {timeout} s: shards {report['shards']}")
        time.sleep(poll)


def kick_delivery(settings: Settings, slots: int | None = None) -> int:
    """Queue a delivery task for each free slot (at most `delivery_tasks` drain at once across
    every worker; a slot is a Redis key that expires if its worker dies). Returns how many
    were queued. Without Redis there is no shared slot or rate: run `campaign-engine send`."""
    from ..delivery.ratelimit import redis_client
    from .app import configure
    from .tasks import deliver

    url = settings.rate_limit_url
    if not url:
        log.warning("delivery is not spread over Celery workers without Redis (redis_url); "
                    "run `campaign-engine send`")
        return 0
    client = redis_client(url)
    configure(settings)
    queued = 0
    for slot in range(settings.delivery_tasks if slots is None else slots):
        if client.set(SLOT_KEY + str(slot), "queued", nx=True, ex=int(DELIVERY_BUDGET * 4)):
            deliver.apply_async((slot,), queue=settings.celery_queue)
            queued += 1
    return queued


def release_slot(settings: Settings, slot: int) -> None:
    from ..delivery.ratelimit import redis_client

    if settings.rate_limit_url:
        redis_client(settings.rate_limit_url).delete(SLOT_KEY + str(slot))
