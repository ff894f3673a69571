"""The file channel: one JSON line per message, for development and demos.

The file is opened on the first send and kept open until `close()`; every line is
flushed as it is written, so a reader (or a crash) never sees half a message.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import ClassVar, Self, TextIO

from ..channel import Outgoing, Sent, TransientSendError
from .options import ChannelOptions

#: One encoder for every line (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class FileChannel:
    """Appends each message as a JSON line to `path` (its folders are created)."""

    channel_type: ClassVar[str] = "file"
    provider = "file"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: ChannelOptions) -> Self:
        """Settings `{type: file, path: instance/outbox/sms.jsonl}`; a relative path is under `options.base_dir`."""
        path = options.path("path")
        options.finish()
        assert path is not None
        return cls(path)

    def __repr__(self) -> str:
        return f"FileChannel({str(self.path)!r})"

    def send(self, message: Outgoing) -> Sent:
        line = _ENCODER.encode({
            "message_id": message.message_id,
            "channel": message.channel,
            "recipient": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
            "idempotency_key": message.idempotency_key,
            "category": message.category,
            "unsubscribe_url": message.unsubscribe_url,
            "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        }) + "\n"
        with self._lock:
            try:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.path, "a", encoding="utf-8", newline="\n")
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                # A full disk or a removed folder: the next send opens the file afresh.
                self._close_file()
                raise TransientSendError(f"cannot write {self.path.name}: {exc.strerror or exc}",
                                         provider=self.provider) from None
        return Sent(self.provider, f"file-{message.message_id}")

    def close(self) -> None:
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
