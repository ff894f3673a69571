"""A mobile a manager flagged `wrong_number` (issue #12): it is someone else's phone, so neither the
manager's calls nor any SMS go to it (the SMS would carry the customer's account tail and amount),
reported `wrong_number`, until `suppress remove call MOBILE` lifts the flag. `suppress add|remove|list`
take channel `call` as they take sms and email, audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from campaign_engine.cli import main
from campaign_engine.delivery.presend import presend_check
from campaign_engine.policy import ConsentRecord, Contact, decide_contact
from campaign_engine.store import claims, outbox, suppression
from campaign_engine.store import runs as run_store
from campaign_engine.store.models import AuditEntry, Manager, Message, SuppressedAddress, Task
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.vocabulary import Category, Channel, EventType, SuppressionReason, TaskOutcome
from factories import NOW, PRODUCTS, TODAY, customer, deposit, fire_event, publish_rules, run_day

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MOBILE = "13900000002"


@pytest.fixture
def cli(settings, engine):
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, "CAMPAIGN_ENGINE_APPROVAL": "off"}

    def invoke(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def contact(**changes: Any) -> Contact:
    granted = ConsentRecord(True, "branch form")
    base = dict(mobile=MOBILE, email="c1@example.com", do_not_contact=False, risk_rank=3,
                consents={Channel.SMS: granted, Channel.EMAIL: granted, Channel.CALL: granted,
                          Channel.VISIT: granted})
    return Contact(**{**base, **changes})  # type: ignore[arg-type]


def decide(channels: list[Channel], **changes: Any):
    return decide_contact(contact(**changes), category=Category.MARKETING, channels=channels,
                          template_channels=[c.value for c in channels], product_risk_rank=None)


def test_policy_a_wrong_number_stops_calls_and_sms_not_email_or_visits():
    assert decide([Channel.CALL, Channel.SMS], wrong_number=True).suppressed is SuppressionReason.WRONG_NUMBER
    assert decide([Channel.SMS], wrong_number=True).suppressed is SuppressionReason.WRONG_NUMBER
    assert decide([Channel.SMS, Channel.EMAIL], wrong_number=True).channel is Channel.EMAIL
    assert decide([Channel.VISIT], wrong_number=True).channel is Channel.VISIT
    assert decide([Channel.SMS]).channel is Channel.SMS
    # a plain call suppression (not a wrong number): calls stop, SMS do not
    assert decide([Channel.CALL, Channel.SMS], blocked=frozenset({Channel.CALL})).channel is Channel.SMS


def test_the_list_blocks_sms_to_a_mobile_flagged_wrong_number_only(engine):
    with engine.begin() as conn:
        suppression.add(conn, channel="call", address="+86 139-0000-0002", reason="wrong_number", source="task:1",
                        now=NOW)
        suppression.add(conn, channel="call", address="13900000003", reason="complaint", source="cli", now=NOW)
        pairs = [("sms", MOBILE), ("call", MOBILE), ("wrong_number", MOBILE), ("sms", "13900000003"),
                 ("call", "13900000003"), ("wrong_number", "13900000003"), ("sms", "13900000004")]
        assert suppression.blocked(conn, pairs) == {("sms", MOBILE), ("call", MOBILE), ("wrong_number", MOBILE),
                                                    ("call", "13900000003")}
        assert suppression.blocked(conn, [("sms", "+86 139 0000 0002")]) == {("sms", "+86 139 0000 0002")}


def _bank(settings, engine):
    from campaign_engine.bootstrap import open_services

    with engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [customer("C1", tier="diamond", manager_id="M1", mobile=MOBILE, email=None,
                                                 phone_consent=True)], now=NOW, source="test")
        upsert_rows(conn, "deposits", [deposit("D1", "C1", maturity_date=dt.date(2026, 3, 20))], now=NOW,
                    source="test")
        conn.execute(insert(Manager).values(manager_id="M1", name="陈静", branch="北京分行", mobile="13900000000",
                                            email="m1@bank.example", daily_call_capacity=25, daily_visit_capacity=4,
                                            active=True, updated_at=NOW, source="test"))
    assert all(d["status"] == "live" for d in publish_rules(settings))
    return open_services(settings)


def _move(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": "C1", "account_no": "6222020012345678", "amount": 800000,
            "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}


def _rule(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == rule_id)


def test_wrong_number_suppresses_the_sms_until_the_flag_is_removed(settings, engine, cli):
    from campaign_engine.pipeline.tasks import OutcomeRequest, Viewer, record_outcome

    services = _bank(settings, engine)
    try:
        fire_event(services, EventType.LARGE_TRANSACTION, _move("lt-1"), now=dt.datetime(2026, 3, 10, 9, 40,
                                                                                          tzinfo=SHANGHAI))
        with engine.connect() as conn:
            [task_id] = conn.execute(select(Task.id)).scalars().all()
        record_outcome(services, task_id, OutcomeRequest(TaskOutcome.WRONG_NUMBER, note="号码是别人的"),
                       Viewer("key:m1#1", "manager", "M1"), now=dt.datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI))

        # the flag, as `suppress list` shows it
        listed = cli("suppress", "list")
        assert listed.exit_code == 0 and f"call  {MOBILE}" in listed.output
        assert f"wrong_number (task:{task_id}" in listed.output

        # the next SMS rule for the customer (the service maturity reminder) is suppressed, and says why
        flagged = run_day(services, today=dt.date(2026, 3, 16), now=dt.datetime(2026, 3, 16, 9, 0, tzinfo=SHANGHAI),
                          rule_ids=["td-maturity-reminder"])
        assert _rule(flagged, "td-maturity-reminder")["suppressed"] == {"wrong_number": 1}
        # and a new large transfer: neither the call nor its SMS fallback
        moved = fire_event(services, EventType.LARGE_TRANSACTION, _move("lt-2"),
                           now=dt.datetime(2026, 4, 14, 9, 40, tzinfo=SHANGHAI))
        assert _rule(moved, "large-transaction-call")["suppressed"] == {"wrong_number": 1}
        with engine.connect() as conn:
            assert conn.execute(select(Message.id)).all() == []

        # the manager (or the operator) learns the number is right after all: the flag goes
        removed = cli("suppress", "remove", "call", MOBILE)
        assert removed.exit_code == 0, removed.output
        assert f"call {MOBILE} removed" in removed.output
        assert MOBILE not in cli("suppress", "list").output
        assert cli("suppress", "remove", "call", MOBILE).exit_code == 2  # nothing left to remove

        again = run_day(services, today=dt.date(2026, 3, 17), now=dt.datetime(2026, 3, 17, 9, 0, tzinfo=SHANGHAI),
                        rule_ids=["td-maturity-reminder"])
    finally:
        services.close()
    reminder = _rule(again, "td-maturity-reminder")
    assert reminder["suppressed"] == {} and reminder["queued"] + reminder["scheduled"] == 1
    with engine.connect() as conn:
        [(channel, recipient, rule_id)] = conn.execute(select(Message.channel, Message.recipient, Message.rule_id)).all()
        actions = [(a.action, a.target) for a in conn.execute(select(AuditEntry).order_by(AuditEntry.id))]
    assert (channel, recipient, rule_id) == ("sms", MOBILE, "td-maturity-reminder")
    assert ("suppression.add", "call") in actions and ("suppression.remove", "call") in actions


def test_suppress_add_and_remove_take_call(cli, engine):
    added = cli("suppress", "add", "call", "+86 139-0000-0005", "--reason", "wrong_number")
    assert added.exit_code == 0 and "call 13900000005 suppressed" in added.output
    with engine.connect() as conn:
        row = conn.execute(select(SuppressedAddress)).one()
        assert suppression.blocked(conn, [("sms", "13900000005")]) == {("sms", "13900000005")}
        audit = conn.execute(select(AuditEntry).where(AuditEntry.action == "suppression.add")).one()
    assert (row.channel, row.address, row.reason, row.source) == ("call", "13900000005", "wrong_number", "cli")
    assert (audit.target, audit.details) == ("call", {"reason": "wrong_number"})
    assert "call  13900000005" in cli("suppress", "list").output
    assert cli("suppress", "remove", "call", "13900000005").exit_code == 0
    assert cli("suppress", "add", "fax", "1", "--reason", "x").exit_code == 2  # still a choice of channels


def test_an_sms_queued_before_the_flag_is_suppressed_before_sending(engine, settings):
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer("C1", mobile=MOBILE)], now=NOW, source="t")
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=TODAY, dry_run=False, now=NOW)
        outbox.insert_messages(conn, [{
            "dedupe_key": "k0", "run_id": run_id, "rule_id": "r", "category": "service", "priority": 50,
            "customer_id": "C1", "subject_type": "customer", "subject_id": "C1", "channel": "sms",
            "recipient": MOBILE, "status": "queued", "subject": None, "body": "b", "html": None, "sms_segments": 1,
            "error": None, "consent_source": None, "consent_at": None, "created_at": NOW, "due_at": NOW}])
        suppression.add(conn, channel="call", address=MOBILE, reason="wrong_number", source="task:9", now=NOW)
    with engine.begin() as conn:
        rows = claims.claim_due(conn, worker="w", now=NOW, limit=10, lease=dt.timedelta(minutes=5),
                                channels=["sms"])
    assert presend_check(engine, settings, lambda: NOW)(rows) == []
    with engine.connect() as conn:
        assert conn.execute(select(Message.status, Message.suppressed_reason)).one() == ("suppressed",
                                                                                        "wrong_number")
