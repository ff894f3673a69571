"""Celery tasks (an entry point): thin wrappers over pipeline.shards.execute_shard and delivery draining.

Each worker process opens its own Services (database pool, the published rule set, rules engine)
on first use, from its own settings (CAMPAIGN_ENGINE_* environment / config file), and keeps them
in one Runtime for its life. A shard task first follows the published generation
(`Runtime.refresh`: one single-row read; the live set is rebuilt only when a publish, disable or
enable moved it), so the worker's live set is the database's, never its machine's rule folder.
Whatever the live set, a shard executes exactly the rule versions its run recorded
(pipeline.shards.load_run); the live set is the fast path when they are the same.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_process_shutdown

from ..clock import utc_now
from ..errors import StoreError
from ..pipeline.services import Services
from ..pipeline.shards import execute_shard, fail_shard
from ..runtime import Runtime
from ..settings import load_settings
from .app import celery_app
from .executor import SHARD_TASK
from .slots import DELIVER_TASK

log = logging.getLogger(__name__)

SHARD_RETRIES = 5
_process: dict[str, Any] = {}  # this worker process's "runtime" (after the fork, never the parent's)
_opening = threading.Lock()


def runtime() -> Runtime:
    """This worker process's Runtime, opened on first use and kept until the process shuts down."""
    found = _process.get("runtime")
    if found is not None:
        return found
    with _opening:  # a threads pool: one Runtime per process all the same
        found = _process.get("runtime")
        if found is None:
            from ..bootstrap import open_services

            found = _process["runtime"] = Runtime(open_services(load_settings()))
        return found


def services() -> Services:
    """This worker process's current Services (no database read: `runtime().refresh()` follows a publish)."""
    return runtime().services


def live_services() -> Services:
    """The Services after following the published generation, as a shard task starts with."""
    current = runtime()
    current.refresh()
    return current.services


@worker_process_init.connect
def _forget_parent(**_: Any) -> None:
    """After the fork: the parent's Runtime (and its database pool) is not this process's."""
    global _opening
    _process.clear()
    _opening = threading.Lock()  # a lock held in the parent at the fork would stay held here


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    from .draining import close_process_worker

    close_process_worker()
    current = _process.pop("runtime", None)
    if current is not None:
        current.close()


def worker_name(task: Task) -> str:
    return f"{task.request.hostname or socket.gethostname()}:{os.getpid()}"


@celery_app.task(bind=True, name=SHARD_TASK, max_retries=SHARD_RETRIES)
def shard_task(self: Task, run_id: int, shard_no: int) -> dict[str, Any] | None:
    """Execute one shard of a run; the worker that finishes the last shard closes the run and
    starts delivery. A database error is retried with backoff; other errors fail the shard."""
    svc = services()
    try:
        svc = live_services()  # follow a publish first; a database error reading it is retried too
        outcome = execute_shard(svc, run_id, shard_no, worker=worker_name(self), clock=utc_now)
    except StoreError as exc:
        if self.request.retries < SHARD_RETRIES:
            log.warning("run %s shard %s: %s; retrying", run_id, shard_no, exc)
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries))
        fail_shard(svc, run_id, shard_no, f"{type(exc).__name__}: {exc}", now=utc_now())
        return None
    except Exception as exc:  # a bug or bad data: another attempt would fail the same way
        log.exception("run %s shard %s failed", run_id, shard_no)
        fail_shard(svc, run_id, shard_no, f"{type(exc).__name__}: {exc}", now=utc_now())
        return None
    if outcome is None:
        return None
    if outcome.closed is not None:
        svc.executor.sweep_delivery(svc)
    return {"run_id": run_id, "shard": shard_no, "closed": outcome.closed is not None,
            "rules": [s.as_dict() for s in outcome.stats]}


@celery_app.task(bind=True, name=DELIVER_TASK)
def deliver_task(self: Task, slot: int) -> dict[str, int]:
    """Drain due messages for a while (delivery_budget seconds), then hand the slot back."""
    from .draining import drain

    svc = services()
    return drain(svc.settings, svc.db, slot, worker=worker_name(self))
