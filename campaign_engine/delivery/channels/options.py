"""One channel's options as read from settings, problems collected instead of stopping at the first.

Each channel class reads its own options through a ChannelOptions (`from_options`);
`finish()` then reports every unknown option and bad value of that channel at once,
as one ConfigError whose problems name the option (`channels.<name>.<option>`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigError, Problem

#: What a ConfigError about channels says it is about.
WHAT = "channel settings"


class ChannelOptions:
    """The options of one channel (`config` without its `type`); `prefix` locates problems, e.g. "channels.sms".

    Relative file paths are relative to `base_dir`.
    """

    def __init__(self, config: Mapping[str, Any], prefix: str, base_dir: Path):
        self.config = config
        self.prefix = prefix
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.read = {"type"}

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(Problem(reason, field=f"{self.prefix}.{key}"))

    def get(self, key: str) -> Any:
        self.read.add(key)
        return self.config.get(key)

    def text(self, key: str, *, required: bool = False, default: str | None = None,
             choices: tuple[str, ...] | None = None) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                self.problem(key, "missing")
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "must be a non-empty string")
            return default
        if choices and value not in choices:
            self.problem(key, f"must be one of: {', '.join(choices)}")
            return default
        return value

    def number(self, key: str, *, default: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
            self.problem(key, "must be a number of seconds above 0 (600 at most)")
            return default
        return float(value)

    def port(self, key: str) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            self.problem(key, "must be a port number (1-65535)")
            return None
        return value

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(key, "must be a mapping")
            return None
        return value

    def path(self, key: str) -> Path | None:
        """A required file path, `~` expanded, relative ones under `base_dir`."""
        value = self.text(key, required=True)
        if value is None:
            return None
        resolved = Path(value).expanduser()
        return resolved if resolved.is_absolute() else self.base_dir / resolved

    def ssl_context(self, key: str = "ca_file") -> ssl.SSLContext | None:
        """A verifying TLS context; trusting `ca_file` (a bank's own CA) besides the system's when given."""
        ca_file = self.text(key)
        if ca_file is None:
            return None
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            self.problem(key, f"cannot load CA file: {getattr(exc, 'strerror', None) or exc}")
            return None

    def finish(self) -> None:
        """Raise ConfigError with every problem found, unknown options included."""
        for key in self.config:
            if key not in self.read:
                self.problem(str(key), "unknown option")
        if self.problems:
            raise ConfigError(self.problems, what=WHAT)
