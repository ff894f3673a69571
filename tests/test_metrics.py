"""GET /metrics after a run and a send: every family a bank's operators alert on, with its values
checked against what the run report, the outbox and the delivery worker say; a token guards it
when configured; counts from several processes add up (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from campaign_engine.api import create_app
from campaign_engine.delivery.channels import build_channels
from campaign_engine.delivery.factory import build_delivery_worker
from campaign_engine.delivery.worker import DeliveryWorker
from campaign_engine.pipeline import ScheduledRunRequest, start_run
from campaign_engine.pipeline.retry import RetryRequest, retry_messages
from campaign_engine.scheduler import fire
from campaign_engine.store import apikeys
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, TODAY, customer, deposit, publish_rules

SCRAPED_AT = NOW + dt.timedelta(seconds=90)


def scrape(client: Any, **kw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", **kw)
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def bank(settings, engine, tmp_path):
    channels = {"sms": {"type": "file", "path": str(tmp_path / "sms.jsonl")},
                "email": {"type": "file", "path": str(tmp_path / "email.jsonl")}}
    settings = settings.replace(channels=channels, send_rates={}, quiet_hours={})
    with engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [
            customer("C1", birth_date=dt.date(1980, 3, 10), mobile="13800000001", rate_sensitive=True),
            customer("C2", birth_date=dt.date(1975, 3, 10), mobile="13800000002", sms_consent=False, email_consent=False),
            customer("C3", name="王芳", tier="regular", birth_date=dt.date(1990, 3, 10), mobile="13800000003",
                     email="wang.fang@example.com", aum=Decimal("10000"))], now=NOW, source="test")
        upsert_rows(conn, "deposits", [deposit("D1", "C1")], now=NOW, source="test")
        admin = apikeys.create_key(conn, name="ops", role="admin", now=NOW)[1]
    publish_rules(settings)
    app = create_app(settings, clock=lambda: SCRAPED_AT)
    yield app, settings, admin
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def test_metrics_after_a_run_and_a_send_carry_the_values_the_reports_show(bank, engine):
    app, settings, admin = bank
    client = app.test_client()
    services = app.extensions["campaign"].runtime.services
    before = scrape(client)
    report = start_run(services, ScheduledRunRequest(TODAY), now=NOW)
    rules = {r.rule: r for r in report.rules}
    queued = sum(r.queued for r in report.rules)
    assert queued >= 2 and rules["birthday-greeting"].suppressed["no_consent"] == 1
    mid = scrape(client)
    assert value(mid, "campaign_runs", kind="scheduled", status="completed") == 1
    assert value(mid, "campaign_runs_closed_total", kind="scheduled", status="completed") - value(
        before, "campaign_runs_closed_total", kind="scheduled", status="completed") == 1
    assert value(mid, "campaign_run_duration_seconds_count", kind="scheduled") - value(
        before, "campaign_run_duration_seconds_count", kind="scheduled") == 1
    assert value(mid, "campaign_shard_duration_seconds_count", status="completed") > value(
        before, "campaign_shard_duration_seconds_count", status="completed")
    for rule, stats in rules.items():
        for family, expected in (("candidates", stats.candidates), ("matched", stats.matched),
                                 ("queued", stats.queued + stats.scheduled + stats.tasks)):
            name = f"campaign_rule_{family}_total"
            assert value(mid, name, rule=rule) - value(before, name, rule=rule) == expected, (rule, family)
        for reason, n in stats.suppressed.items():
            name = "campaign_rule_suppressed_total"
            assert value(mid, name, rule=rule, reason=reason) - value(before, name, rule=rule, reason=reason) == n
    by_channel = {"sms": 0, "email": 0}
    with engine.connect() as conn:
        from sqlalchemy import func, select

        from campaign_engine.store.models import Message
        for channel, n in conn.execute(select(Message.channel, func.count()).where(Message.status == "queued")
                                       .group_by(Message.channel)):
            by_channel[channel] = n
    for channel, n in by_channel.items():
        assert value(mid, "campaign_outbox_messages", status="queued", channel=channel) == n
    assert value(mid, "campaign_outbox_oldest_due_age_seconds", channel="sms") == 90  # due at NOW, scraped 90 s on

    delivery = build_delivery_worker(settings, services.db, clock=lambda: NOW)
    try:
        counts = delivery.worker.run_once()
    finally:
        delivery.close()
    assert counts["sent"] == queued
    # an opt-out through the API, and a scheduled rule's fire
    assert client.put("/api/v1/customers/C3/consents/email", json={"granted": False, "source": "branch form"},
                      headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    fire(services, "holiday-greeting", owner="test", now=NOW)
    assert client.get("/api/v1/no-such-thing").status_code == 404
    after = scrape(client)
    sent = {ch: value(after, "campaign_sends_total", channel=ch, outcome="sent")
            - value(before, "campaign_sends_total", channel=ch, outcome="sent") for ch in ("sms", "email")}
    assert sent == by_channel
    assert sum(value(after, "campaign_send_latency_seconds_count", channel=ch)
               - value(before, "campaign_send_latency_seconds_count", channel=ch) for ch in sent) == queued
    assert value(after, "campaign_outbox_messages", status="queued", channel="sms") == 0
    assert ("campaign_outbox_oldest_due_age_seconds", (("channel", "sms"),)) not in after  # nothing waits
    assert value(after, "campaign_opt_outs_total", route="api", channel="email") - value(
        before, "campaign_opt_outs_total", route="api", channel="email") == 1
    assert value(after, "campaign_scheduler_last_fire_timestamp_seconds", rule="holiday-greeting") == NOW.timestamp()
    assert value(after, "campaign_api_requests_total", endpoint="customers.put_consent", method="PUT",
                 status="200") - value(before, "campaign_api_requests_total", endpoint="customers.put_consent",
                                       method="PUT", status="200") == 1
    assert value(after, "campaign_api_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    assert value(after, "campaign_database_up") == 1


def test_a_down_gateway_pauses_its_channel_and_an_operator_retry_is_counted(bank, engine):
    app, settings, _ = bank
    client = app.test_client()
    services = app.extensions["campaign"].runtime.services
    run_id = start_run(services, ScheduledRunRequest(TODAY), now=NOW).run_id
    before = scrape(client)
    down = build_channels({"sms": {"type": "http_sms", "url": "http://127.0.0.1:9/send", "timeout": 1}})
    worker = DeliveryWorker(services.db, {"sms": down["sms"]}, clock=lambda: NOW, pause_after=1, max_attempts=1)
    counts = worker.run_once()
    worker.close()
    assert counts["failed"] >= 1
    after = scrape(client)
    assert value(after, "campaign_channel_paused", channel="sms") == 1
    assert value(after, "campaign_sends_total", channel="sms", outcome="failed") - value(
        before, "campaign_sends_total", channel="sms", outcome="failed") == counts["failed"]
    retried = retry_messages(services, RetryRequest(run_id=run_id), now=NOW, actor="test").retried
    assert retried == counts["failed"]
    assert value(scrape(client), "campaign_retries_requested_total") - value(
        before, "campaign_retries_requested_total") == retried


def test_metrics_need_the_token_when_one_is_configured(settings, engine):
    publish_rules(settings)
    app = create_app(settings.replace(metrics_token="s3cret-scrape"), clock=lambda: NOW)
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        scrape(client, headers={"Authorization": "Bearer s3cret-scrape"})
    finally:
        app.extensions["campaign"].runtime.close()


def test_counts_from_several_processes_add_up_in_multiprocess_mode(tmp_path, database_url):
    """What gunicorn's workers do under `serve`: each counts in its own files; a scrape sums them."""
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    count = textwrap.dedent("""
        from campaign_engine import metrics
        metrics.record_sends("sms", {"sent": 3, "failed": 1})
        metrics.record_opt_out("sms_reply", "sms")
    """)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    show = textwrap.dedent(f"""
        import datetime as dt, json
        from prometheus_client.parser import text_string_to_metric_families
        from campaign_engine import metrics
        from campaign_engine.store.db import make_engine
        body = metrics.render(make_engine({database_url!r}), lambda: dt.datetime.now(dt.timezone.utc)).decode()
        print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(body)
                          for s in f.samples]))
    """)
    out = subprocess.run([sys.executable, "-c", show], env=env, check=True, timeout=60, capture_output=True,
                         text=True).stdout
    samples = {(name, tuple(sorted(labels.items()))): v for name, labels, v in json.loads(out)}
    assert samples[("campaign_sends_total", (("channel", "sms"), ("outcome", "sent")))] == 6
    assert samples[("campaign_sends_total", (("channel", "sms"), ("outcome", "failed")))] == 2
    assert samples[("campaign_opt_outs_total", (("channel", "sms"), ("route", "sms_reply")))] == 2
    assert samples[("campaign_database_up", ())] == 1
