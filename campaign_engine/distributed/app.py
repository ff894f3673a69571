"""The Celery application, configured from Settings (nothing connects at import time)."""

from __future__ import annotations

from celery import Celery

from ..errors import ConfigError, Problem
from ..settings import Settings

celery_app = Celery("campaign_engine", include=["campaign_engine.distributed.tasks"])


def configure(settings: Settings) -> Celery:
    """Point the app at the settings' broker. Tasks are acknowledged after they finish, so a
    worker lost mid-shard leaves its task to another worker (Redis: after the visibility
    timeout; RabbitMQ: when the connection drops); a shard executed twice writes nothing twice."""
    timeout = settings.celery_visibility_timeout
    celery_app.conf.update(
        broker_url=settings.celery_broker_url,
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": timeout,
            # look for abandoned tasks a few times per timeout, not every ~100 s (kombu's default)
            "unacked_restore_interval": max(1, min(10, timeout // 4)),
            "unacked_restore_throttle": 1,
        },
        enable_utc=True,
        timezone="UTC",
    )
    return celery_app


_senders: dict[str, Celery] = {}


def sender(settings: Settings) -> Celery:
    """An app that sends tasks (by name) to this settings' broker: one per broker URL, so a
    process that meets two brokers (tests do) never sends through the first one's cached
    connection and producer pools, which the module-level app keeps once it has sent."""
    url = settings.celery_broker_url
    assert url, "sending tasks needs a broker (the Celery executor is chosen only with one)"
    app = _senders.get(url)
    if app is None:
        app = _senders[url] = Celery("campaign_engine-sender", set_as_current=False)
        app.conf.update(broker_url=url, task_serializer="json", accept_content=["json"], task_ignore_result=True,
                        broker_connection_retry_on_startup=True)
    return app


def require_broker(settings: Settings) -> None:
    """A worker needs a broker to take tasks from."""
    if not settings.celery_broker_url:
        raise ConfigError([Problem("a worker needs a broker: set CAMPAIGN_ENGINE_CELERY_BROKER_URL "
                                   "(redis://... or amqp://...)", field="celery_broker_url")], what="settings")
