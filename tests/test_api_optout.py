"""The three opt-out routes (SMS reply, unsubscribe link, consent API) and delivery receipts."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from campaign_engine.api import create_app
from campaign_engine.store import outbox
from campaign_engine.store import runs as run_store
from campaign_engine.store.models import AuditEntry, Consent, Message
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.unsubscribe import make_token, read_token, unsubscribe_url
from factories import NOW, TODAY, customer, publish_rules

SECRET = "dev-webhook-secret"


@pytest.fixture
def client(settings, engine):
    publish_rules(settings)
    app = create_app(settings, clock=lambda: NOW)
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer("C1", mobile="13900000001"),
                                        customer("C2", mobile="13900000002")], now=NOW, source="test")
    yield app.test_client()
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def queue(engine, *specs):
    """Messages (customer, channel, category, status, provider id) in the outbox."""
    with engine.begin() as conn:
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=TODAY, dry_run=False, now=NOW)
        for n, (cid, channel, category, status, provider_id) in enumerate(specs):
            outbox.insert_messages(conn, [{
                "dedupe_key": f"k{n}", "run_id": run_id, "rule_id": "r", "category": category, "priority": 50,
                "customer_id": cid, "subject_type": "customer", "subject_id": cid, "channel": channel,
                "recipient": "x", "status": status, "subject": None, "body": "b", "html": None, "sms_segments": 1,
                "error": None, "consent_source": None, "consent_at": None, "created_at": NOW, "due_at": NOW,
                "provider": "http_sms" if provider_id else None, "provider_message_id": provider_id}])


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Message.dedupe_key, Message.status)).all())


def consent(engine, cid: str, channel: str) -> tuple[bool, str]:
    with engine.connect() as conn:
        return conn.execute(select(Consent.granted, Consent.source).where(
            Consent.customer_id == cid, Consent.channel == channel)).one()._tuple()


def signed(client, path: str, body, *, secret: str = SECRET):
    raw = json.dumps(body, ensure_ascii=False).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post(path, data=raw, content_type="application/json", headers={"X-Signature": signature})


@pytest.mark.parametrize("reply", ["TD", " td ", "退订", "T", "STOP", "R"])
def test_optout_sms_reply_keyword_withdraws_sms_consent_and_suppresses_queued(client, engine, reply):
    queue(engine, ("C1", "sms", "marketing", "queued", None), ("C1", "sms", "service", "queued", None),
          ("C1", "email", "marketing", "queued", None), ("C2", "sms", "marketing", "queued", None))
    resp = signed(client, "/api/v1/inbound/sms/http_sms", {"from": "+86 139 0000 0001", "text": reply})
    assert resp.status_code == 200 and resp.get_json()["opted_out"] == ["C1"]
    assert consent(engine, "C1", "sms")[0] is False
    assert consent(engine, "C1", "sms")[1].startswith("sms-reply:http_sms")
    assert statuses(engine) == {"k0": "suppressed", "k1": "queued", "k2": "queued", "k3": "queued"}


def test_optout_sms_reply_other_text_changes_nothing(client, engine):
    resp = signed(client, "/api/v1/inbound/sms/http_sms", {"from": "13900000001", "text": "谢谢"})
    assert resp.get_json() == {"opted_out": [], "keyword": None}
    assert consent(engine, "C1", "sms")[0] is True


def test_optout_sms_reply_with_a_bad_signature_is_refused(client, engine):
    resp = signed(client, "/api/v1/inbound/sms/http_sms", {"from": "13900000001", "text": "TD"}, secret="wrong")
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized"
    assert consent(engine, "C1", "sms")[0] is True
    assert signed(client, "/api/v1/inbound/sms/nobody", {"from": "1", "text": "TD"}).status_code == 404


def test_optout_unsubscribe_link_get_shows_a_page_and_post_unsubscribes(client, engine, settings):
    queue(engine, ("C1", "email", "marketing", "scheduled", None), ("C1", "email", "service", "queued", None))
    url = unsubscribe_url("", settings.secret_key, "C1", "email")
    page = client.get(url)
    assert page.status_code == 200 and "确认退订" in page.get_data(as_text=True)
    assert "Unsubscribe" in page.get_data(as_text=True)
    assert consent(engine, "C1", "email")[0] is True  # a link scanner's GET changes nothing
    done = client.post(url, data={"List-Unsubscribe": "One-Click"})
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and "您已成功退订" in text and "You are unsubscribed" in text
    assert consent(engine, "C1", "email") == (False, "unsubscribe-link:email")
    assert statuses(engine) == {"k0": "suppressed", "k1": "queued"}
    with engine.connect() as conn:
        entries = conn.execute(select(AuditEntry.action, AuditEntry.target)
                               .where(AuditEntry.actor != "cli:fixture")).all()  # not the fixture's publish
        assert entries == [("consent.withdraw", "C1:email")]


def test_optout_unsubscribe_link_tampered_is_refused(client, engine, settings):
    token = make_token(settings.secret_key, "C1", "email")
    forged = make_token("another-secret", "C2", "email")
    assert read_token(settings.secret_key, token) == ("C1", "email")
    assert read_token(settings.secret_key, forged) is None
    assert client.post(f"/u/{forged}").status_code == 404
    assert client.get("/u/garbage").status_code == 404
    assert consent(engine, "C2", "email")[0] is True


def test_receipts_mark_messages_delivered_or_failed(client, engine):
    queue(engine, ("C1", "sms", "service", "sent", "gw-1"), ("C2", "sms", "service", "sent", "gw-2"),
          ("C2", "sms", "service", "sending", "gw-3"))
    resp = signed(client, "/api/v1/receipts/http_sms", [
        {"provider_message_id": "gw-1", "status": "DELIVRD"},
        {"provider_message_id": "gw-2", "status": "UNDELIV", "error_code": "absent subscriber"},
        {"provider_message_id": "gw-3", "status": "delivered"},
        {"provider_message_id": "gw-9", "status": "delivered"}])
    assert resp.get_json() == {"updated": 3, "unknown": ["gw-9"]}
    assert statuses(engine) == {"k0": "delivered", "k1": "failed", "k2": "delivered"}
    with engine.connect() as conn:
        error = conn.execute(select(Message.error).where(Message.dedupe_key == "k1")).scalar_one()
    assert "absent subscriber" in error


def test_receipts_a_late_failure_does_not_undo_delivered(client, engine):
    queue(engine, ("C1", "sms", "service", "delivered", "gw-1"))
    resp = signed(client, "/api/v1/receipts/http_sms", {"provider_message_id": "gw-1", "status": "failed"})
    assert resp.get_json() == {"updated": 0, "unknown": ["gw-1"]}
    assert statuses(engine) == {"k0": "delivered"}


def test_receipts_unsigned_are_refused(client, engine):
    queue(engine, ("C1", "sms", "service", "sent", "gw-1"))
    resp = client.post("/api/v1/receipts/http_sms", json={"provider_message_id": "gw-1", "status": "delivered"})
    assert resp.status_code == 401
    assert statuses(engine) == {"k0": "sent"}
