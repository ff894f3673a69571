"""Celery tasks (an entry point): thin wrappers over pipeline.shards.execute_shard and delivery draining.

Each worker process opens its own Services (database pool, rulebook, rules engine) on
first use, from its own settings (CAMPAIGN_ENGINE_* environment / config file).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_process_shutdown

from ..clock import utc_now
from ..errors import StoreError
from ..pipeline.services import Services
from ..pipeline.shards import execute_shard, fail_shard
from ..settings import load_settings
from .app import celery_app
from .executor import SHARD_TASK
from .slots import DELIVER_TASK

log = logging.getLogger(__name__)

SHARD_RETRIES = 5
_process: dict[str, Any] = {}


def _folder_stamp(*folders: Path) -> tuple[tuple[str, int, int], ...]:
    """What the rule and template files are now (path, mtime, size): a change means reload."""
    stamps = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def services() -> Services:
    """This worker process's services (after the fork, never shared with a parent), opened again
    when the rule or template files have changed since: a worker executes the rules as they are
    on its machine when a shard starts (a few ms to check; rule files are few)."""
    settings = _process.get("settings") or load_settings()
    stamp = _folder_stamp(settings.rules_dir, settings.templates_dir)
    if "services" not in _process or _process.get("stamp") != stamp:
        from ..bootstrap import open_services

        previous = _process.pop("services", None)
        if previous is not None:
            log.info("rule or template files changed: reloading them")
            previous.close()
        _process.update(settings=settings, stamp=stamp, services=open_services(settings))
    return _process["services"]


@worker_process_init.connect
def _forget_parent(**_: Any) -> None:
    _process.clear()


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    from .draining import close_process_worker

    close_process_worker()
    svc = _process.pop("services", None)
    if svc is not None:
        svc.close()


def worker_name(task: Task) -> str:
    return f"{task.request.hostname or socket.gethostname()}:{os.getpid()}"


@celery_app.task(bind=True, name=SHARD_TASK, max_retries=SHARD_RETRIES)
def shard_task(self: Task, run_id: int, shard_no: int) -> dict[str, Any] | None:
    """Execute one shard of a run; the worker that finishes the last shard closes the run and
    starts delivery. A database error is retried with backoff; other errors fail the shard."""
    svc = services()
    try:
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

    return drain(services().settings, services().db, slot, worker=worker_name(self))
