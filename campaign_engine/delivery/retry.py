"""Retry policy: when to try a failed send again, and when to give up. Pure: no I/O, no clock.

Transient failures (5xx, timeouts, connection refused, SMTP 4xx) are retried with
exponential backoff and jitter until MAX_ATTEMPTS; permanent ones (invalid number,
SMTP 5xx) fail at once. Anything a channel raises that is not a PermanentSendError
counts as transient: a channel bug or an unexpected OSError then backs off and
ends in `failed` with its reason, instead of failing a whole campaign at once.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Literal

from .channel import PermanentSendError, SendError

#: Attempts (claims to send) before a transiently failing message is failed for good.
MAX_ATTEMPTS = 6
BASE_DELAY = dt.timedelta(seconds=30)
FACTOR = 2.0
MAX_DELAY = dt.timedelta(hours=1)
#: Share of each delay that is random, so messages failed together do not come back together.
SPREAD = 0.5

Verdict = Literal["retry", "fail"]


def backoff(attempts: int, *, base: dt.timedelta = BASE_DELAY, factor: float = FACTOR,
            cap: dt.timedelta = MAX_DELAY, spread: float = SPREAD,
            jitter: float | None = None) -> dt.timedelta:
    """Delay after the `attempts`-th failed attempt: base * factor**(attempts-1), at most cap,
    shortened by up to `spread` of itself.

    `jitter` is the random draw in [0, 1) (None: drawn here); 0 gives the full delay.
    With the defaults: 30 s, 60 s, 2 min, 4 min, 8 min, ... capped at 1 h, each 50-100 %.
    """
    if jitter is None:
        jitter = random.random()
    if not 0 <= jitter <= 1 or not 0 <= spread <= 1:
        raise ValueError("jitter and spread are fractions in [0, 1]")
    exponent = max(attempts, 1) - 1
    try:
        delay = min(cap.total_seconds(), base.total_seconds() * factor ** exponent)
    except OverflowError:
        delay = cap.total_seconds()
    return dt.timedelta(seconds=delay * (1 - spread * jitter))


def next_attempt(attempts: int, now: dt.datetime, *, base: dt.timedelta = BASE_DELAY,
                 factor: float = FACTOR, cap: dt.timedelta = MAX_DELAY, spread: float = SPREAD,
                 jitter: float | None = None) -> dt.datetime:
    """When a message that failed its `attempts`-th attempt at `now` may be tried again."""
    return now + backoff(attempts, base=base, factor=factor, cap=cap, spread=spread, jitter=jitter)


def decide(error: BaseException, attempts: int, *, max_attempts: int = MAX_ATTEMPTS) -> Verdict:
    """Fail a permanent error at once, a transient one once `attempts` reached `max_attempts`; else retry."""
    if isinstance(error, PermanentSendError):
        return "fail"
    return "retry" if attempts < max_attempts else "fail"


def describe(error: BaseException) -> str:
    """The reason stored with the message: the channel's own words, or the exception's type and text."""
    if isinstance(error, SendError):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
