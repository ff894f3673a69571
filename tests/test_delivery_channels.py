"""Delivery channels against real peers: a file, a local SMTP server (aiosmtpd), and the
local SMS gateway process in tests/gateway_server.py. No network code is mocked."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import queue
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from campaign_engine.delivery.channel import (
    Outgoing,
    PermanentSendError,
    TransientSendError,
)
from campaign_engine.delivery.channels import (
    FileChannel,
    HttpSmsChannel,
    SmtpChannel,
    build_channel,
    build_channels,
)
from campaign_engine.errors import ConfigError
from campaign_engine.settings import load_settings

GATEWAY = Path(__file__).with_name("gateway_server.py")
WAIT = 5.0  # seconds: the longest any test waits for a peer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sms(recipient: str, key: str | None = None, **overrides: Any) -> Outgoing:
    values: dict[str, Any] = dict(message_id=7, channel="sms", recipient=recipient,
                                  body="【XX银行】您的定期存款将于3月17日到期。回复TD退订",
                                  idempotency_key=key or f"msg-{uuid.uuid4().hex}", category="marketing")
    values.update(overrides)
    return Outgoing(**values)


def mail(recipient: str = "zhang.wei@example.com", **overrides: Any) -> Outgoing:
    values: dict[str, Any] = dict(message_id=42, channel="email", recipient=recipient,
                                  subject="【XX银行】您的理财产品即将到期", body="张先生：您好！您的理财产品即将到期。",
                                  html="<p>张先生：您好！<b>您的理财产品</b>即将到期。</p>",
                                  idempotency_key="run-3:rule-maturity:C001:email", category="service")
    values.update(overrides)
    return Outgoing(**values)


def number(last_digit: int) -> str:
    """A mobile number whose last digit picks the gateway's behaviour (see gateway_server.py)."""
    return f"1380013{uuid.uuid4().int % 1000:03d}{last_digit}"


# --- the file channel -------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_file_channel_writes_valid_json_lines(tmp_path: Path):
    path = tmp_path / "outbox" / "nested" / "sms.jsonl"
    channel = FileChannel(path)
    try:
        sent = [channel.send(sms("13800138000", key=f"k{i}", message_id=i)) for i in range(3)]
        sent.append(channel.send(mail()))
    finally:
        channel.close()
    lines = read_lines(path)
    assert [line["message_id"] for line in lines] == [0, 1, 2, 42]
    assert [s.provider_message_id for s in sent] == ["file-0", "file-1", "file-2", "file-42"]
    assert {s.provider for s in sent} == {"file"}
    assert lines[0]["body"] == "【XX银行】您的定期存款将于3月17日到期。回复TD退订"
    assert lines[0]["idempotency_key"] == "k0" and lines[0]["category"] == "marketing"
    assert lines[3]["subject"] == "【XX银行】您的理财产品即将到期" and lines[3]["html"].startswith("<p>")
    assert set(lines[3]) >= {"message_id", "channel", "recipient", "subject", "body", "html",
                             "idempotency_key", "category", "sent_at"}
    assert lines[3]["sent_at"].endswith("+00:00")


def test_file_channel_flushes_each_message(tmp_path: Path):
    path = tmp_path / "sms.jsonl"
    channel = FileChannel(path)
    try:
        channel.send(sms("13800138000", message_id=1))
        assert [line["message_id"] for line in read_lines(path)] == [1]
    finally:
        channel.close()


def test_file_channel_reopens_after_close(tmp_path: Path):
    path = tmp_path / "sms.jsonl"
    channel = FileChannel(path)
    channel.send(sms("13800138000", message_id=1))
    channel.close()
    channel.close()  # twice is harmless
    try:
        channel.send(sms("13800138000", message_id=2))
    finally:
        channel.close()
    assert [line["message_id"] for line in read_lines(path)] == [1, 2]


def test_file_channel_unwritable_path_is_transient(tmp_path: Path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    channel = FileChannel(tmp_path / "blocker" / "sms.jsonl")
    try:
        with pytest.raises(TransientSendError):
            channel.send(sms("13800138000"))
    finally:
        channel.close()


# --- the registry -----------------------------------------------------------------------


def fields_of(exc: pytest.ExceptionInfo[ConfigError]) -> set[str | None]:
    return {problem.field for problem in exc.value.problems}


def test_build_channel_builds_each_type(tmp_path: Path):
    channels = build_channels({
        "sms": {"type": "http_sms", "url": "https://sms.bank.example/api/send", "provider": "bank_sms"},
        "email": {"type": "smtp", "host": "smtp.bank.example", "from_address": "news@bank.example",
                  "from_name": "XX银行"},
        "dev": {"type": "file", "path": "outbox/sms.jsonl"},
    }, base_dir=tmp_path)
    assert isinstance(channels["sms"], HttpSmsChannel) and channels["sms"].provider == "bank_sms"
    assert isinstance(channels["email"], SmtpChannel) and channels["email"].port == 587
    assert isinstance(channels["dev"], FileChannel) and channels["dev"].path == tmp_path / "outbox" / "sms.jsonl"
    assert not (tmp_path / "outbox").exists()  # nothing opened before the first send


def test_build_channels_from_the_default_settings(tmp_path: Path):
    channels = build_channels(load_settings(env={}).channels, base_dir=tmp_path)
    assert {name: type(channel) for name, channel in channels.items()} == {"sms": FileChannel,
                                                                           "email": FileChannel}


def test_build_channel_unknown_type_raises_config_error():
    with pytest.raises(ConfigError) as exc:
        build_channel({"type": "pigeon"}, name="sms")
    assert fields_of(exc) == {"channels.sms.type"}
    assert "file, smtp, http_sms" in str(exc.value) and exc.value.what == "channel settings"
    with pytest.raises(ConfigError) as exc:
        build_channel({"path": "x"})
    assert fields_of(exc) == {"channels.type"}


def test_build_channel_bad_options_name_each_field():
    with pytest.raises(ConfigError) as exc:
        build_channel({"type": "http_sms", "urll": "https://x", "timeout": "5", "fields": {"to": "", "body": "x"},
                       "auth": {"hmac_secret": "s", "header": "X"}, "success_field": "code",
                       "transient_codes": "FLOW"}, name="sms")
    assert fields_of(exc) == {"channels.sms.url", "channels.sms.urll", "channels.sms.timeout",
                              "channels.sms.fields.to", "channels.sms.fields.body", "channels.sms.auth.header",
                              "channels.sms.success_value", "channels.sms.transient_codes"}


def test_build_channel_auth_needs_header_and_value():
    with pytest.raises(ConfigError) as exc:
        build_channel({"type": "http_sms", "url": "http://127.0.0.1:1/", "auth": {"header": "Authorization"}},
                      name="sms")
    assert fields_of(exc) == {"channels.sms.auth.value"}
    with pytest.raises(ConfigError) as exc:
        build_channel({"type": "http_sms", "url": "ftp://gw/", "auth": {"token": "t"},
                       "headers": {"X-Bad": "line\r\nbreak"}}, name="sms")
    assert fields_of(exc) == {"channels.sms.url", "channels.sms.auth", "channels.sms.headers"}


def test_build_channel_smtp_requires_host_and_from_address():
    with pytest.raises(ConfigError) as exc:
        build_channel({"type": "smtp", "security": "tls", "port": 70000, "username": "u"}, name="email")
    assert fields_of(exc) == {"channels.email.host", "channels.email.from_address", "channels.email.security",
                              "channels.email.port", "channels.email.password"}


def test_build_channels_collects_problems_of_every_channel():
    with pytest.raises(ConfigError) as exc:
        build_channels({"sms": {"type": "http_sms"}, "email": {"type": "file"}})
    assert fields_of(exc) == {"channels.sms.url", "channels.email.path"}


# --- SMTP against a real local server ---------------------------------------------------


@dataclass
class Received:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that records messages and connections, and answers as told."""

    messages: list[Received] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # "MAIL" | "RCPT" | "DATA" -> reply
    drop_after_data: bool = False

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.connections.append(session.peer)
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "MAIL" in self.replies:
            return self.replies["MAIL"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "RCPT" in self.replies:
            return self.replies["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if "DATA" in self.replies:
            return self.replies["DATA"]
        message = email.message_from_bytes(envelope.content, policy=email_policy.default)
        self.messages.append(Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), message))
        if self.drop_after_data:  # like a relay closing a connection after a message
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return "250 2.0.0 queued"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def channel(self, **options: Any) -> SmtpChannel:
        values: dict[str, Any] = dict(host="127.0.0.1", port=self.port, security="none",
                                      from_address="marketing@bank.example", from_name="XX银行", timeout=WAIT)
        values.update(options)
        return SmtpChannel(**values)


def start_smtp(**smtp_parameters: Any) -> tuple[Controller, SmtpServer]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=WAIT, **smtp_parameters)
    controller.start()
    return controller, SmtpServer(handler, port)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    controller, server = start_smtp()
    yield server
    controller.stop()


@pytest.fixture
def smtp_channel(smtp_server: SmtpServer) -> Iterator[SmtpChannel]:
    channel = smtp_server.channel(reply_to="service@bank.example")
    yield channel
    channel.close()


def test_smtp_channel_delivers_utf8_subject_from_name_and_both_parts(smtp_server, smtp_channel):
    sent = smtp_channel.send(mail())
    [received] = smtp_server.handler.messages
    msg = received.message
    assert received.mail_from == "marketing@bank.example" and received.rcpt_tos == ["zhang.wei@example.com"]
    assert msg["Subject"] == "【XX银行】您的理财产品即将到期"
    assert msg["From"].addresses[0].display_name == "XX银行"
    assert msg["From"].addresses[0].addr_spec == "marketing@bank.example"
    assert msg["Reply-To"] == "service@bank.example"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "张先生：您好！您的理财产品即将到期。"
    assert "<b>您的理财产品</b>" in msg.get_body(("html",)).get_content()
    assert msg["X-Idempotency-Key"] == "run-3:rule-maturity:C001:email"
    assert sent.provider == "smtp" and sent.provider_message_id == msg["Message-ID"]
    assert msg["Date"] is not None


def test_smtp_channel_text_only_without_html(smtp_server, smtp_channel):
    smtp_channel.send(mail(html=None))
    msg = smtp_server.handler.messages[0].message
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "张先生：您好！您的理财产品即将到期。"


def test_smtp_channel_list_unsubscribe_for_marketing_only(smtp_server, smtp_channel):
    url = "https://bank.example/unsubscribe?t=abc123"
    smtp_channel.send(mail(category="marketing", unsubscribe_url=url))
    smtp_channel.send(mail(category="service", unsubscribe_url=url))
    smtp_channel.send(mail(category="marketing"))
    marketing, service, without_url = (r.message for r in smtp_server.handler.messages)
    assert marketing["List-Unsubscribe"] == f"<{url}>"
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for msg in (service, without_url):
        assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


def test_smtp_channel_reuses_one_connection(smtp_server, smtp_channel):
    for i in range(4):
        smtp_channel.send(mail(message_id=i, idempotency_key=f"k{i}"))
    assert len(smtp_server.handler.messages) == 4
    assert len(smtp_server.handler.connections) == 1
    assert len({r.peer for r in smtp_server.handler.messages}) == 1


def test_smtp_channel_reconnects_after_server_drops_connection(smtp_server, smtp_channel):
    smtp_server.handler.drop_after_data = True
    smtp_channel.send(mail(message_id=1, idempotency_key="k1"))
    time.sleep(0.5)  # the server closes the connection 0.05 s after the message
    smtp_channel.send(mail(message_id=2, idempotency_key="k2"))
    assert [r.message["X-Idempotency-Key"] for r in smtp_server.handler.messages] == ["k1", "k2"]
    assert len({r.peer for r in smtp_server.handler.messages}) == 2


def test_smtp_channel_message_id_stable_for_one_idempotency_key(smtp_server, smtp_channel):
    first = smtp_channel.send(mail())
    again = smtp_channel.send(mail())
    other = smtp_channel.send(mail(idempotency_key="another"))
    assert first.provider_message_id == again.provider_message_id != other.provider_message_id
    assert first.provider_message_id.startswith("<") and first.provider_message_id.endswith("@bank.example>")


@pytest.mark.parametrize(("stage", "reply", "error"), [
    ("MAIL", "451 4.3.0 try again later", TransientSendError),
    ("MAIL", "553 5.1.8 sender address rejected", PermanentSendError),
    ("RCPT", "450 4.2.1 mailbox busy", TransientSendError),
    ("RCPT", "550 5.1.1 <zhang.wei@example.com>: mailbox unavailable", PermanentSendError),
    ("DATA", "451 4.7.1 greylisted, try again", TransientSendError),
    ("DATA", "554 5.7.1 message rejected as spam", PermanentSendError),
])
def test_smtp_channel_maps_reply_codes(smtp_server, smtp_channel, stage, reply, error):
    smtp_server.handler.replies[stage] = reply
    with pytest.raises(error) as exc:
        smtp_channel.send(mail())
    assert reply.split()[0] in exc.value.reason and exc.value.provider == "smtp"
    assert "zhang.wei@" not in exc.value.reason  # addresses echoed by the server are masked
    del smtp_server.handler.replies[stage]
    smtp_channel.send(mail())  # the same connection goes on (RSET after a refusal)
    assert len(smtp_server.handler.messages) == 1 and len(smtp_server.handler.connections) == 1


def test_smtp_channel_421_is_transient_and_reconnects(smtp_server, smtp_channel):
    smtp_channel.send(mail())
    smtp_server.handler.replies["MAIL"] = "421 4.3.2 service shutting down"
    with pytest.raises(TransientSendError, match="sender refused: 421 4.3.2"):
        smtp_channel.send(mail())  # on the kept connection, then once more on a new one
    del smtp_server.handler.replies["MAIL"]
    smtp_channel.send(mail())
    assert len(smtp_server.handler.messages) == 2 and len(smtp_server.handler.connections) == 3


def test_smtp_channel_server_down_is_transient():
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), security="none",
                          from_address="marketing@bank.example", timeout=WAIT)
    try:
        with pytest.raises(TransientSendError, match="connection refused"):
            channel.send(mail())
    finally:
        channel.close()


def test_smtp_channel_logs_in_with_username_and_password():
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    controller, server = start_smtp(authenticator=authenticator, auth_require_tls=False,
                                    auth_exclude_mechanism=["LOGIN"])
    good = server.channel(username="mailer", password="s3cret")
    bad = server.channel(username="mailer", password="wrong")
    try:
        good.send(mail())
        with pytest.raises(TransientSendError, match="login refused: 535"):
            bad.send(mail())
    finally:
        good.close()
        bad.close()
        controller.stop()
    assert logins == [(b"mailer", b"s3cret"), (b"mailer", b"wrong")]
    assert len(server.handler.messages) == 1


def test_smtp_channel_utf8_address_needs_smtputf8(smtp_server, smtp_channel):
    smtp_channel.send(mail(recipient="张伟@例子.中国"))
    assert smtp_server.handler.messages[0].rcpt_tos == ["张伟@例子.中国"]
    controller, ascii_only = start_smtp(enable_SMTPUTF8=False)
    channel = ascii_only.channel()
    try:
        with pytest.raises(PermanentSendError, match="SMTPUTF8"):
            channel.send(mail(recipient="张伟@例子.中国"))
        channel.send(mail())  # ASCII addresses still go through
    finally:
        channel.close()
        controller.stop()
    assert len(ascii_only.handler.messages) == 1


def test_smtp_channel_invalid_address_is_permanent(smtp_channel):
    with pytest.raises(PermanentSendError, match="invalid email address"):
        smtp_channel.send(mail(recipient="not-an-address"))


# --- HTTP SMS against the real gateway process ------------------------------------------


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int
    log: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms/send"

    def sent(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_sent", timeout=WAIT) as response:
            return json.load(response)

    def accepted(self, key: str) -> list[dict[str, Any]]:
        return [record for record in self.sent()["accepted"] if record["idempotency_key"] == key]

    def channel(self, **options: Any) -> HttpSmsChannel:
        config: dict[str, Any] = {"type": "http_sms", "url": self.url, "timeout": 2}
        config.update(options)
        channel = build_channel(config, name="sms")
        assert isinstance(channel, HttpSmsChannel)
        return channel

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.log.close()


def start_gateway(tmp_path: Path, *args: str) -> Gateway:
    log = open(tmp_path / f"gateway-{uuid.uuid4().hex[:8]}.log", "w")
    process = subprocess.Popen([sys.executable, str(GATEWAY), "--port", "0", *args], text=True,
                               stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    line = process.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        Gateway(process, 0, log).stop()
        raise RuntimeError(f"the gateway did not start within {WAIT} s: {Path(log.name).read_text()[-2000:]}")
    return Gateway(process, int(line), log)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the module; tests tell their messages apart by idempotency key."""
    gateway = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield gateway
    gateway.stop()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Any]:
    """Starts gateways with options of the test's own; stops them afterwards."""
    started: list[Gateway] = []

    def start(*args: str) -> Gateway:
        started.append(start_gateway(tmp_path, *args))
        return started[-1]

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def channels() -> Iterator[Any]:
    """Closes the channels a test opens."""
    opened: list[HttpSmsChannel] = []

    def track(channel: HttpSmsChannel) -> HttpSmsChannel:
        opened.append(channel)
        return channel

    yield track
    for channel in opened:
        channel.close()


def test_http_sms_channel_success_records_idempotency_key(gateway, channels):
    channel = channels(gateway.channel(provider="bank_sms"))
    message = sms(number(0))
    sent = channel.send(message)
    assert sent.provider == "bank_sms" and sent.provider_message_id.startswith("gw-")
    [record] = gateway.accepted(message.idempotency_key)
    assert record["message_id"] == sent.provider_message_id
    assert record["idempotency_header"] == message.idempotency_key
    assert record["body"] == {"mobile": message.recipient, "content": message.body,
                              "request_id": message.idempotency_key}


def test_http_sms_channel_repeated_idempotency_key_accepted_once(gateway, channels):
    channel = channels(gateway.channel())
    message = sms(number(1))
    first = channel.send(message)
    again = channel.send(message)
    assert first == again
    assert len(gateway.accepted(message.idempotency_key)) == 1
    assert gateway.sent()["duplicates"] >= 1


def test_http_sms_channel_reuses_one_connection(gateway, channels):
    channel = channels(gateway.channel())
    keys = [channel.send(sms(number(2))) and None for _ in range(5)]
    assert len(keys) == 5
    peers = {tuple(r["peer"]) for r in gateway.sent()["accepted"][-5:]}
    assert len(peers) == 1


def test_http_sms_channel_hmac_signature_verified_by_gateway(gateways, channels):
    gateway = gateways("--secret", "gw-secret")
    signed = channels(gateway.channel(auth={"hmac_secret": "gw-secret"}))
    message = sms(number(0))
    signed.send(message)
    [record] = gateway.accepted(message.idempotency_key)
    timestamp, signature = record["headers"]["X-Timestamp"], record["headers"]["X-Signature"]
    body = json.dumps(record["body"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert signature == hmac.new(b"gw-secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    wrong = channels(gateway.channel(auth={"hmac_secret": "not-it", "signature_header": "X-Signature"}))
    with pytest.raises(PermanentSendError, match="HTTP 401"):
        wrong.send(sms(number(0)))


def test_http_sms_channel_bearer_auth(gateways, channels):
    gateway = gateways("--token", "t0ken")
    channel = channels(gateway.channel(auth={"header": "Authorization", "value": "Bearer t0ken"}))
    message = sms(number(0))
    channel.send(message)
    assert gateway.accepted(message.idempotency_key)[0]["headers"]["Authorization"] == "Bearer t0ken"
    wrong = channels(gateway.channel(auth={"header": "Authorization", "value": "Bearer nope"}))
    with pytest.raises(PermanentSendError, match="HTTP 401, code UNAUTHORIZED"):
        wrong.send(sms(number(0)))


def test_http_sms_channel_400_is_permanent(gateway, channels):
    channel = channels(gateway.channel())
    message = sms(number(5))
    with pytest.raises(PermanentSendError) as exc:
        channel.send(message)
    assert exc.value.reason.startswith("HTTP 400, code INVALID_MOBILE: ")
    assert message.recipient not in exc.value.reason and message.recipient[-4:] in exc.value.reason
    assert not gateway.accepted(message.idempotency_key)


def test_http_sms_channel_503_and_429_are_transient(gateway, channels):
    channel = channels(gateway.channel())
    with pytest.raises(TransientSendError, match=r"HTTP 503, code SERVICE_UNAVAILABLE, retry after 1 s"):
        channel.send(sms(number(6)))
    limited = channels(gateway.channel(headers={"X-Gateway-Behaviour": "ratelimit"}))
    with pytest.raises(TransientSendError, match="HTTP 429"):
        limited.send(sms(number(0)))
    channel.send(sms(number(0)))  # the kept-alive connection still works after errors


def test_http_sms_channel_slow_gateway_is_transient(gateway, channels):
    channel = channels(gateway.channel(timeout=0.5))
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="timed out after 0.5 s"):
        channel.send(sms(number(7)))
    assert time.monotonic() - started < 2.0
    channel.send(sms(number(0)))  # a fresh connection after the timeout


def test_http_sms_channel_garbage_answers_are_transient(gateway, channels):
    channel = channels(gateway.channel())
    with pytest.raises(TransientSendError) as exc:
        channel.send(sms(number(8)))  # 200, not JSON
    assert exc.value.reason.startswith("HTTP 200 with a body that is not a JSON object: <html>")
    assert len(exc.value.reason) < 300
    with pytest.raises(TransientSendError, match="HTTP 200 without 'message_id'"):
        channel.send(sms(number(9)))  # 200, JSON without the id


def test_http_sms_channel_error_code_in_200(gateway, channels):
    config = {"success_field": "code", "success_value": "OK", "transient_codes": ["FLOW_LIMIT"]}
    channel = channels(gateway.channel(**config))
    with pytest.raises(PermanentSendError, match="HTTP 200, code MOBILE_BLACKLISTED"):
        channel.send(sms(number(4)))
    flow = channels(gateway.channel(headers={"X-Gateway-Code": "FLOW_LIMIT"}, **config))
    with pytest.raises(TransientSendError, match="HTTP 200, code FLOW_LIMIT"):
        flow.send(sms(number(4)))
    assert channel.send(sms(number(0))).provider_message_id.startswith("gw-")


def test_http_sms_channel_gateway_down_is_transient(channels):
    channel = channels(build_channel({"type": "http_sms", "url": f"http://127.0.0.1:{free_port()}/send"}))
    with pytest.raises(TransientSendError, match="connection refused"):
        channel.send(sms(number(0)))


def test_http_sms_channel_dropped_connection_is_transient(gateway, channels):
    channel = channels(gateway.channel(headers={"X-Gateway-Behaviour": "drop"}))
    with pytest.raises(TransientSendError, match="closed by the gateway"):
        channel.send(sms(number(0)))


def test_http_sms_channel_reconnects_after_idle_close(gateways, channels):
    gateway = gateways("--keepalive-timeout", "0.1")
    channel = channels(gateway.channel())
    channel.send(sms(number(0)))
    time.sleep(0.6)  # the gateway closes the idle connection
    channel.send(sms(number(0)))
    accepted = gateway.sent()["accepted"]
    assert len(accepted) == 2 and accepted[0]["peer"] != accepted[1]["peer"]


def test_http_sms_channel_field_mapping_honoured(gateways, channels):
    gateway = gateways("--to-field", "phone", "--text-field", "msg", "--id-field", "req",
                       "--response-id-field", "data.sid")
    channel = channels(gateway.channel(
        fields={"to": "phone", "text": "msg", "id": "req", "category": "type"},
        response_id_field="data.sid", extra_fields={"sign": "XX银行", "account": "A001"}))
    message = sms(number(0))
    sent = channel.send(message)
    [record] = gateway.accepted(message.idempotency_key)
    assert sent.provider_message_id == record["message_id"]
    assert record["body"] == {"phone": message.recipient, "msg": message.body, "req": message.idempotency_key,
                              "type": "marketing", "sign": "XX银行", "account": "A001"}


# --- delivery receipts --------------------------------------------------------------------


@pytest.fixture
def receipt_listener() -> Iterator[tuple[str, queue.Queue[tuple[dict[str, str], bytes]]]]:
    """A small HTTP server that keeps the receipts posted to it."""
    received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/receipts", received
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


def test_gateway_posts_signed_receipts(gateways, channels, receipt_listener):
    url, received = receipt_listener
    gateway = gateways("--receipt-url", url, "--receipt-secret", "receipt-secret", "--receipt-delay", "0.05")
    channel = channels(gateway.channel())
    delivered = channel.send(sms(number(0)))
    undelivered = channel.send(sms(number(3)))
    receipts = {}
    for _ in range(2):
        headers, body = received.get(timeout=WAIT)
        expected = hmac.new(b"receipt-secret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Signature"], expected)
        receipt = json.loads(body)
        receipts[receipt["provider_message_id"]] = receipt
    assert receipts[delivered.provider_message_id]["status"] == "delivered"
    assert receipts[undelivered.provider_message_id]["status"] == "failed"
    assert receipts[undelivered.provider_message_id]["error_code"] == "UNDELIV"
    # the gateway records each receipt once the listener's answer reached it
    deadline = time.monotonic() + WAIT
    while len(gateway.sent()["receipts"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["status"] for r in gateway.sent()["receipts"]] == [204, 204]
