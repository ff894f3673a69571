"""The one place a delivery worker is built from settings, for every entry point that sends.

`campaign-engine send` and each Celery worker process (distributed) call
build_delivery_worker, so both send through the same channels, send rates, pre-send
check and unsubscribe links.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .channel import Channel
from .channels import build_channels
from .presend import presend_check, unsubscribe_link
from .send_rates import describe_client, make_bucket, redis_client
from .worker import DeliveryWorker

if TYPE_CHECKING:
    from ..store.db import Engine

    from ..settings import Settings


@dataclass(frozen=True)
class WorkerAndChannels:
    """A delivery worker with the channels built for it; `close()` closes both (the worker does not own them)."""

    worker: DeliveryWorker
    channels: Mapping[str, Channel]
    #: The Redis holding the send-rate buckets shared by every worker; None: each worker limits itself.
    rate_limit_url: str | None = None

    def shared_rates_at(self) -> str | None:
        """host:port/db of the Redis holding the shared send rates (no credentials), or None."""
        return describe_client(redis_client(self.rate_limit_url)) if self.rate_limit_url else None

    def close(self) -> None:
        self.worker.close()
        for channel in self.channels.values():
            channel.close()


def build_delivery_worker(settings: Settings, db: Engine, *, clock: Callable[[], dt.datetime],
                          worker_id: str | None = None, batch_size: int = 200) -> WorkerAndChannels:
    """A DeliveryWorker over the `channels` setting: `send_rates` per channel (one bucket in Redis shared
    by every worker when `rate_limit_url` is set), claims held `delivery_lease` seconds and renewed
    every `delivery_heartbeat`, the contact policy checked again before each send, and one-click
    unsubscribe links for marketing email.

    `worker_id` names the worker's claims (by default host:pid:random). Raises ConfigError for bad
    channel settings. Opens no connection: the first send or rate-limit check does.
    """
    channels = build_channels(settings.channels)
    url = settings.rate_limit_url
    try:
        worker = DeliveryWorker(db, channels, worker_id=worker_id, batch_size=batch_size, clock=clock,
                                lease=dt.timedelta(seconds=settings.delivery_lease),
                                heartbeat=dt.timedelta(seconds=settings.delivery_heartbeat),
                                rates=settings.send_rates,
                                bucket_factory=lambda name, rate: make_bucket(rate, url, channel=name),
                                before_send=presend_check(db, settings, clock),
                                unsubscribe_url=unsubscribe_link(settings))
    except BaseException:
        for channel in channels.values():
            channel.close()
        raise
    return WorkerAndChannels(worker, channels, url)
