"""Pure: signed one-click unsubscribe tokens (no login: the signature is the proof)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sign(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(secret: str, customer_id: str, channel: str) -> str:
    payload = f"{customer_id}:{channel}".encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(secret, payload)


def read_token(secret: str, token: str) -> tuple[str, str] | None:
    """(customer_id, channel) of a token this service signed, else None."""
    encoded, _, signature = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        customer_id, channel = payload.decode().rsplit(":", 1)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(signature, _sign(secret, payload)) or channel not in ("sms", "email"):
        return None
    return customer_id, channel


def unsubscribe_url(base_url: str, secret: str, customer_id: str, channel: str) -> str:
    return f"{base_url}/u/{make_token(secret, customer_id, channel)}"
