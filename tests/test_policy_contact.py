"""Contact policy: may a match become a message, on which channel, relying on which consent.

Order: do_not_contact, suitability, then each channel in the rule's order (a
template for it, an address, and for marketing that channel's consent).
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import pytest

from campaign_engine.policy.contact import ConsentRecord, Contact, Decision, decide_contact
from campaign_engine.vocabulary import Category, Channel, SuppressionReason

SMS, EMAIL = Channel.SMS, Channel.EMAIL
MARKETING, SERVICE = Category.MARKETING, Category.SERVICE
GRANTED_AT = dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.timezone.utc)


def consent(granted: bool = True, source: str = "branch-form") -> ConsentRecord:
    return ConsentRecord(granted=granted, source=source, recorded_at=GRANTED_AT)


def contact(*, mobile: str | None = "13812345678", email: str | None = "zhang.wei@example.com",
            do_not_contact: bool = False, risk_rank: int | None = 3,
            sms: bool | None = True, email_consent: bool | None = True) -> Contact:
    """A reachable customer; pass None for a consent that was never recorded."""
    consents = {}
    if sms is not None:
        consents[SMS] = consent(sms)
    if email_consent is not None:
        consents[EMAIL] = consent(email_consent, source="online-banking")
    return Contact(mobile=mobile, email=email, do_not_contact=do_not_contact, risk_rank=risk_rank,
                   consents=consents)


def decide(who: Contact, *, category: Category = MARKETING,
           channels: Sequence[Channel] = (SMS, EMAIL),
           template_channels: Sequence[str] = ("sms", "email"),
           product_risk_rank: int | None = None) -> Decision:
    return decide_contact(who, category=category, channels=channels,
                          template_channels=template_channels, product_risk_rank=product_risk_rank)


def suppressed(reason: SuppressionReason) -> Decision:
    return Decision(suppressed=reason)


# --------------------------------------------------------------------------- sending

def test_decide_contact_marketing_uses_first_channel_with_its_consent():
    decision = decide(contact())
    assert decision == Decision(channel=SMS, recipient="13812345678", consent=consent(True))
    assert decision.send


def test_decide_contact_follows_the_rules_channel_order():
    decision = decide(contact(), channels=(EMAIL, SMS))
    assert (decision.channel, decision.recipient) == (EMAIL, "zhang.wei@example.com")
    assert decision.consent == consent(True, source="online-banking")


def test_decide_contact_service_returns_no_consent_record():
    decision = decide(contact(), category=SERVICE)
    assert decision == Decision(channel=SMS, recipient="13812345678", consent=None)


def test_decide_contact_trims_the_address():
    assert decide(contact(mobile="  13812345678 ")).recipient == "13812345678"


# --------------------------------------------------------------------------- do not contact

@pytest.mark.parametrize("category", [SERVICE, MARKETING])
def test_decide_contact_do_not_contact_suppresses(category):
    decision = decide(contact(do_not_contact=True), category=category)
    assert decision == suppressed(SuppressionReason.DO_NOT_CONTACT)
    assert not decision.send


def test_decide_contact_do_not_contact_wins_over_suitability():
    decision = decide(contact(do_not_contact=True, risk_rank=1), product_risk_rank=5)
    assert decision.suppressed is SuppressionReason.DO_NOT_CONTACT


# --------------------------------------------------------------------------- suitability

def test_decide_contact_suitability_suppresses_product_above_customer_risk():
    decision = decide(contact(risk_rank=2), product_risk_rank=3)
    assert decision == suppressed(SuppressionReason.SUITABILITY)


def test_decide_contact_suitability_suppresses_unknown_customer_risk():
    decision = decide(contact(risk_rank=None), product_risk_rank=1)
    assert decision == suppressed(SuppressionReason.SUITABILITY)


@pytest.mark.parametrize("risk_rank", [3, 4, 5])
def test_decide_contact_suitability_passes_at_or_above_product_risk(risk_rank):
    assert decide(contact(risk_rank=risk_rank), product_risk_rank=3).channel is SMS


def test_decide_contact_no_product_means_no_suitability_check():
    assert decide(contact(risk_rank=None), product_risk_rank=None).channel is SMS


def test_decide_contact_suitability_applies_to_service_too():
    decision = decide(contact(risk_rank=1), category=SERVICE, product_risk_rank=2)
    assert decision.suppressed is SuppressionReason.SUITABILITY


# --------------------------------------------------------------------------- consent and fallback

def test_decide_contact_marketing_without_sms_consent_falls_back_to_email():
    decision = decide(contact(sms=False))
    assert (decision.channel, decision.recipient) == (EMAIL, "zhang.wei@example.com")
    assert decision.consent == consent(True, source="online-banking")


def test_decide_contact_marketing_with_unrecorded_consent_falls_back():
    assert decide(contact(sms=None)).channel is EMAIL


def test_decide_contact_marketing_without_any_consent_is_no_consent():
    decision = decide(contact(sms=False, email_consent=None))
    assert decision == suppressed(SuppressionReason.NO_CONSENT)


def test_decide_contact_service_ignores_consent():
    decision = decide(contact(sms=False, email_consent=False), category=SERVICE)
    assert (decision.channel, decision.recipient, decision.consent) == (SMS, "13812345678", None)


# --------------------------------------------------------------------------- addresses and templates

@pytest.mark.parametrize("mobile", [None, "", "   "])
def test_decide_contact_no_mobile_uses_next_channel(mobile):
    decision = decide(contact(mobile=mobile))
    assert (decision.channel, decision.recipient) == (EMAIL, "zhang.wei@example.com")


def test_decide_contact_no_address_at_all():
    decision = decide(contact(mobile=None, email=None), category=SERVICE)
    assert decision == suppressed(SuppressionReason.NO_CONTACT_ADDRESS)


def test_decide_contact_reports_the_first_channels_reason_when_none_passes():
    # SMS: no mobile; email: no consent. The most preferred channel's reason is reported.
    decision = decide(contact(mobile=None, email_consent=False))
    assert decision == suppressed(SuppressionReason.NO_CONTACT_ADDRESS)
    # The other way round: SMS lacks consent, email lacks an address.
    decision = decide(contact(email=None, sms=False))
    assert decision == suppressed(SuppressionReason.NO_CONSENT)


def test_decide_contact_skips_a_channel_the_template_lacks():
    decision = decide(contact(), template_channels=("email",))
    assert decision.channel is EMAIL


def test_decide_contact_template_without_any_listed_channel():
    decision = decide(contact(), channels=(SMS,), template_channels=("email",))
    assert decision == suppressed(SuppressionReason.NO_TEMPLATE_FOR_CHANNEL)


def test_decide_contact_single_channel_rule_does_not_use_other_channels():
    decision = decide(contact(sms=False), channels=(SMS,))
    assert decision == suppressed(SuppressionReason.NO_CONSENT)
