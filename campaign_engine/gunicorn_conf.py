"""gunicorn settings `serve` adds (`-c python:campaign_engine.gunicorn_conf`): a worker that exits
leaves its metric files to prometheus-client's multiprocess mode, which stops counting its live gauges."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
