"""Per-channel send rates: a token bucket in this process, or one in Redis shared by every worker.

Both kinds have the same interface (`RateLimit`): `acquire(stop)` takes one token,
waiting for it, and returns False when `stop` was set while it waited.

`TokenBucket` limits one worker process: N workers send N times the rate.

`RedisTokenBucket` keeps the bucket in one Redis hash per channel
(`campaign-engine:rate:<channel>`: `tokens`, `ts` in server microseconds) and takes a
token with one atomic Lua script (one EVALSHA per attempt). The script reads the
Redis server's clock (TIME), so the workers' clocks do not matter, and it sets a TTL
on the key long enough for the bucket to refill completely (an expired key starts
full again, which is what it would have been). All workers must use the same rate
and burst for a channel; each attempt refills at the rate it passes.

When Redis cannot be reached (or refuses the script), `acquire` logs an error and
raises `RateLimitUnavailable`; it never sends without the shared limit and never
falls back to a local bucket (a local bucket in each of N workers would allow N
times the rate, and the worker does not know N). The delivery worker pauses that
channel as after repeated transient failures (its claims handed back, due again when
the pause ends, the pause doubling while Redis stays down), so an outage of Redis
stops rate-limited sending instead of letting it go faster than configured.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

KEY_PREFIX = "campaign-engine:rate:"
#: Keys live at least this long after their last use (longer when a full refill takes longer).
MIN_TTL_MS = 60_000

# KEYS[1]: the bucket; ARGV: rate (tokens/s), burst, ttl (ms). Returns 0 (token taken) or the
# whole milliseconds until a token is due (nothing taken).
_ACQUIRE = """
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return wait
"""


class RateLimit(Protocol):
    def acquire(self, stop: threading.Event | None = None) -> bool: ...


class RateLimitUnavailable(RuntimeError):
    """The shared rate limit could not be consulted; nothing may be sent on its channel for now."""


def _check(rate: float, burst: float) -> tuple[float, float]:
    if rate <= 0:
        raise ValueError("rate must be above 0 (leave the channel out for no limit)")
    return float(rate), max(float(burst), 1.0)


class TokenBucket:
    """At most `rate` acquisitions per second, bursts of at most `burst` (1: evenly spaced sends).

    In this process only: each worker process has its own.
    """

    def __init__(self, rate: float, burst: float = 1.0, *, monotonic: Callable[[], float] = time.monotonic):
        self.rate, self.burst = _check(rate, burst)
        self._monotonic = monotonic
        self._tokens = self.burst
        self._updated = monotonic()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Take one token, waiting for it; False when `stop` was set while waiting."""
        while True:
            with self._lock:
                now = self._monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                delay = (1 - self._tokens) / self.rate
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                return False


class RedisTokenBucket:
    """TokenBucket's limit kept in Redis under `key`, shared by every process using that key.

    Raises RateLimitUnavailable when Redis fails (see the module docstring); the
    client's own retries (a few, within about a second, see `redis_client`) come first.
    """

    def __init__(self, rate: float, burst: float = 1.0, *, client: redis.Redis, key: str):
        self.rate, self.burst = _check(rate, burst)
        if not (math.isfinite(self.rate) and math.isfinite(self.burst)):
            raise ValueError("rate and burst must be finite")
        self.key = key
        self.client = client
        self.ttl_ms = max(MIN_TTL_MS, math.ceil(2000 * self.burst / self.rate))
        self._script = client.register_script(_ACQUIRE)  # EVALSHA, loading the script when Redis lacks it

    def try_acquire(self) -> int:
        """One attempt: 0 when a token was taken, else the milliseconds until one is due."""
        import redis

        try:
            return int(self._script(keys=[self.key], args=[repr(self.rate), repr(self.burst), self.ttl_ms]))
        except redis.RedisError as exc:
            where = describe_client(self.client)
            log.error("rate limit %s unavailable (Redis at %s: %s: %s); not sending on this channel until "
                      "it answers", self.key, where, type(exc).__name__, exc)
            raise RateLimitUnavailable(f"rate limit {self.key} unavailable: Redis at {where}: "
                                       f"{type(exc).__name__}: {exc}") from exc

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Take one token, waiting for it; False when `stop` was set while waiting.

        Raises RateLimitUnavailable when Redis fails.
        """
        while True:
            if stop is not None and stop.is_set():
                return False
            wait_ms = self.try_acquire()
            if wait_ms <= 0:
                return True
            if stop is None:
                time.sleep(wait_ms / 1000)
            elif stop.wait(wait_ms / 1000):
                return False


def describe_client(client: redis.Redis) -> str:
    """host:port/db of a client, without its credentials."""
    kw = client.connection_pool.connection_kwargs
    where = kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"
    return f"{where}/{kw.get('db', 0)}"


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client(url: str) -> redis.Redis:
    """One client (a thread-safe connection pool) per URL in this process.

    Short timeouts and two quick retries: an unreachable Redis is reported within
    about a second (a few seconds when it accepts connections but does not answer),
    well inside a delivery worker's lease margin.
    """
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis
            from redis.backoff import ExponentialWithJitterBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                          retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
                                          health_check_interval=30)
            _clients[url] = client
        return client


def make_bucket(rate: float, redis_url: str | None = None, *, channel: str = "default", burst: float = 1.0,
                key_prefix: str = KEY_PREFIX) -> RateLimit:
    """A RedisTokenBucket for `channel` when `redis_url` is given (shared by every worker), else a TokenBucket.

    Connects lazily: a wrong URL scheme fails here, an unreachable server on the first acquire.
    """
    if not redis_url:
        return TokenBucket(rate, burst)
    return RedisTokenBucket(rate, burst, client=redis_client(redis_url), key=key_prefix + channel)


def local_bucket(channel: str, rate: float) -> RateLimit:
    """The delivery worker's default bucket_factory: a TokenBucket in this process."""
    return TokenBucket(rate)
