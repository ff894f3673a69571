"""A local HTTP SMS gateway for tests and demos: a real process, standard library only.

Start:  python tests/gateway_server.py --port 0 [options]
        The first line on stdout is the port it listens on (127.0.0.1); nothing else goes to stdout.

Send:   POST <any path> with a JSON object body: {"mobile": ..., "content": ..., "request_id": ...}
        (names: --to-field, --text-field, --id-field). The idempotency key is the
        `Idempotency-Key` header, else the id field.

Behaviour, by the recipient number's LAST DIGIT, or by the `X-Gateway-Behaviour` header
(which wins when given):

    digit  behaviour    answer
    0-2    success      200 {"code": "OK", "message_id": "gw-<n>", "request_id": <key>}
    3      undelivered  200 like success, but the delivery receipt says failed (UNDELIV)
    4      rejected     200 {"code": "MOBILE_BLACKLISTED", "message": ...}  (an error inside a 200;
                        the code can be chosen with the `X-Gateway-Code` header)
    5      invalid      400 {"code": "INVALID_MOBILE", "message": "invalid mobile number"}
    6      unavailable  503 {"code": "SERVICE_UNAVAILABLE"} with Retry-After: 1
    7      slow         sleeps --slow-seconds (default 3), then answers success
    8      garbage      200 with a body that is not JSON
    9      noid         200 {"code": "OK"} (JSON without the id field)
    (header only)       ratelimit: 429 {"code": "RATE_LIMITED"};  drop: closes the connection unanswered

The success id is at --response-id-field (default "message_id"; a dotted name such as
"data.msgid" nests it).

Accepted messages (success, undelivered, slow) are recorded with their idempotency key,
peer address and headers; a repeated idempotency key is answered with the first answer
(same message id, "duplicate": true) and not recorded again, as real providers do.
Nothing else is recorded.

Authentication (checked before anything else, 401 {"code": "UNAUTHORIZED"} when wrong):
    --token T    requires `Authorization: Bearer T`
    --secret S   requires X-Timestamp (Unix seconds, within 300 s) and X-Signature = hex
                 HMAC-SHA256(S, f"{timestamp}.{raw body}")  (header names: --signature-header,
                 --timestamp-header)

Delivery receipts: with --receipt-url URL, --receipt-delay seconds (default 0.2) after
accepting a message the gateway POSTs a JSON receipt
    {"provider_message_id": "gw-1", "idempotency_key": ..., "recipient": ..., "status":
     "delivered" | "failed", "error_code": null | "UNDELIV", "reported_at": ISO-8601 UTC}
with `X-Signature: hex HMAC-SHA256(--receipt-secret, raw body)` (header: --receipt-signature-header;
unsigned without a secret). Three attempts, 0.2 s apart; failures go to stderr.

Test endpoints: GET /_sent -> {"accepted": [...], "duplicates": n, "requests": n,
"receipts": [{"url", "status", "body"}...]}; POST /_reset empties them.

--keepalive-timeout S closes a kept-alive connection idle for S seconds (default 30).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import itertools
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = {"0": "success", "1": "success", "2": "success", "3": "undelivered", "4": "rejected",
              "5": "invalid", "6": "unavailable", "7": "slow", "8": "garbage", "9": "noid"}
ACCEPTING = {"success", "undelivered", "slow"}


class Gateway:
    """The gateway's state, shared by the request threads."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.accepted: list[dict[str, Any]] = []
            self.by_key: dict[str, dict[str, Any]] = {}
            self.duplicates = 0
            self.requests = 0
            self.receipts: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"accepted": list(self.accepted), "duplicates": self.duplicates,
                    "requests": self.requests, "receipts": list(self.receipts)}

    def accept(self, key: str, record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The answer for an accepted message, and whether it is new (False: a repeated key)."""
        with self.lock:
            if key and key in self.by_key:
                self.duplicates += 1
                return {**self.by_key[key], "duplicate": True}, False
            message_id = f"gw-{next(self.counter)}"
            answer = _nest(self.args.response_id_field, message_id)
            answer.setdefault("code", "OK")
            answer["request_id"] = key
            record["message_id"] = message_id
            self.accepted.append(record)
            if key:
                self.by_key[key] = answer
            return answer, True

    def send_receipt(self, record: dict[str, Any]) -> None:
        args = self.args
        failed = record["behaviour"] == "undelivered"
        body = json.dumps({
            "provider_message_id": record["message_id"],
            "idempotency_key": record["idempotency_key"],
            "recipient": record["recipient"],
            "status": "failed" if failed else "delivered",
            "error_code": "UNDELIV" if failed else None,
            "reported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if args.receipt_secret:
            headers[args.receipt_signature_header] = hmac.new(
                args.receipt_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        for attempt in range(3):
            status: int | str
            try:
                request = urllib.request.Request(args.receipt_url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                status = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.receipts.append({"url": args.receipt_url, "status": status, "body": body.decode("utf-8")})
            if isinstance(status, int) and 200 <= status < 300:
                return
            print(f"receipt for {record['message_id']} not taken: {status}", file=sys.stderr, flush=True)
            time.sleep(0.2)


def _nest(path: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    *parents, last = path.split(".")
    cursor = doc
    for part in parents:
        cursor = cursor.setdefault(part, {})
    cursor[last] = value
    return doc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "TestSmsGateway/1"
    gateway: Gateway  # set on the subclass made in main()

    def log_message(self, format: str, *args: Any) -> None:
        if self.gateway.args.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/_sent":
            self._answer(200, self.gateway.snapshot())
        else:
            self._answer(404, {"code": "NOT_FOUND"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] == "/_reset":
            self.gateway.reset()
            self._answer(200, {"reset": True})
            return
        with self.gateway.lock:
            self.gateway.requests += 1
        args = self.gateway.args
        if not self._authenticated(raw):
            self._answer(401, {"code": "UNAUTHORIZED", "message": "bad credentials or signature"})
            return
        try:
            payload = json.loads(raw.decode("utf-8"))
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            self._answer(400, {"code": "BAD_REQUEST", "message": "body must be a JSON object"})
            return
        recipient = str(payload.get(args.to_field) or "")
        if not recipient or args.text_field not in payload:
            self._answer(400, {"code": "MISSING_FIELD",
                               "message": f"{args.to_field} and {args.text_field} are required"})
            return
        key = self.headers.get("Idempotency-Key") or str(payload.get(args.id_field) or "")
        behaviour = self.headers.get("X-Gateway-Behaviour") or BEHAVIOURS.get(recipient[-1:], "success")
        if behaviour in ACCEPTING:
            record = {"recipient": recipient, "text": payload.get(args.text_field), "idempotency_key": key,
                      "idempotency_header": self.headers.get("Idempotency-Key"), "body": payload,
                      "path": self.path, "peer": list(self.client_address), "behaviour": behaviour,
                      "headers": {k: v for k, v in self.headers.items()
                                  if k.lower() not in ("content-length", "host")}}
            answer, new = self.gateway.accept(key, record)
            if new and args.receipt_url:
                timer = threading.Timer(args.receipt_delay, self.gateway.send_receipt, (record,))
                timer.daemon = True
                timer.start()
            if behaviour == "slow":
                time.sleep(args.slow_seconds)
            self._answer(200, answer)
        elif behaviour == "rejected":
            code = self.headers.get("X-Gateway-Code") or "MOBILE_BLACKLISTED"
            self._answer(200, {"code": code, "message": "message refused by the provider"})
        elif behaviour == "invalid":
            self._answer(400, {"code": "INVALID_MOBILE", "message": f"invalid mobile number {recipient}"})
        elif behaviour == "unavailable":
            self._answer(503, {"code": "SERVICE_UNAVAILABLE", "message": "try again later"},
                         {"Retry-After": "1"})
        elif behaviour == "ratelimit":
            self._answer(429, {"code": "RATE_LIMITED", "message": "too many requests"}, {"Retry-After": "1"})
        elif behaviour == "garbage":
            self._answer_raw(200, b"<html><body>OK " + b"x" * 500 + b"</body></html>", "text/html")
        elif behaviour == "noid":
            self._answer(200, {"code": "OK"})
        elif behaviour == "drop":
            self.close_connection = True
            self.connection.close()
        else:
            self._answer(400, {"code": "UNKNOWN_BEHAVIOUR", "message": behaviour})

    def _authenticated(self, raw: bytes) -> bool:
        args = self.gateway.args
        if args.token and not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {args.token}"):
            return False
        if args.secret:
            timestamp = self.headers.get(args.timestamp_header, "")
            signature = self.headers.get(args.signature_header, "")
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
                return False
            expected = hmac.new(args.secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw,
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature, expected):
                return False
        return True

    def _answer(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._answer_raw(status, json.dumps(doc, ensure_ascii=False).encode("utf-8"),
                         "application/json; charset=utf-8", headers)

    def _answer_raw(self, status: int, body: bytes, content_type: str,
                    headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (slow answers)
            self.close_connection = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--to-field", default="mobile")
    parser.add_argument("--text-field", default="content")
    parser.add_argument("--id-field", default="request_id")
    parser.add_argument("--response-id-field", default="message_id")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN")
    parser.add_argument("--secret", help="require an HMAC-SHA256 request signature with this secret")
    parser.add_argument("--signature-header", default="X-Signature")
    parser.add_argument("--timestamp-header", default="X-Timestamp")
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--keepalive-timeout", type=float, default=30.0)
    parser.add_argument("--receipt-url")
    parser.add_argument("--receipt-secret")
    parser.add_argument("--receipt-signature-header", default="X-Signature")
    parser.add_argument("--receipt-delay", type=float, default=0.2)
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    handler = type("GatewayHandler", (Handler,), {"gateway": Gateway(args), "timeout": args.keepalive_timeout})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
