"""The HTTP SMS channel: a bank's SMS platform behind a JSON-over-HTTP API, vendor-neutral.

One POST per message on one kept-alive connection per channel object. The request body
holds the recipient, the text and our idempotency key (field names configurable); the
key also goes in an `Idempotency-Key` header, so a gateway that de-duplicates makes
every retry safe.

How answers are classified (first match wins):

====================================================  ==========
answer                                                 error
====================================================  ==========
timeout, connection refused/reset, TLS or HTTP         transient
protocol failure (a kept-alive connection found
closed is re-opened once first)
non-2xx whose provider code is in `transient_codes`    transient
408, 429, 5xx, or a status in `transient_statuses`     transient
any other non-2xx (400 invalid number, 401, 403...)    permanent
2xx whose body is not a JSON object                    transient
2xx whose `success_field` is missing                   transient
2xx, `success_field` != `success_value`, the code     transient
in `transient_codes` (e.g. flow control)
2xx, `success_field` != `success_value`, other code    permanent
2xx without `response_id_field` (missing/empty)        transient
2xx with the id                                        Sent
====================================================  ==========

A 2xx answer we cannot read may still mean "accepted": it is transient because the
retry carries the same idempotency key and the gateway answers it without sending
twice. An error code inside a 200 is the provider refusing this message; it is
permanent unless the code is known to be temporary (`transient_codes`, e.g. flow
control). Reasons hold the status, the provider code and at most 200 characters of
the body, with the recipient's number masked.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from ..channel import Outgoing, PermanentSendError, SendError, Sent, TransientSendError
from .options import ChannelOptions

#: Our names for the request fields -> the provider's JSON names.
DEFAULT_FIELDS: Mapping[str, str] = {"to": "mobile", "text": "content", "id": "request_id"}
#: Names that may be mapped; "category" ("service" | "marketing") is sent only when mapped.
FIELD_NAMES = ("to", "text", "id", "category")
TRANSIENT_STATUSES = frozenset({408, 429})
_MAX_BODY = 64 * 1024
_REASON_CHARS = 200
_MISSING = object()


@dataclass(frozen=True)
class HeaderAuth:
    """A fixed credential header, e.g. `Authorization: Bearer ...`."""

    header: str
    value: str = field(repr=False)

    def headers(self, body: bytes) -> dict[str, str]:
        return {self.header: self.value}


@dataclass(frozen=True)
class HmacAuth:
    """HMAC-SHA256 (hex) of f"{timestamp}.{raw body}", with the Unix timestamp in its own header."""

    secret: str = field(repr=False)
    signature_header: str = "X-Signature"
    timestamp_header: str = "X-Timestamp"

    def headers(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {self.timestamp_header: timestamp,
                self.signature_header: sign(self.secret, timestamp, body)}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The request signature HmacAuth sends (gateways and tests compute the same)."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


class HttpSmsChannel:
    """Sends SMS messages to an HTTP gateway (http.client, keep-alive)."""

    channel_type: ClassVar[str] = "http_sms"

    def __init__(self, *, url: str, timeout: float = 5.0, auth: HeaderAuth | HmacAuth | None = None,
                 fields: Mapping[str, str] | None = None, response_id_field: str = "message_id",
                 provider: str = "http_sms", success_field: str | None = None, success_value: Any = None,
                 transient_codes: Iterable[Any] = (), transient_statuses: Iterable[int] = (),
                 headers: Mapping[str, str] | None = None, extra_fields: Mapping[str, Any] | None = None,
                 ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        unknown = set(fields or {}) - set(FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown field name(s): {', '.join(sorted(unknown))}")
        self.url = url
        self.provider = provider
        self.timeout = timeout
        self.auth = auth
        self.fields = {**DEFAULT_FIELDS, **(fields or {})}
        self.response_id_field = response_id_field
        self.success_field = success_field
        self.success_value = success_value
        self.transient_codes = frozenset(str(code) for code in transient_codes)
        self.transient_statuses = TRANSIENT_STATUSES | frozenset(transient_statuses)
        self.headers = dict(headers or {})
        self.extra_fields = dict(extra_fields or {})
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpSmsChannel({self.provider!r}, {self._host}:{self._port or ''}{self._target})"

    @classmethod
    def from_options(cls, options: ChannelOptions) -> Self:
        """Settings `{type: http_sms, url: ..., timeout: 5, auth: {...}, fields: {...}, response_id_field: ...,
        provider: ..., success_field: ..., success_value: ..., transient_codes: [...], transient_statuses: [...],
        headers: {...}, extra_fields: {...}, ca_file: ...}` (see the channels package)."""
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
        auth = _auth_from_options(options)
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
        transient_codes = _list_option(options, "transient_codes", (str, int), "provider codes")
        transient_statuses = _list_option(options, "transient_statuses", (int,), "HTTP statuses")
        if any(not 400 <= status < 600 for status in transient_statuses):
            options.problem("transient_statuses", "HTTP statuses 400-599 only")
        headers = _headers_option(options, "headers")
        extra_fields = options.mapping("extra_fields")
        context = options.ssl_context()
        options.finish()
        assert url is not None and response_id_field is not None and provider is not None
        return cls(url=url, timeout=timeout, auth=auth, fields=fields, response_id_field=response_id_field,
                   provider=provider, success_field=success_field, success_value=success_value,
                   transient_codes=transient_codes, transient_statuses=transient_statuses,
                   headers=headers, extra_fields=extra_fields, ssl_context=context)

    def send(self, message: Outgoing) -> Sent:
        key = message.idempotency_key or f"ce-message-{message.message_id}"
        if not key.isascii():  # header values are Latin-1; keep the key header-safe
            key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        payload = dict(self.extra_fields)
        payload[self.fields["to"]] = message.recipient
        payload[self.fields["text"]] = message.body
        payload[self.fields["id"]] = key
        if "category" in self.fields:
            payload[self.fields["category"]] = message.category
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
                   "User-Agent": "campaign-engine", **self.headers, "Idempotency-Key": key}
        if self.auth is not None:
            headers.update(self.auth.headers(body))
        with self._lock:
            status, retry_after, data = self._post(body, headers)
        return self._interpret(status, retry_after, data, message.recipient)

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- the exchange --------------------------------------------------------------

    def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str | None, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request("POST", self._target, body=body, headers=dict(headers))
                response = conn.getresponse()
                data = response.read(_MAX_BODY + 1)
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
                # Includes http.client.RemoteDisconnected: most often the gateway closed an idle
                # kept-alive connection. Resending is safe: the idempotency key travels with it.
                self._drop()
                if reused and attempt == 1:
                    continue
                raise TransientSendError(_network_reason(exc, self.timeout), provider=self.provider) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise TransientSendError(_network_reason(exc, self.timeout), provider=self.provider) from None
            if len(data) > _MAX_BODY or not response.isclosed():
                self._drop()  # an answer too long to read whole: the connection cannot be reused
            return response.status, response.getheader("Retry-After"), data[:_MAX_BODY]
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout,
                    context=self._ssl_context or ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # --- the answer ----------------------------------------------------------------

    def _interpret(self, status: int, retry_after: str | None, data: bytes, recipient: str) -> Sent:
        doc = _json_object(data)
        code = _scalar(_lookup(doc, self.success_field or "code")) if doc is not None else None
        if not 200 <= status < 300:
            reason = f"HTTP {status}" + (f", code {code}" if code is not None else "")
            if retry_after and retry_after.strip().isdigit():
                reason += f", retry after {retry_after.strip()} s"
            reason += _excerpt(data, recipient)
            if (code is not None and code in self.transient_codes) or status >= 500 \
                    or status in self.transient_statuses:
                raise TransientSendError(reason, provider=self.provider)
            raise PermanentSendError(reason, provider=self.provider)
        if doc is None:
            raise self._unreadable(f"HTTP {status} with a body that is not a JSON object", data, recipient)
        if self.success_field:
            value = _lookup(doc, self.success_field)
            if value is _MISSING:
                raise self._unreadable(f"HTTP {status} without {self.success_field!r}", data, recipient)
            if not _same(value, self.success_value):
                reason = f"HTTP {status}, code {_scalar(value)}{_excerpt(data, recipient)}"
                if _scalar(value) in self.transient_codes:
                    raise TransientSendError(reason, provider=self.provider)
                raise PermanentSendError(reason, provider=self.provider)
        provider_id = _lookup(doc, self.response_id_field)
        if provider_id is _MISSING or provider_id is None or provider_id == "" \
                or isinstance(provider_id, (dict, list, bool)):
            raise self._unreadable(f"HTTP {status} without {self.response_id_field!r}", data, recipient)
        return Sent(self.provider, str(provider_id))

    def _unreadable(self, what: str, data: bytes, recipient: str) -> SendError:
        # The gateway may have accepted the message: a retry with the same idempotency key is safe.
        return TransientSendError(what + _excerpt(data, recipient), provider=self.provider)


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _lookup(doc: Any, path: str) -> Any:
    """A value by a dotted path ("data.msgid"), or _MISSING."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _scalar(value: Any) -> str | None:
    if value is _MISSING or value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _same(value: Any, expected: Any) -> bool:
    return value == expected or str(value) == str(expected)


def mask_number(number: str) -> str:
    """138****8000: enough to tell numbers apart in logs, not enough to call them."""
    return number[:3] + "****" + number[-4:] if len(number) >= 8 else "***"


def _excerpt(data: bytes, recipient: str) -> str:
    text = " ".join(data[:_REASON_CHARS * 4].decode("utf-8", "replace").split())
    if recipient:
        text = text.replace(recipient, mask_number(recipient))
    if not text:
        return ""
    return ": " + (text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS] + "...")


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed by the gateway without an answer"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection failed: {exc.strerror}"
    text = " ".join(str(exc).split())[:_REASON_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- reading the options (from_options) ------------------------------------------


def _auth_from_options(options: ChannelOptions) -> HeaderAuth | HmacAuth | None:
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


def _list_option(options: ChannelOptions, key: str, types: tuple[type, ...], what: str) -> list[Any]:
    value = options.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or any(
            isinstance(item, bool) or not isinstance(item, types) for item in value):
        options.problem(key, f"must be a list of {what}")
        return []
    return list(value)


def _headers_option(options: ChannelOptions, key: str) -> dict[str, str]:
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
