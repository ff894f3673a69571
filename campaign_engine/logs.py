"""Log lines as operators collect them: plain text for a terminal, or one JSON object per line
(`--log-format json`, the `log_format` setting) carrying the ids of the run, shard, rule and
message the line is about, so a log platform can follow one run or one message across processes.

The ids come from `bound(...)` (a context variable: the run and shard a worker is executing, the
rule being evaluated) and from a record's `extra` (`log.warning(..., extra={"message_id": 7})`).
Contact data stays masked: every JSON line's text passes the same mobile/e-mail masks the API uses,
as a last guard behind callers that already mask.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import Any, Iterator

from .masking import mask_email, mask_mobile

IDS = ("run_id", "shard", "rule_id", "message_id", "task_id", "draft_id")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("campaign_log_context", default={})
# A mainland mobile number (11 digits from 1[3-9], optionally +86) or an e-mail address anywhere in a text.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@contextlib.contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Every log line inside carries these ids (nested bindings add to the outer ones)."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def scrub(text: str) -> str:
    """Mask any full mobile number or e-mail address left in a text."""
    text = _MOBILE.sub(lambda m: mask_mobile(m.group(0)), text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the bound ids, and
    the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": scrub(record.getMessage()),
        }
        entry.update(_context.get())
        for key in IDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The terminal's lines, masked the same way."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return scrub(super().formatMessage(record))


def configure(fmt: str = "text", level: int = logging.WARNING, stream: Any = None) -> None:
    """Route the root logger to stderr (or `stream`) in `fmt`, replacing the one this function set
    before. Plain text, like `logging.basicConfig`, leaves a logger that someone else has already
    given handlers (a host application, a test runner) as it is; JSON, asked for, always applies."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    if fmt == "text" and stream is None and any(not getattr(h, "_campaign_engine", False) for h in root.handlers):
        ours = [h for h in root.handlers if getattr(h, "_campaign_engine", False)]
        for old in ours:
            root.removeHandler(old)
        if ours:
            root.setLevel(level)
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for old in list(root.handlers):
        if getattr(old, "_campaign_engine", False):
            root.removeHandler(old)
    handler._campaign_engine = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def configured() -> bool:
    return any(getattr(h, "_campaign_engine", False) for h in logging.getLogger().handlers)
