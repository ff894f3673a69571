"""Progress of long commands (demo-data, import, run, event, resume, send --once) on stderr.

On a terminal: a tqdm bar with the rate and the time left. Otherwise (a pipe, a log file, cron):
one plain line each time another tenth of the work is done (or every 30 s when the total is not
known), and one at the end, so a log shows that a long job moves and how fast (a job over within a
second prints none). `--quiet` silences
both. Standard output is never touched: `--json` output stays a single JSON document.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

UNKNOWN_TOTAL_EVERY = 30.0  # seconds between lines when the total is not known
# Without a terminal, work that is over within this many seconds prints nothing: a log needs no
# progress of a quick job (CAMPAIGN_ENGINE_PROGRESS_AFTER overrides it, e.g. 0 for every line).
QUIET_FOR = float(os.environ.get("CAMPAIGN_ENGINE_PROGRESS_AFTER", "1"))


class Progress:
    def __init__(self, label: str, total: int | None = None, *, unit: str = "rows", quiet: bool = False,
                 stream: IO[str] | None = None, tty: bool | None = None, started: float | None = None) -> None:
        """`started`: when the work began (time.monotonic()), if before this object was made."""
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.done = 0
        self.started = started if started is not None else time.monotonic()
        self._next_tenth = 1  # the next line is due at this many tenths of the total (integers: no drift)
        self._last_line = self.started
        self._bar: Any = None
        self._closed = False
        is_tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        if not quiet and is_tty:
            from tqdm import tqdm

            try:  # a terminal that reports no width (some pseudo-terminals): draw 100 columns wide
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0
            except (OSError, ValueError, AttributeError):
                sized = False
            self._bar = tqdm(total=total, desc=label, unit=f" {unit}", unit_scale=True, file=self.stream,
                             dynamic_ncols=sized, ncols=None if sized else 100, leave=True, mininterval=0.2)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        """The work done so far (an absolute count)."""
        if done <= self.done and self.done:
            return
        step, self.done = done - self.done, done
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        if now - self.started < QUIET_FOR:
            return
        if self.total:
            if self.done * 10 >= self._next_tenth * self.total and self.done < self.total:
                self._line(now)
                while self._next_tenth * self.total <= self.done * 10:
                    self._next_tenth += 1
        elif now - self._last_line >= UNKNOWN_TOTAL_EVERY:
            self._line(now)

    def _line(self, now: float) -> None:
        self._last_line = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            text = (f"{self.label}: {self.done / self.total:.0%} ({self.done:,}/{self.total:,} {self.unit}), "
                    f"{rate:,.0f} {self.unit}/s, about {_duration(left)} left")
        else:
            text = f"{self.label}: {self.done:,} {self.unit}, {rate:,.0f} {self.unit}/s"
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if not self.quiet and self.done and elapsed >= QUIET_FOR:
            print(f"{self.label}: done, {self.done:,} {self.unit} in {_duration(elapsed)} "
                  f"({self.done / elapsed:,.0f} {self.unit}/s)", file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
