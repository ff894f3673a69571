"""Pure: may this match become a message, on which channel, and on what consent?

Order of checks: do_not_contact, then suitability (a product above the customer's
risk tolerance is never promoted), then each channel in the rule's preference
order: a template for it, an address not on the suppression list, and (for
marketing) that channel's consent and room under its frequency cap.
The first channel that passes carries the one message of the match. When none
passes, the reason reported is the one from the most preferred channel.

A call (电联) or visit (面谈) is a task for the customer's relationship manager: a call needs the
customer's mobile, a visit no address; marketing needs the phone-marketing consent (the caller
passes it as both channels' consent); and the manager needs room in their day up to the horizon
(`full`: else manager_capacity, and the next channel).

A mobile a manager flagged `wrong_number` (closing a task with that outcome) is someone else's
number: neither a call nor an SMS goes to it (wrong_number), email and visits still may, until the
flag is removed (`suppress remove call MOBILE`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..vocabulary import Category, Channel, SuppressionReason


@dataclass(frozen=True)
class ConsentRecord:
    granted: bool
    source: str | None = None
    recorded_at: dt.datetime | None = None


@dataclass(frozen=True)
class Contact:
    """What the policy needs to know about one customer."""

    mobile: str | None
    email: str | None
    do_not_contact: bool
    risk_rank: int | None
    consents: Mapping[Channel, ConsentRecord]
    #: channels whose marketing frequency cap this message would exceed
    capped: frozenset[Channel] = frozenset()
    #: channels whose address is on the suppression list
    blocked: frozenset[Channel] = frozenset()
    #: task channels whose manager (or branch queue) has no room up to the horizon
    full: frozenset[Channel] = frozenset()
    #: the mobile is flagged wrong_number (a manager's outcome): no call and no SMS reach it
    wrong_number: bool = False


@dataclass(frozen=True)
class Decision:
    channel: Channel | None = None
    recipient: str | None = None
    consent: ConsentRecord | None = None  # the consent a marketing message relies on
    suppressed: SuppressionReason | None = None

    @property
    def send(self) -> bool:
        return self.channel is not None


MOBILE_CHANNELS = frozenset({Channel.SMS, Channel.CALL})  # the channels that reach the customer's mobile
VISIT_ADDRESS = "(visit)"  # a visit needs no address of the customer's: the manager meets them


def address_of(channel: Channel, mobile: str | None, email: str | None) -> str | None:
    """The address a channel reaches the customer at (None: none on file)."""
    if channel is Channel.VISIT:
        return VISIT_ADDRESS
    value = email if channel is Channel.EMAIL else mobile
    return value.strip() if value and value.strip() else None


def _address(contact: Contact, channel: Channel) -> str | None:
    return address_of(channel, contact.mobile, contact.email)


def decide_contact(contact: Contact, *, category: Category, channels: Sequence[Channel],
                   template_channels: Sequence[str], product_risk_rank: int | None) -> Decision:
    """Channel and recipient for one match, or the suppression reason."""
    if contact.do_not_contact:
        return Decision(suppressed=SuppressionReason.DO_NOT_CONTACT)
    if product_risk_rank is not None and (contact.risk_rank is None
                                          or contact.risk_rank < product_risk_rank):
        return Decision(suppressed=SuppressionReason.SUITABILITY)
    first_reason: SuppressionReason | None = None
    for channel in channels:
        consent = contact.consents.get(channel)
        address = _address(contact, channel)
        if channel.value not in template_channels:
            reason = SuppressionReason.NO_TEMPLATE_FOR_CHANNEL
        elif address is None:
            reason = SuppressionReason.NO_CONTACT_ADDRESS
        elif contact.wrong_number and channel in MOBILE_CHANNELS:
            reason = SuppressionReason.WRONG_NUMBER
        elif channel in contact.blocked:
            reason = SuppressionReason.SUPPRESSION_LIST
        elif category is Category.MARKETING and not (consent and consent.granted):
            reason = SuppressionReason.NO_CONSENT
        elif category is Category.MARKETING and channel in contact.capped:
            reason = SuppressionReason.FREQUENCY_CAP
        elif channel in contact.full:
            reason = SuppressionReason.MANAGER_CAPACITY
        else:
            return Decision(channel=channel, recipient=address,
                            consent=consent if category is Category.MARKETING else None)
        first_reason = first_reason or reason
    return Decision(suppressed=first_reason or SuppressionReason.NO_CONTACT_ADDRESS)
