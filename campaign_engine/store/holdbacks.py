"""Holding back claimed messages at the last moment: the contact flags the pre-send check reads,
and the suppressions and reschedules it writes for the messages it keeps from sending."""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.orm import aliased

from .models import Consent, Customer, Message, table_of

_SmsConsent = aliased(Consent)
_EmailConsent = aliased(Consent)


def contact_flags(conn: Connection, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """do_not_contact and current marketing consent per channel, by primary key (one query)."""
    if not customer_ids:
        return {}
    rows = conn.execute(
        select(Customer.customer_id, Customer.do_not_contact, _SmsConsent.granted, _EmailConsent.granted)
        .outerjoin(_SmsConsent, and_(_SmsConsent.customer_id == Customer.customer_id, _SmsConsent.channel == "sms"))
        .outerjoin(_EmailConsent, and_(_EmailConsent.customer_id == Customer.customer_id,
                                       _EmailConsent.channel == "email"))
        .where(Customer.customer_id.in_(customer_ids)))
    return {cid: {"do_not_contact": bool(dnc), "sms": bool(sms), "email": bool(email)}
            for cid, dnc, sms, email in rows}


_MESSAGES = table_of(Message)
_SUPPRESS = (update(_MESSAGES)
             .where(_MESSAGES.c.id == bindparam("m_id"), _MESSAGES.c.status == "sending")
             .values(status="suppressed", suppressed_reason=bindparam("m_reason"), claimed_by=None,
                     claim_expires_at=None))
_RESCHEDULE = (update(_MESSAGES)
               .where(_MESSAGES.c.id == bindparam("m_id"), _MESSAGES.c.status == "sending")
               .values(status="scheduled", due_at=bindparam("m_due"), claimed_by=None, claim_expires_at=None,
                       attempts=_MESSAGES.c.attempts - 1))


def suppress_claimed(conn: Connection, reasons: Sequence[tuple[int, str]]) -> None:
    """Claimed messages the policy now refuses become suppressed, with the reason (by primary key)."""
    if reasons:
        conn.execute(_SUPPRESS, [{"m_id": i, "m_reason": r} for i, r in reasons])


def reschedule_claimed(conn: Connection, due: Sequence[tuple[int, dt.datetime]]) -> None:
    """Claimed messages outside their sending window wait for it; the claim was not an attempt."""
    if due:
        conn.execute(_RESCHEDULE, [{"m_id": i, "m_due": d} for i, d in due])
