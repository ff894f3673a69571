"""Channel implementations, built from settings by `type`: file, smtp, http_sms.

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
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError, Problem
from ..channel import Channel
from .file import FileChannel
from .http_sms import DEFAULT_FIELDS, FIELD_NAMES, HeaderAuth, HmacAuth, HttpSmsChannel
from .smtp import SECURITY_MODES, SmtpChannel

__all__ = ["CHANNEL_TYPES", "FileChannel", "HttpSmsChannel", "SmtpChannel", "build_channel", "build_channels"]

_WHAT = "channel settings"


def build_channel(config: Mapping[str, Any], *, name: str | None = None,
                  base_dir: str | Path | None = None) -> Channel:
    """The channel `config["type"]` names, configured by the other keys.

    `name` (e.g. "sms") only locates problems: field "channels.sms.url". Relative file
    paths are relative to `base_dir`, by default the project root (as for other settings).
    """
    prefix = f"channels.{name}" if name else "channels"
    if not isinstance(config, Mapping):
        raise ConfigError([Problem("expected a mapping with a `type` and its options", field=prefix)],
                          what=_WHAT)
    kind = config.get("type")
    builder = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
    if builder is None:
        reason = ("missing channel type" if kind is None else f"unknown channel type {kind!r}")
        raise ConfigError([Problem(f"{reason}; one of: {', '.join(CHANNEL_TYPES)}", field=f"{prefix}.type")],
                          what=_WHAT)
    options = _Options(config, prefix)
    return builder(options, Path(base_dir) if base_dir is not None else _project_root())


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
        raise ConfigError(problems, what=_WHAT)
    return built


def _project_root() -> Path:
    from ...settings import PROJECT_ROOT

    return PROJECT_ROOT


class _Options:
    """Reads one channel's options, collecting problems instead of stopping at the first."""

    def __init__(self, config: Mapping[str, Any], prefix: str):
        self.config = config
        self.prefix = prefix
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
        for key in self.config:
            if key not in self.read:
                self.problem(str(key), "unknown option")
        if self.problems:
            raise ConfigError(self.problems, what=_WHAT)


def _build_file(options: _Options, base_dir: Path) -> FileChannel:
    path = options.text("path", required=True)
    options.finish()
    assert path is not None
    resolved = Path(path).expanduser()
    return FileChannel(resolved if resolved.is_absolute() else base_dir / resolved)


def _build_smtp(options: _Options, base_dir: Path) -> SmtpChannel:
    host = options.text("host", required=True)
    port = options.port("port")
    security = options.text("security", default="starttls", choices=SECURITY_MODES)
    username = options.text("username")
    password = options.get("password")
    if password is not None and not isinstance(password, str):
        options.problem("password", "must be a string")
    if bool(username) != bool(password):
        options.problem("password" if username else "username", "username and password go together")
    from_address = options.text("from_address", required=True)
    from_name = options.text("from_name")
    reply_to = options.text("reply_to")
    for key, address in (("from_address", from_address), ("reply_to", reply_to)):
        if address is not None and not _is_ascii_address(address):
            options.problem(key, "must be an email address (ASCII)")
    timeout = options.number("timeout", default=10.0)
    local_hostname = options.text("local_hostname")
    context = options.ssl_context()
    if security == "none" and context is not None:
        options.problem("ca_file", "only used with security starttls or ssl")
    options.finish()
    assert host is not None and from_address is not None and security is not None
    return SmtpChannel(host=host, port=port, security=security, username=username,
                       password=password if username else None, from_address=from_address,
                       from_name=from_name, reply_to=reply_to, timeout=timeout,
                       local_hostname=local_hostname, ssl_context=context)


def _build_http_sms(options: _Options, base_dir: Path) -> HttpSmsChannel:
    url = options.text("url", required=True)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            options.problem("url", "must be an http:// or https:// URL with a host")
        else:
            try:
                _ = parts.port
            except ValueError:
                options.problem("url", "has a bad port")
    timeout = options.number("timeout", default=5.0)
    auth = _http_auth(options)
    fields = options.mapping("fields")
    if fields is not None:
        for key, value in fields.items():
            if key not in FIELD_NAMES:
                options.problem(f"fields.{key}", f"unknown field; one of: {', '.join(FIELD_NAMES)}")
            elif not isinstance(value, str) or not value:
                options.problem(f"fields.{key}", "must be the provider's field name")
        merged = {**DEFAULT_FIELDS, **{k: v for k, v in fields.items() if isinstance(v, str)}}
        if len(set(merged.values())) != len(merged):
            options.problem("fields", "two of our fields map to the same provider field")
    response_id_field = options.text("response_id_field", default="message_id")
    provider = options.text("provider", default="http_sms")
    success_field = options.text("success_field")
    success_value = options.get("success_value")
    if success_field and success_value is None:
        options.problem("success_value", "required with success_field")
    if success_value is not None and not success_field:
        options.problem("success_field", "required with success_value")
    transient_codes = _list(options, "transient_codes", (str, int), "provider codes")
    transient_statuses = _list(options, "transient_statuses", (int,), "HTTP statuses")
    if any(not 400 <= status < 600 for status in transient_statuses):
        options.problem("transient_statuses", "HTTP statuses 400-599 only")
    headers = _string_mapping(options, "headers")
    extra_fields = options.mapping("extra_fields")
    context = options.ssl_context()
    options.finish()
    assert url is not None and response_id_field is not None and provider is not None
    return HttpSmsChannel(url=url, timeout=timeout, auth=auth, fields=fields, response_id_field=response_id_field,
                          provider=provider, success_field=success_field, success_value=success_value,
                          transient_codes=transient_codes, transient_statuses=transient_statuses,
                          headers=headers, extra_fields=extra_fields, ssl_context=context)


def _http_auth(options: _Options) -> HeaderAuth | HmacAuth | None:
    auth = options.mapping("auth")
    if auth is None:
        return None
    if "hmac_secret" in auth:
        required, optional = {"hmac_secret"}, {"signature_header", "timestamp_header"}
    elif "header" in auth or "value" in auth:
        required, optional = {"header", "value"}, set()
    else:
        options.problem("auth", "either {header: ..., value: ...} or {hmac_secret: ..., signature_header: ..., "
                                "timestamp_header: ...}")
        return None
    problems = len(options.problems)
    for key in sorted(required - set(auth)):
        options.problem(f"auth.{key}", "missing")
    for key, value in auth.items():
        if key not in required | optional:
            options.problem(f"auth.{key}", "unknown option")
        elif not isinstance(value, str) or not value:
            options.problem(f"auth.{key}", "must be a non-empty string")
        elif key in ("header", "signature_header", "timestamp_header") and not _HEADER_NAME.match(value):
            options.problem(f"auth.{key}", "must be an HTTP header name")
        elif key == "value" and not _header_value_ok(value):
            options.problem(f"auth.{key}", "must be one line of Latin-1 text")
    if len(options.problems) > problems:
        return None
    if "hmac_secret" in auth:
        return HmacAuth(auth["hmac_secret"], auth.get("signature_header", "X-Signature"),
                        auth.get("timestamp_header", "X-Timestamp"))
    return HeaderAuth(auth["header"], auth["value"])


def _list(options: _Options, key: str, types: tuple[type, ...], what: str) -> list[Any]:
    value = options.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or any(
            isinstance(item, bool) or not isinstance(item, types) for item in value):
        options.problem(key, f"must be a list of {what}")
        return []
    return list(value)


def _string_mapping(options: _Options, key: str) -> dict[str, str]:
    value = options.mapping(key)
    if value is None:
        return {}
    if not all(isinstance(k, str) and _HEADER_NAME.match(k) and isinstance(v, str) and _header_value_ok(v)
               for k, v in value.items()):
        options.problem(key, "must map HTTP header names to one-line Latin-1 strings")
        return {}
    return dict(value)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _header_value_ok(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return "\r" not in value and "\n" not in value


def _is_ascii_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain) and address.isascii() and not any(
        c in address for c in " \t\r\n<>,;\"")


CHANNEL_TYPES: Mapping[str, Callable[[_Options, Path], Channel]] = {
    "file": _build_file,
    "smtp": _build_smtp,
    "http_sms": _build_http_sms,
}
