"""The in-process executor: a recorded run's shards executed in this process.

In the calling thread (CLI, scheduler jobs, tests), or in a small thread pool when the entry
point must answer at once (the API without a broker). The Celery executor, with the same
interface, is campaign_engine.distributed.executor; bootstrap.choose_executor picks one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Sequence

from .services import Services
from .shards import execute_shard, fail_shard

log = logging.getLogger(__name__)


class InProcessExecutor:
    name = "in-process"

    def __init__(self, *, background_threads: int = 0):
        self.pool = ThreadPoolExecutor(background_threads, thread_name_prefix="run") if background_threads else None
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self.worker = f"in-process:{os.getpid()}"  # the worker name its shards are recorded with

    def submit(self, services: Services, run_id: int, shards: Sequence[int], *, now: dt.datetime) -> None:
        if self.pool is None:
            self._execute(services, run_id, list(shards), now)
            return
        future = self.pool.submit(self._execute, services, run_id, list(shards), now)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        if future.exception() is not None:
            log.error("background run failed", exc_info=future.exception())

    def _execute(self, services: Services, run_id: int, shards: list[int], now: dt.datetime) -> None:
        """Shard after shard; a shard that raises (a bug, not a rule's failure: those are counted)
        fails itself and the shards after it, so the run closes as failed, then the error is raised."""
        started = time.perf_counter()

        def clock() -> dt.datetime:  # `now` plus the time measured here: no wall-clock read
            return now + dt.timedelta(seconds=time.perf_counter() - started)

        for i, shard_no in enumerate(shards):
            try:
                execute_shard(services, run_id, shard_no, worker=self.worker, clock=clock)
            except Exception as exc:
                for rest in shards[i:]:
                    fail_shard(services, run_id, rest,
                               f"{type(exc).__name__}: {exc}" if rest == shard_no else f"not run: shard {shard_no} failed",
                               now=clock())
                raise

    def sweep_delivery(self, services: Services) -> int:
        return 0  # delivery runs as `campaign-engine send` beside an in-process service

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for background runs (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
