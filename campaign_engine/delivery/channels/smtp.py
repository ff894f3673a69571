"""The SMTP channel: email through the bank's mail relay, one reused connection per channel.

Errors: any failure to connect, greet, start TLS or log in, a timeout, a dropped
connection and every 4xx reply are transient; a 5xx reply to MAIL, RCPT or DATA is
permanent (the server will answer the same again). A connection found dropped before
DATA is re-opened once and the message sent on it (nothing was accepted yet); a drop
after DATA has started is transient, and the retry carries the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import smtplib
import ssl
import threading
import uuid
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar, Self

from ..channel import Outgoing, PermanentSendError, SendError, Sent, TransientSendError
from .options import ChannelOptions

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}

#: Headers RFC 2047-encoded, bodies 7-bit clean (quoted-printable or base64): any relay takes it.
_POLICY = email_policy.SMTP.clone(cte_type="7bit")
#: For recipients whose address itself is not ASCII (RFC 6531; the server must offer SMTPUTF8).
_POLICY_UTF8 = email_policy.SMTPUTF8.clone(cte_type="7bit")
_REASON_CHARS = 200


class _Rejected(Exception):
    """The server answered a command with an error code."""

    def __init__(self, stage: str, code: int, reply: bytes | str):
        self.stage = stage
        self.code = code
        self.reply = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class SmtpChannel:
    """Sends `Outgoing` email messages over SMTP (smtplib)."""

    channel_type: ClassVar[str] = "smtp"
    provider = "smtp"

    def __init__(self, *, host: str, from_address: str, port: int | None = None,
                 security: str = "starttls", username: str | None = None, password: str | None = None,
                 from_name: str | None = None, reply_to: str | None = None, timeout: float = 10.0,
                 local_hostname: str | None = None, ssl_context: ssl.SSLContext | None = None):
        if security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        self._password = password
        self.from_address = from_address
        self.from_name = from_name
        self.reply_to = reply_to
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._ssl_context = ssl_context
        Address(addr_spec=from_address)  # ValueError (or a parse error) when it is not an address
        if reply_to:
            Address(addr_spec=reply_to)
        domain = from_address.rpartition("@")[2].lower()
        self._id_domain = domain if domain.isascii() and domain else "campaign-engine.invalid"
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SmtpChannel({self.host}:{self.port}, security={self.security})"

    @classmethod
    def from_options(cls, options: ChannelOptions) -> Self:
        """Settings `{type: smtp, host: ..., port: 587, security: starttls, username: ..., password: ...,
        from_address: ..., from_name: ..., reply_to: ..., timeout: 10, local_hostname: ..., ca_file: ...}`."""
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
        return cls(host=host, port=port, security=security, username=username,
                   password=password if username else None, from_address=from_address,
                   from_name=from_name, reply_to=reply_to, timeout=timeout,
                   local_hostname=local_hostname, ssl_context=context)

    # --- sending -------------------------------------------------------------------

    def send(self, message: Outgoing) -> Sent:
        recipient = message.recipient.strip()
        if not _looks_like_address(recipient):
            raise PermanentSendError("invalid email address", provider=self.provider)
        message_id = self._message_id(message)
        utf8 = not (recipient.isascii() and self.from_address.isascii())
        try:
            data = self._build(message, recipient, message_id).as_bytes(
                policy=_POLICY_UTF8 if utf8 else _POLICY)
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header value
            raise PermanentSendError(f"cannot build the message: {_short(str(exc))}",
                                     provider=self.provider) from None
        with self._lock:
            self._send_locked(recipient, data, utf8)
        return Sent(self.provider, message_id)

    def close(self) -> None:
        with self._lock:
            self._drop(polite=True)

    def _send_locked(self, recipient: str, data: bytes, utf8: bool) -> None:
        reused = self._smtp is not None
        try:
            try:
                self._transaction(self._connection(), recipient, data, utf8)
            except _Stale:
                # The server closed an idle connection; nothing of this message was sent.
                if not reused:
                    raise
                self._drop()
                self._transaction(self._connection(), recipient, data, utf8)
        except _Stale as exc:
            self._drop()
            raise TransientSendError(exc.reason, provider=self.provider) from None
        except _Rejected as exc:
            self._after_rejection(exc.code)
            raise self._rejection_error(exc) from None
        except SendError:
            raise
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TransientSendError(f"connection lost: {_short(str(exc)) or 'closed by the server'}",
                                     provider=self.provider) from None
        except smtplib.SMTPNotSupportedError as exc:
            self._drop()
            raise PermanentSendError(f"not supported by the server: {_short(str(exc))}",
                                     provider=self.provider) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientSendError(_network_reason(exc, self.timeout), provider=self.provider) from None

    def _transaction(self, smtp: smtplib.SMTP, recipient: str, data: bytes, utf8: bool) -> None:
        """MAIL, RCPT, DATA; raises _Stale when the connection was found closed before DATA."""
        options: list[str] = []
        if utf8:
            if not smtp.has_extn("smtputf8"):
                raise PermanentSendError("the address is not ASCII and the server does not offer SMTPUTF8",
                                         provider=self.provider)
            options.append("SMTPUTF8")
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
        try:
            code, reply = smtp.mail(self.from_address, options)
        except smtplib.SMTPServerDisconnected:
            raise _Stale() from None
        if code == 421:  # "closing the channel", often an idle timeout
            raise _Stale(f"sender refused: 421 {_mask_reply(_text(reply))}")
        if code != 250:
            raise _Rejected("sender refused", code, reply)
        try:
            code, reply = smtp.rcpt(recipient)
        except smtplib.SMTPServerDisconnected:
            raise _Stale() from None
        if code not in (250, 251):
            raise _Rejected("recipient refused", code, reply)
        try:
            code, reply = smtp.data(data)  # raises for the reply to DATA, returns the final one
        except smtplib.SMTPDataError as exc:
            raise _Rejected("message refused", exc.smtp_code, exc.smtp_error) from None
        if code != 250:
            raise _Rejected("message refused", code, reply)

    def _rejection_error(self, exc: _Rejected) -> SendError:
        reason = f"{exc.stage}: {exc.code} {_mask_reply(exc.reply)}".rstrip()
        if 500 <= exc.code < 600:
            return PermanentSendError(reason, provider=self.provider)
        return TransientSendError(reason, provider=self.provider)

    def _after_rejection(self, code: int) -> None:
        """Leave the connection ready for the next message, or drop it."""
        if code == 421 or self._smtp is None:
            self._drop()
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    # --- the connection ------------------------------------------------------------

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout,
                    context=self._ssl_context or ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:  # the greeting was not 220
            raise TransientSendError(f"server refused the connection: {exc.smtp_code} "
                                     f"{_short(_text(exc.smtp_error))}", provider=self.provider) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(_network_reason(exc, self.timeout), provider=self.provider) from None
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
        except smtplib.SMTPNotSupportedError:
            smtp.close()
            raise TransientSendError("the server does not offer STARTTLS", provider=self.provider) from None
        except smtplib.SMTPResponseException as exc:
            smtp.close()
            stage = "login refused" if isinstance(exc, smtplib.SMTPAuthenticationError) else "greeting failed"
            # A wrong password or a relay turning us away is the same for every message:
            # transient, so the messages wait for the settings to be fixed instead of failing.
            raise TransientSendError(f"{stage}: {exc.smtp_code} {_short(_text(exc.smtp_error))}",
                                     provider=self.provider) from None
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise TransientSendError(_network_reason(exc, self.timeout), provider=self.provider) from None
        return smtp

    def _drop(self, polite: bool = False) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if polite:
                smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()

    # --- the message ---------------------------------------------------------------

    def _message_id(self, message: Outgoing) -> str:
        """Stable across retries of one message (derived from its idempotency key)."""
        if message.idempotency_key:
            token = hashlib.sha256(message.idempotency_key.encode("utf-8")).hexdigest()[:32]
        else:
            token = uuid.uuid4().hex
        return f"<ce.{message.message_id}.{token}@{self._id_domain}>"

    def _build(self, message: Outgoing, recipient: str, message_id: str) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY)
        msg["Subject"] = " ".join((message.subject or "").split())
        msg["From"] = Address(display_name=self.from_name or "", addr_spec=self.from_address)
        msg["To"] = recipient
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        msg["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
        msg["Message-ID"] = message_id
        if message.idempotency_key:
            msg["X-Idempotency-Key"] = message.idempotency_key
        if message.unsubscribe_url and message.category == "marketing":
            # RFC 8058 one-click unsubscribe, expected by large mailbox providers for bulk mail.
            msg["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(message.body)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        return msg


class _Stale(Exception):
    """The connection was closed by the server before this message's DATA began."""

    def __init__(self, reason: str = "connection closed by the server before the message was sent"):
        super().__init__(reason)
        self.reason = reason


def _looks_like_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and not any(c in address for c in " \t\r\n<>,;\"")


def _is_ascii_address(address: str) -> bool:
    """Our own addresses (From, Reply-To) are checked harder than recipients: ASCII, a dot in the domain."""
    return _looks_like_address(address) and address.isascii() and "." in address.rpartition("@")[2]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS] + "..."


def _mask_reply(reply: str) -> str:
    """A server reply without the full address it often echoes (logs mask addresses)."""
    words = []
    for word in _short(reply).split(" "):
        core = word.strip("<>:;,.()[]")
        if "@" in core:
            local, _, domain = core.rpartition("@")
            word = word.replace(core, f"{local[:1]}***@{domain}")
        words.append(word)
    return " ".join(words)


def _network_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {_short(exc.reason or str(exc))}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection failed: {_short(exc.strerror)}"
    return f"{type(exc).__name__}: {_short(str(exc))}"
