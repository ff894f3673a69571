"""The outbox delivery worker: claim due messages, send them through their channel, record the outcome.

Pure orchestration over store.claims (the SQL) and Channel (the sending); it
reads the clock only through the `clock` it is given.

Safety when several workers run, or one dies:
- claims are row-level (SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite), so
  two workers never hold the same message;
- every outcome (sent, a retry with its due time, failed for good) is committed
  before the next send of that channel starts, so a worker killed mid-batch leaves
  at most the message in flight per channel unrecorded; the next worker sends it
  again with the same idempotency key (the dedupe key), which a de-duplicating
  provider drops. A message with a recorded permanent refusal is never sent again;
- claims are held for `lease` and renewed every `heartbeat` while the pass sends
  (the calling thread renews while the channels' threads send), so a live worker
  keeps its claims however slow its channel, and a dead worker's claims are taken
  over within a lease of its last renewal;
- a renewal extends only the claims this worker still holds; a claim it lost
  (expired and taken over) is not sent. Sending stops once half the lease has
  passed since the last successful renewal (the claim time at first) and the rest
  is handed back, so a worker that cannot renew stops before its claims expire;
  channel timeouts must stay under that half lease, so a send started in time ends
  in time;
- every outcome is written only if this worker still holds the claim: a worker
  that overran and was taken over cannot overwrite the newer state (counted "stale").

Isolation between channels: each channel's share of a batch is sent in its own
thread, so a slow or rate-limited channel does not hold up the other; after
`pause_after` consecutive transient failures a channel is paused (its remaining
claims handed back, no new claims for it) for `pause`, doubling while it keeps
failing up to `max_pause`.

Rate limits: a token bucket per channel, made by `bucket_factory(channel, rate)`
(see delivery.send_rates). The default is a bucket inside this worker, so N workers
may send N times the configured rate; `make_bucket(rate, redis_url, channel=...)`
gives one in Redis shared by every worker. When a shared bucket cannot be consulted
(RateLimitUnavailable) the channel is paused as after repeated transient failures:
nothing is sent on it faster than configured, not even while Redis is down.

Pre-send policy: `before_send(rows) -> rows` is the hook where consent, the
suppression list and quiet hours are checked again just before sending (the
default sends everything claimed). It receives the claimed rows (see
store.claims.CLAIMED_COLUMNS) and returns those to send; for every row it
leaves out it must itself record the outcome under this worker's claim (e.g.
suppressed, or queued for the window start), otherwise the row stays claimed
until the lease expires and is then claimed again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .. import metrics
from ..clock import utc_now
from ..store import claims
from .channel import Channel, Outgoing, PermanentSendError
from .retry import MAX_ATTEMPTS, decide, describe, next_attempt
from .send_rates import RateLimit, RateLimitUnavailable, local_bucket

if TYPE_CHECKING:
    from ..store.db import Engine

log = logging.getLogger(__name__)

Row = dict[str, Any]
COUNT_KEYS = ("claimed", "sent", "retried", "failed", "released", "held_back", "stale")


def default_worker_id() -> str:
    """host:pid:random, unique per worker object (claims are recorded under it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def outgoing(row: Row, unsubscribe_url: str | None = None) -> Outgoing:
    """A claimed row as its channel sends it; the dedupe key is the provider's idempotency key."""
    return Outgoing(message_id=row["id"], channel=row["channel"], recipient=row["recipient"] or "",
                    body=row["body"] or "", subject=row["subject"], html=row["html"],
                    idempotency_key=row["dedupe_key"], category=row["category"],
                    unsubscribe_url=unsubscribe_url)


def identity(rows: list[Row]) -> list[Row]:
    return rows


#: Defaults of the `delivery_lease` and `delivery_heartbeat` settings.
LEASE = dt.timedelta(seconds=30)
HEARTBEAT = dt.timedelta(seconds=5)


class HeldClaims:
    """One pass's claims while its channels send them, as the heartbeat keeps them.

    Written by the renewing thread, read by the sending ones: each attribute is
    replaced whole (an atomic assignment), never changed in place.
    """

    def __init__(self, message_ids: Sequence[int], until: dt.datetime):
        #: The claims still ours: an id missing here was lost (taken over, or given an outcome).
        self.kept: frozenset[int] = frozenset(message_ids)
        #: When the claims expire unless renewed again (the claim time + lease, then each renewal's).
        self.until = until
        #: Set when the pass is abandoned (the renewing thread was interrupted): stop sending.
        self.abandoned = False


class DeliveryWorker:
    """Sends due outbox messages through `channels` (keyed by message channel: "sms", "email").

    The worker does not own the channels: whoever built them closes them.
    """

    def __init__(self, db_engine: Engine, channels: Mapping[str, Channel], *, worker_id: str | None = None,
                 batch_size: int = 200, lease: dt.timedelta = LEASE, heartbeat: dt.timedelta | None = None,
                 rates: Mapping[str, float] | None = None, clock: Callable[[], dt.datetime] = utc_now,
                 max_attempts: int = MAX_ATTEMPTS, pause_after: int = 5,
                 pause: dt.timedelta = dt.timedelta(seconds=30),
                 max_pause: dt.timedelta = dt.timedelta(minutes=10),
                 before_send: Callable[[list[Row]], list[Row]] = identity,
                 unsubscribe_url: Callable[[Row], str | None] | None = None,
                 bucket_factory: Callable[[str, float], RateLimit] = local_bucket):
        if batch_size < 1 or pause_after < 1 or max_attempts < 1:
            raise ValueError("batch_size, pause_after and max_attempts must be at least 1")
        heartbeat = lease / 6 if heartbeat is None else heartbeat
        if lease <= dt.timedelta(0) or heartbeat <= dt.timedelta(0) or heartbeat * 3 > lease:
            raise ValueError("lease must be positive and heartbeat between 0 and a third of the lease")
        self.db = db_engine
        self.channels = dict(channels)
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease = lease
        #: Claims are renewed this often while a pass sends; at most a third of the lease, so one
        #: renewal may fail or come late without stopping the sending.
        self.heartbeat = heartbeat
        #: Sending stops this long before the claims expire (unless renewed first); the rest is handed
        #: back. Room for a send started just before to end before another worker may take it over.
        self.margin = lease / 2
        self.clock = clock
        self.max_attempts = max_attempts
        self.pause_after = pause_after
        self.pause = pause
        self.max_pause = max_pause
        self.before_send = before_send
        #: The one-click unsubscribe URL of a claimed row (List-Unsubscribe for marketing email), if any.
        self.unsubscribe_url = unsubscribe_url
        #: One rate limit per rate-limited channel: bucket_factory(channel, messages per second).
        self._buckets = {name: bucket_factory(name, rate) for name, rate in (rates or {}).items()
                         if rate and name in self.channels}
        self._failing: Counter[str] = Counter()  # consecutive transient failures per channel
        self._paused: dict[str, tuple[dt.datetime, dt.timedelta]] = {}  # until, last pause length
        self._stop = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        #: Successful claim renewals so far (each one UPDATE): what the heartbeat costs.
        self.renewals = 0

    # ------------------------------------------------------------------ passes

    def run_once(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Claim one batch of due messages, send each, record every outcome; counts by outcome.

        A failing message never stops the batch; a failing channel never stops the others.
        """
        now = now or self.clock()
        counts: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
        active = self.active_channels(now)
        with self.db.connect() as conn, claims.write_transaction(conn):
            rows = claims.claim_due(conn, worker=self.worker_id, now=now, limit=self.batch_size,
                                    lease=self.lease, channels=active)
        counts["claimed"] = len(rows)
        if not rows:
            return dict(counts)
        try:
            to_send = self.before_send(rows)
        except BaseException:
            self._release([row["id"] for row in rows], self.clock())
            raise
        counts["held_back"] = len(rows) - len(to_send)
        lanes: dict[str, list[Row]] = defaultdict(list)
        for row in to_send:
            lanes[row["channel"]].append(row)
        held = HeldClaims([row["id"] for row in to_send], now + self.lease)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=max(len(self.channels), 1),
                                                thread_name_prefix="delivery")
        futures = [self._executor.submit(self._send_lane, name, lane, held) for name, lane in lanes.items()]
        try:
            self._keep_claims(held, futures)  # until every lane has recorded its outcomes
        except BaseException:
            held.abandoned = True
            raise
        results = [f.result() for f in futures]
        for result in results:
            counts.update(result)
        log.info("delivery pass by %s: %s", self.worker_id,
                 ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        return dict(counts)

    def run_until_idle(self, max_passes: int | None = None,
                       on_pass: Callable[[Mapping[str, int]], None] | None = None) -> dict[str, int]:
        """Passes until nothing is due (or `max_passes`): `campaign-engine send --once`;
        `on_pass(totals so far)` after each (progress)."""
        totals: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
        passes = 0
        while not self._stop.is_set() and (max_passes is None or passes < max_passes):
            counts = self.run_once()
            totals.update(counts)
            if on_pass is not None:
                on_pass(totals)
            passes += 1
            if counts["claimed"] == 0:
                break
        return dict(totals)

    def run_forever(self, stop_event: threading.Event, idle_sleep: float = 1.0) -> dict[str, int]:
        """Passes until `stop_event` is set, sleeping `idle_sleep` s when nothing was due.

        Setting the event mid-batch hands the unsent claims back at once. A pass
        that raises (the database unreachable) is logged and tried again after idle_sleep.
        """
        self._stop = stop_event
        totals: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
        while not stop_event.is_set():
            try:
                counts = self.run_once()
            except Exception:
                log.exception("delivery pass by %s failed; trying again in %s s", self.worker_id, idle_sleep)
                stop_event.wait(idle_sleep)
                continue
            totals.update(counts)
            if counts["claimed"] == 0:
                stop_event.wait(idle_sleep)
        return dict(totals)

    def active_channels(self, now: dt.datetime) -> list[str]:
        """Channels this worker claims for now: configured and not paused."""
        return [name for name in self.channels
                if name not in self._paused or self._paused[name][0] <= now]

    def close(self) -> None:
        """Stop the sending threads (the channels are closed by whoever built them)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ------------------------------------------------------------------ the heartbeat

    def _keep_claims(self, held: HeldClaims, lanes: Sequence[Future[Counter[str]]]) -> None:
        """Renew the pass's claims every `heartbeat` until every lane is done: the worker's heartbeat."""
        interval = self.heartbeat.total_seconds()
        while wait(lanes, timeout=interval).not_done:
            self._renew(held)

    def _renew(self, held: HeldClaims) -> None:
        """One renewal: the claims still ours held another lease from now; a failure is logged, and
        the lanes stop at the last renewal's lease minus the margin unless a later renewal succeeds."""
        now = self.clock()
        try:
            with claims.autocommit_connection(self.db) as conn:
                kept = claims.renew_claims(conn, sorted(held.kept), worker=self.worker_id, now=now,
                                           lease=self.lease)
        except Exception as exc:
            log.warning("delivery worker %s could not renew its claims (%s); sending stops at %s unless "
                        "a renewal succeeds", self.worker_id, describe(exc).splitlines()[0], held.until - self.margin)
            return
        held.kept = frozenset(kept)
        held.until = now + self.lease
        self.renewals += 1

    # ------------------------------------------------------------------ one channel's share

    def _send_lane(self, name: str, rows: Sequence[Row], held: HeldClaims) -> Counter[str]:
        """Send one channel's claimed rows in order, recording each outcome before the next send."""
        channel = self.channels[name]
        bucket = self._buckets.get(name)
        counts: Counter[str] = Counter()
        started = 0  # rows[:started] were attempted (or given up); the rest is handed back
        release_until: dt.datetime | None = None

        def stopping() -> bool:
            return self._stop.is_set() or held.abandoned or self.clock() >= held.until - self.margin

        try:
            # Each outcome commits by itself before the next send: a crash leaves at most the one in flight.
            with claims.autocommit_connection(self.db) as conn:
                for i, row in enumerate(rows):
                    if stopping():
                        break
                    if bucket is not None:
                        try:
                            granted = bucket.acquire(self._stop)
                        except RateLimitUnavailable as exc:  # never send without the limit
                            release_until = self._pause_channel(name, str(exc),
                                                                cause="its rate limit is unavailable")
                            break
                        if not granted or stopping():
                            break
                    started = i + 1
                    if row["id"] not in held.kept:  # a renewal found it no longer ours: never send it
                        counts["stale"] += 1
                        log.warning("message %s: claim lost before sending (expired or taken over)", row["id"],
                                    extra={"message_id": row["id"]})
                        continue
                    if row["attempts"] > self.max_attempts:
                        # Claimed again and again without an outcome: its worker died or overran mid-send.
                        reason = (f"gave up after {row['attempts'] - 1} attempts without an outcome "
                                  f"(worker stopped mid-send)")
                        applied = claims.mark_failed(conn, row["id"], worker=self.worker_id, error=reason)
                        counts["failed" if applied else "stale"] += 1
                        continue
                    try:
                        if not row["recipient"]:
                            raise PermanentSendError("no recipient")
                        url = self.unsubscribe_url(row) if self.unsubscribe_url else None
                        call_started = time.perf_counter()
                        try:
                            sent = channel.send(outgoing(row, url))
                        finally:
                            metrics.SEND_LATENCY.labels(name).observe(time.perf_counter() - call_started)
                    except Exception as exc:
                        counts[self._record_failure(conn, row, exc)] += 1
                        if self._failing[name] >= self.pause_after:
                            release_until = self._pause_channel(name, describe(exc))
                            break
                        continue
                    self._failing[name] = 0
                    if self._paused.pop(name, None) is not None:
                        metrics.CHANNEL_PAUSED.labels(name).set(0)
                    applied = claims.mark_sent(conn, row["id"], worker=self.worker_id, provider=sent.provider,
                                               provider_message_id=sent.provider_message_id, now=self.clock())
                    counts["sent" if applied else "stale"] += 1
                    if not applied:
                        log.warning("message %s was sent after its claim was taken over", row["id"],
                                    extra={"message_id": row["id"]})
        finally:  # on a connection of its own: the lane's may be what failed
            unsent = [row["id"] for row in rows[started:]]
            released = self._release(unsent, release_until or self.clock()) if unsent else 0
        counts["released"] += released
        counts["stale"] += len(unsent) - released
        metrics.record_sends(name, counts)
        return counts

    def _release(self, message_ids: list[int], due_at: dt.datetime) -> int:
        with self.db.connect() as conn, claims.write_transaction(conn, immediate=False):
            return claims.release_claims(conn, message_ids, worker=self.worker_id, due_at=due_at)

    def _record_failure(self, conn: Any, row: Row, exc: Exception) -> str:
        """Record a failed send at once, as a retry at its backoff or failed for good; the count it goes to."""
        reason = describe(exc)
        transient = not isinstance(exc, PermanentSendError)
        name = row["channel"]
        self._failing[name] = self._failing[name] + 1 if transient else 0
        if decide(exc, row["attempts"], max_attempts=self.max_attempts) == "retry":
            applied = claims.mark_retry(conn, row["id"], worker=self.worker_id,
                                        due_at=next_attempt(row["attempts"], self.clock()), error=reason)
            log.info("message %s: send failed, retried later: %s", row["id"], reason,
                     extra={"message_id": row["id"]})
            return "retried" if applied else "stale"
        if transient:
            reason = f"gave up after {row['attempts']} attempts: {reason}"
        applied = claims.mark_failed(conn, row["id"], worker=self.worker_id, error=reason)
        log.warning("message %s failed: %s", row["id"], reason, extra={"message_id": row["id"]})
        return "failed" if applied else "stale"

    def _pause_channel(self, name: str, reason: str, cause: str | None = None) -> dt.datetime:
        previous = self._paused.get(name)
        length = min(self.max_pause, previous[1] * 2) if previous else self.pause
        until = self.clock() + length
        self._paused[name] = (until, length)
        self._failing[name] = 0
        metrics.CHANNEL_PAUSED.labels(name).set(1)
        log.warning("channel %s paused for %s after %s (last: %s)", name, length,
                    cause or f"{self.pause_after} consecutive transient failures", reason)
        return until
