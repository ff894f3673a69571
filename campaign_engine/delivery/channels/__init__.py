"""Channel implementations, built from settings by `type`: file, smtp, http_sms.

Owns the channel classes and the registry that finds one by the `type` of its setting
(CHANNEL_TYPES); each class reads and validates its own options (`from_options`,
through options.ChannelOptions).

Settings shape (config/campaign_engine.yaml, `channels:`)::

    sms:   {type: http_sms, url: https://sms.example/api/send, timeout: 5,
            auth: {hmac_secret: ..., signature_header: X-Signature, timestamp_header: X-Timestamp},
            fields: {to: mobile, text: content, id: request_id}, response_id_field: message_id,
            provider: bank_sms, success_field: code, success_value: OK, transient_codes: [FLOW_LIMIT]}
    email: {type: smtp, host: smtp.example, port: 587, security: starttls, username: ..., password: ...,
            from_address: marketing@bank.example, from_name: XX银行, timeout: 10, reply_to: ...}
    dev:   {type: file, path: instance/outbox/sms.jsonl}

Unknown types, unknown options and bad values raise ConfigError naming the option
(`channels.<name>.<option>`), all problems of a setting at once. Building a channel
opens no connection: the first send does.

May import: the standard library (smtplib, http.client and ssl are used nowhere else),
`errors`, and `delivery.channel` (the interface the worker defines); `settings` only
for the project root, when a call needs it. Not the store, SQLAlchemy, Flask, Celery,
Redis or the rest of `delivery`: a channel knows nothing of outboxes or workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ...errors import ConfigError, Problem
from ..channel import Channel
from .file import FileChannel
from .http_sms import HttpSmsChannel
from .options import WHAT, ChannelOptions
from .smtp import SmtpChannel

__all__ = ["CHANNEL_TYPES", "FileChannel", "HttpSmsChannel", "SmtpChannel", "build_channel", "build_channels"]


class ChannelType(Protocol):
    """A channel class the registry can build: its settings `type` and a constructor from its options."""

    channel_type: ClassVar[str]

    @classmethod
    def from_options(cls, options: ChannelOptions) -> Channel: ...


#: Channel classes by the `type` of their setting, in the order error messages list them.
CHANNEL_TYPES: Mapping[str, type[ChannelType]] = {
    cls.channel_type: cls for cls in (FileChannel, SmtpChannel, HttpSmsChannel)}


def build_channel(config: Mapping[str, Any], *, name: str | None = None,
                  base_dir: str | Path | None = None) -> Channel:
    """The channel `config["type"]` names, configured by the other keys.

    `name` (e.g. "sms") only locates problems: field "channels.sms.url". Relative file
    paths are relative to `base_dir`, by default the project root (as for other settings).
    """
    prefix = f"channels.{name}" if name else "channels"
    if not isinstance(config, Mapping):
        raise ConfigError([Problem("expected a mapping with a `type` and its options", field=prefix)],
                          what=WHAT)
    kind = config.get("type")
    channel_class = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
    if channel_class is None:
        reason = ("missing channel type" if kind is None else f"unknown channel type {kind!r}")
        raise ConfigError([Problem(f"{reason}; one of: {', '.join(CHANNEL_TYPES)}", field=f"{prefix}.type")],
                          what=WHAT)
    root = Path(base_dir) if base_dir is not None else _project_root()
    return channel_class.from_options(ChannelOptions(config, prefix, root))


def build_channels(channels: Mapping[str, Mapping[str, Any]], *,
                   base_dir: str | Path | None = None) -> dict[str, Channel]:
    """Every channel of the `channels` setting by its name; all problems reported together."""
    built: dict[str, Channel] = {}
    problems: list[Problem] = []
    for name, config in channels.items():
        try:
            built[name] = build_channel(config, name=name, base_dir=base_dir)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        for channel in built.values():
            channel.close()
        raise ConfigError(problems, what=WHAT)
    return built


def _project_root() -> Path:
    from ...settings import PROJECT_ROOT

    return PROJECT_ROOT
