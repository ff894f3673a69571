"""What operators watch and alert on, in Prometheus' text format.

Two kinds of figures:
- events counted where they happen, in the process they happen in (runs closed and their
  durations, shards, per-rule funnel counts, sends by outcome and their latency, retries, opt-outs
  by route, API requests): prometheus-client counters and histograms. Under gunicorn (`serve`)
  several worker processes count; `serve` points PROMETHEUS_MULTIPROC_DIR at a folder of its own
  and `/metrics` adds the workers up (prometheus-client's multiprocess mode). The `send` and Celery
  workers serve their own on `metrics_port`.
- the state of the database, read at scrape time by `DatabaseCollector` in whichever process is
  scraped (the same answer everywhere): the outbox's depth by status and channel, the oldest due
  message's age, runs by kind and status, each scheduled rule's last fire.

Labels are bounded: rule ids (a bank's rule set), channels, statuses, suppression reasons,
routes, endpoints (Flask's endpoint names, never raw paths).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from typing import Any, Callable, Iterable

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest,
                               start_http_server)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)

disable_created_metrics()  # no `_created` series beside every counter: nobody alerts on them

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

RUN_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
RUNS_CLOSED = Counter("campaign_runs_closed", "Runs closed, by kind and final status", ["kind", "status"])
RUN_DURATION = Histogram("campaign_run_duration_seconds", "From a run's start to its close", ["kind"],
                         buckets=RUN_SECONDS)
SHARD_DURATION = Histogram("campaign_shard_duration_seconds", "One shard's execution", ["status"],
                           buckets=RUN_SECONDS)
RULE_CANDIDATES = Counter("campaign_rule_candidates", "Candidates a rule evaluated", ["rule"])
RULE_MATCHED = Counter("campaign_rule_matched", "Subjects a rule's conditions matched", ["rule"])
RULE_QUEUED = Counter("campaign_rule_queued", "Messages a rule queued or scheduled, and tasks it planned", ["rule"])
RULE_SUPPRESSED = Counter("campaign_rule_suppressed", "Matches the contact policy stopped, by reason",
                          ["rule", "reason"])
RULE_ERRORS = Counter("campaign_rule_errors", "Rule executions that failed (in a shard)", ["rule"])
SENDS = Counter("campaign_sends", "Delivery attempts by channel and outcome (sent, retried, failed, stale)",
                ["channel", "outcome"])
SEND_LATENCY = Histogram("campaign_send_latency_seconds", "One provider call (SMTP, SMS gateway)", ["channel"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RETRIES = Counter("campaign_retries_requested", "Failed messages an operator put back in the outbox")
CHANNEL_PAUSED = Gauge("campaign_channel_paused", "1 while a delivery worker has paused the channel",
                       ["channel"], multiprocess_mode="max")
OPT_OUTS = Counter("campaign_opt_outs", "Marketing consent withdrawn, by route and channel", ["route", "channel"])
API_REQUESTS = Counter("campaign_api_requests", "HTTP requests by endpoint, method and status",
                       ["endpoint", "method", "status"])
API_LATENCY = Histogram("campaign_api_request_duration_seconds", "HTTP request handling time", ["endpoint"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def record_shard(stats: Iterable[Any], seconds: float, status: str) -> None:
    """A shard finished: its duration and each rule's funnel counts (RuleStats)."""
    SHARD_DURATION.labels(status).observe(seconds)
    for s in stats:
        RULE_CANDIDATES.labels(s.rule).inc(s.candidates)
        RULE_MATCHED.labels(s.rule).inc(s.matched)
        RULE_QUEUED.labels(s.rule).inc(s.queued + s.scheduled + s.tasks)
        for reason, n in s.suppressed.items():
            RULE_SUPPRESSED.labels(s.rule, reason).inc(n)
        if s.error:
            RULE_ERRORS.labels(s.rule).inc()


def record_run_closed(kind: str, status: str, started_at: dt.datetime | None, finished_at: dt.datetime | None) -> None:
    RUNS_CLOSED.labels(kind, status).inc()
    if started_at is not None and finished_at is not None:
        RUN_DURATION.labels(kind).observe(max(0.0, (finished_at - started_at).total_seconds()))


def record_sends(channel: str, counts: dict[str, int]) -> None:
    for outcome in ("sent", "retried", "failed", "stale"):
        if counts.get(outcome):
            SENDS.labels(channel, outcome).inc(counts[outcome])


def record_opt_out(route: str, channel: str) -> None:
    OPT_OUTS.labels(route, channel).inc()


class DatabaseCollector(Collector):
    """The database's state at scrape time: indexed, bounded reads (the unsent statuses only)."""

    def __init__(self, engine: Any, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from .store import gauges

        now = self.clock()
        depth = GaugeMetricFamily("campaign_outbox_messages", "Messages not yet sent, by status and channel",
                                  labels=["status", "channel"])
        oldest = GaugeMetricFamily("campaign_outbox_oldest_due_age_seconds",
                                   "Age of the oldest message due and not yet sent (absent: none waiting)",
                                   labels=["channel"])
        runs = GaugeMetricFamily("campaign_runs", "Runs recorded, by kind and status", labels=["kind", "status"])
        fired = GaugeMetricFamily("campaign_scheduler_last_fire_timestamp_seconds",
                                  "When the scheduler last fired each scheduled rule (Unix time)", labels=["rule"])
        up = GaugeMetricFamily("campaign_database_up", "1 when the database answered this scrape")
        try:
            with self.engine.connect() as conn:
                for status, channel, n in gauges.outbox_depth(conn):
                    depth.add_metric([status, channel], n)
                for channel, due in gauges.oldest_due(conn, now):
                    oldest.add_metric([channel], max(0.0, (now - due).total_seconds()))
                for kind, status, n in gauges.runs_by_kind_and_status(conn):
                    runs.add_metric([kind, status], n)
                for rule, at in gauges.last_fires(conn):
                    fired.add_metric([rule], at.timestamp())
            up.add_metric([], 1)
        except Exception:  # noqa: BLE001 (a scrape must answer: the database being down is itself the news)
            log.exception("metrics: the database could not be read")
            up.add_metric([], 0)
            yield up
            return
        yield from (depth, oldest, runs, fired, up)


def registry_for(engine: Any, clock: Callable[[], dt.datetime]) -> CollectorRegistry:
    """What one scrape reports: this process's (or, under gunicorn, all workers') counts and the
    database's state."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    registry.register(DatabaseCollector(engine, clock))
    return registry


class _Process(Collector):
    """This process's own counters (the default registry), for a registry of our own."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def render(engine: Any, clock: Callable[[], dt.datetime]) -> bytes:
    return generate_latest(registry_for(engine, clock))


_served: dict[int, Any] = {}
_lock = threading.Lock()


def serve_on_port(port: int | None, engine: Any, clock: Callable[[], dt.datetime], addr: str = "0.0.0.0") -> None:
    """A worker's own /metrics on `port` (the `metrics_port` setting; None: none), once per process."""
    if not port:
        return
    with _lock:
        if port in _served:
            return
        _served[port] = start_http_server(port, addr=addr, registry=registry_for(engine, clock))
    log.info("metrics on :%s/metrics", port)
