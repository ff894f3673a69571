"""What the delivery worker needs from a channel (defined here, by its user).

A channel sends one message and answers with the provider's id, or raises
TransientSendError (retry later: 5xx, timeout, connection refused, SMTP 4xx) or
PermanentSendError (never retry: invalid number, SMTP 5xx, a 4xx the provider will
answer again). A channel never swallows a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import CampaignEngineError


@dataclass(frozen=True)
class Outgoing:
    """One message as a channel sends it."""

    message_id: int
    channel: str  # "sms" | "email"
    recipient: str  # mobile number or email address
    body: str  # SMS text (signature and opt-out included) or the email's text part
    subject: str | None = None
    html: str | None = None
    #: Stable across retries and workers: providers that de-duplicate use it.
    idempotency_key: str = ""
    category: str = "service"
    #: One-click unsubscribe URL for marketing email (List-Unsubscribe), when known.
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class Sent:
    provider: str
    provider_message_id: str | None = None


class SendError(CampaignEngineError):
    def __init__(self, reason: str, *, provider: str | None = None):
        self.reason = reason
        self.provider = provider
        super().__init__(f"{provider + ': ' if provider else ''}{reason}")


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    transient = False


class Channel(Protocol):
    """A way to reach customers; `provider` names it in message records and receipts."""

    provider: str

    def send(self, message: Outgoing) -> Sent: ...

    def close(self) -> None: ...
