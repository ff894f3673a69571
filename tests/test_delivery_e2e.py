"""The whole delivery path with real peers: rules -> outbox -> worker -> the local SMS gateway
process -> signed delivery receipts back to the running API -> message states."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from campaign_engine.api import create_app
from campaign_engine.delivery.channels import build_channel
from campaign_engine.delivery.presend import presend_check
from campaign_engine.delivery.worker import DeliveryWorker

from campaign_engine.store.models import Message
from factories import NOW, TODAY, customer, rule_yaml, run_day
from test_delivery_channels import start_gateway

SEND_AT = NOW  # 09:00 in Shanghai: inside the SMS window


@pytest.fixture
def api_server(world):
    """The API on a real local port, so the gateway process can post receipts to it."""
    world.publish()
    app = create_app(world.settings, clock=lambda: SEND_AT)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def test_delivery_through_the_gateway_with_receipts(world, api_server, tmp_path):
    world.rule("s.yaml", rule_yaml("notice", "  customer.tier: gold\n", category="service", channels="[sms]"))
    # The gateway answers by the number's last digit: 0 success, 3 accepted then receipt failed,
    # 5 invalid number (400), 6 unavailable (503).
    world.add("customers", *(customer(f"C{d}", mobile=f"1390000000{d}") for d in (0, 3, 5, 6)))
    run_day(world.services(), today=TODAY, now=NOW)
    gateway = start_gateway(tmp_path, "--receipt-url", f"{api_server}/api/v1/receipts/http_sms",
                            "--receipt-secret", world.settings.webhooks["http_sms"]["secret"])
    channel = build_channel({"type": "http_sms", "url": gateway.url, "timeout": 2}, name="sms")
    try:
        worker = DeliveryWorker(world.engine, {"sms": channel}, worker_id="e2e", clock=lambda: SEND_AT,
                                before_send=presend_check(world.engine, world.settings, lambda: SEND_AT))
        counts = worker.run_once()
        worker.close()

        def states():
            with world.engine.connect() as conn:
                return {cid: (status, attempts) for cid, status, attempts in conn.execute(
                    select(Message.customer_id, Message.status, Message.attempts))}

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (states()["C0"][0], states()["C3"][0]) != ("delivered", "failed"):
            time.sleep(0.05)
        final = states()
        assert final["C0"] == ("delivered", 1)  # sent, then the receipt said delivered
        assert final["C3"] == ("failed", 1)  # accepted, then the receipt said undelivered
        assert final["C5"] == ("failed", 1)  # invalid number: no retry
        assert final["C6"] == ("queued", 1)  # unavailable: back in the queue for a later attempt
        with world.engine.connect() as conn:
            retry_at, error = conn.execute(select(Message.due_at, Message.error)
                                           .where(Message.customer_id == "C6")).one()
        assert retry_at > SEND_AT and "503" in error
        accepted = gateway.sent()["accepted"]
        assert sorted(r["idempotency_key"].split("|")[2] for r in accepted) == ["C0", "C3"]
        assert counts["claimed"] == 4
    finally:
        channel.close()
        gateway.stop()


def test_delivery_opt_out_between_queuing_and_sending_is_honoured(world, tmp_path):
    from campaign_engine.store.customers import withdraw_marketing

    world.rule("m.yaml", rule_yaml("promo", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C0", mobile="13900000000"), customer("C1", mobile="13900000001"))
    run_day(world.services(), today=TODAY, now=NOW)
    with world.engine.begin() as conn:  # C1 replies TD before the worker gets to it
        withdraw_marketing(conn, "C1", "sms", source="sms-reply", now=NOW + dt.timedelta(minutes=1))
    gateway = start_gateway(tmp_path)
    channel = build_channel({"type": "http_sms", "url": gateway.url, "timeout": 2}, name="sms")
    try:
        DeliveryWorker(world.engine, {"sms": channel}, worker_id="e2e", clock=lambda: SEND_AT,
                       before_send=presend_check(world.engine, world.settings, lambda: SEND_AT)).run_once()
        assert [r["recipient"] for r in gateway.sent()["accepted"]][0].endswith("0000")
        assert len(gateway.sent()["accepted"]) == 1
    finally:
        channel.close()
        gateway.stop()
