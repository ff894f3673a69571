"""The second look before sending: what changed since queuing is honoured."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from campaign_engine.delivery.presend import presend_check
from campaign_engine.store import claims, outbox, suppression
from campaign_engine.store import runs as run_store
from campaign_engine.store.customers import set_consent
from campaign_engine.store.models import Customer, Message
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, TODAY, customer

DAYTIME = NOW  # 09:00 in Shanghai
NIGHT = dt.datetime(2026, 3, 10, 14, 30, tzinfo=dt.timezone.utc)  # 22:30 in Shanghai


def setup(engine, *specs):
    """Customers C1..C3 and one queued message per (customer, channel, category)."""
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer("C1"), customer("C2"), customer("C3")], now=NOW, source="t")
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=TODAY, dry_run=False, now=NOW)
        for n, (cid, channel, category) in enumerate(specs):
            outbox.insert_messages(conn, [{
                "dedupe_key": f"k{n}", "run_id": run_id, "rule_id": "r", "category": category, "priority": 50,
                "customer_id": cid, "subject_type": "customer", "subject_id": cid, "channel": channel,
                "recipient": "13800000000" if channel == "sms" else f"{cid.lower()}@example.com",
                "status": "queued", "subject": None, "body": "b", "html": None, "sms_segments": 1, "error": None,
                "consent_source": None, "consent_at": None, "created_at": NOW, "due_at": NOW}])


def claim(engine, now):
    with engine.begin() as conn:
        return claims.claim_due(conn, worker="w", now=now, limit=100, lease=dt.timedelta(minutes=5),
                                channels=["sms", "email"])


def states(engine):
    with engine.connect() as conn:
        return {k: (s, r) for k, s, r in conn.execute(
            select(Message.dedupe_key, Message.status, Message.suppressed_reason))}


def test_presend_suppresses_what_changed_since_queuing(engine, settings):
    setup(engine, ("C1", "sms", "marketing"), ("C1", "sms", "service"), ("C2", "email", "marketing"),
          ("C3", "email", "service"))
    with engine.begin() as conn:
        set_consent(conn, "C1", "sms", granted=False, source="reply TD", now=NOW)  # withdrawn after queuing
        suppression.add(conn, channel="email", address="C2@example.com", reason="bounced", source="t", now=NOW)
        conn.execute(update(Customer).where(Customer.customer_id == "C3").values(do_not_contact=True))
    rows = claim(engine, DAYTIME)
    kept = presend_check(engine, settings, lambda: DAYTIME)(rows)
    assert [r["dedupe_key"] for r in kept] == ["k1"]  # a service SMS needs no marketing consent
    assert states(engine) == {"k0": ("suppressed", "opted_out"), "k1": ("sending", None),
                              "k2": ("suppressed", "suppression_list"), "k3": ("suppressed", "do_not_contact")}


def test_presend_holds_sms_at_night_until_the_window_opens(engine, settings):
    setup(engine, ("C1", "sms", "service"), ("C1", "email", "service"))
    rows = claim(engine, NIGHT)
    kept = presend_check(engine, settings, lambda: NIGHT)(rows)
    assert [r["channel"] for r in kept] == ["email"]
    with engine.connect() as conn:
        status, due, attempts = conn.execute(select(Message.status, Message.due_at, Message.attempts)
                                             .where(Message.dedupe_key == "k0")).one()
    assert (status, due, attempts) == ("scheduled", dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.timezone.utc), 0)


def test_unsubscribe_link_only_for_marketing_email(settings):
    from campaign_engine.delivery.presend import unsubscribe_link
    from campaign_engine.unsubscribe import read_token

    link = unsubscribe_link(settings)
    url = link({"category": "marketing", "channel": "email", "customer_id": "C1"})
    assert url.startswith(settings.public_base_url + "/u/")
    assert read_token(settings.secret_key, url.rsplit("/", 1)[1]) == ("C1", "email")
    assert link({"category": "service", "channel": "email", "customer_id": "C1"}) is None
    assert link({"category": "marketing", "channel": "sms", "customer_id": "C1"}) is None
