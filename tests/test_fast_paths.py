"""The batch's fast paths give what the plain paths gave: rendering with flattened globals, the
SQLite outbox insert by executemany, a batch's values as one JSON parameter on SQLite, facts
without the birthday fields for a rule that never reads them, the contact state's per-batch caches."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import jinja2
import pytest
from sqlalchemy import select

from campaign_engine.errors import TemplateError
from campaign_engine.facts.namespaces import customer_facts
from campaign_engine.pipeline.batch import ContactState
from campaign_engine.policy.caps import Cap
from campaign_engine.rendering.environment import _render_template, build_environment, load_template_set, render_message
from campaign_engine.settings import load_settings
from campaign_engine.store import outbox
from campaign_engine.store import runs as run_store
from campaign_engine.store.bulk import one_of
from campaign_engine.store.models import Customer, Message
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.vocabulary import Channel
from factories import NOW, customer

TEMPLATES = {
    "t/sms.txt.j2": ("{%- set name = customer.name | salutation(customer.gender) -%}"
                     "{{ name }}，{% for i in range(2) %}{{ i }}{% endfor %}{{ calendar.festival or '佳节' }}"
                     "{% if customer.vip %}!{% endif %}"),
    "bad/sms.txt.j2": "第一行\n{{ customer.missing }}\n",
}


@pytest.fixture
def env() -> jinja2.Environment:
    return build_environment(TEMPLATES)


@pytest.mark.parametrize("context", [
    {"customer": {"name": "张三", "gender": "M", "vip": True}, "calendar": {"festival": "春节"}},
    {"customer": {"name": "", "gender": None, "vip": False}, "calendar": {"festival": None}},
    {"customer": {"name": "Ann Lee", "gender": "F", "vip": 0}, "calendar": {"festival": "端午"}, "range": lambda n: ["x"] * n},
])
def test_rendering_with_flattened_globals_equals_template_render(env: jinja2.Environment,
                                                                 context: dict[str, object]) -> None:
    template = env.get_template("t/sms.txt.j2")
    assert _render_template(template, context) == template.render(context)
    assert _render_template(template, context) == template.render(context)  # the cached globals again


def test_a_failing_render_still_names_its_template_line(env: jinja2.Environment) -> None:
    templates = load_template_set(env, "bad")
    with pytest.raises(TemplateError) as failed:
        render_message(templates, "sms", {"customer": {}}, signature="【XX银行】", opt_out=None)
    assert failed.value.line == 2
    assert "customer.missing" in str(failed.value)


def test_the_sandbox_still_refuses_unsafe_attributes(env: jinja2.Environment) -> None:
    template = build_environment({"x/sms.txt.j2": "{{ customer.__class__.__mro__ }}"}).get_template("x/sms.txt.j2")
    with pytest.raises(jinja2.exceptions.SecurityError):
        _render_template(template, {"customer": {}})


def test_customer_facts_leave_the_birthday_fields_out_only_when_asked() -> None:
    row = {"customer_id": "C1", "birth_date": dt.date(1980, 3, 12), "risk_level": "C3"}
    full = customer_facts(row, dt.date(2026, 3, 10), sms_consent=True, email_consent=False)
    assert full["age"] == 45 and full["days_to_birthday"] == 2 and full["holds"] == []
    lean = customer_facts(row, dt.date(2026, 3, 10), sms_consent=True, email_consent=False, birthday=False)
    assert "age" not in lean and "days_to_birthday" not in lean
    assert {k: v for k, v in full.items() if k not in ("age", "days_to_birthday")} == lean


def _message(run_id: int, key: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "dedupe_key": key, "run_id": run_id, "rule_id": "greet", "rule_version": 1, "category": "marketing",
        "priority": 50, "customer_id": "C1", "subject_type": "customer", "subject_id": "C1", "channel": "sms",
        "recipient": "13800000000", "status": "queued", "held_out_by": None, "subject": None, "body": "正文",
        "html": None, "sms_segments": 1, "error": None, "consent_source": "test",
        "consent_at": NOW - dt.timedelta(days=3), "created_at": NOW, "due_at": NOW + dt.timedelta(hours=1)}
    row.update(changes)
    return row


def test_sqlite_outbox_insert_says_which_rows_went_in_and_stores_what_an_insert_would(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite path")
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer("C1")], now=NOW, source="test")
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=NOW.date(), dry_run=False, now=NOW)
        assert outbox.insert_messages(conn, [_message(run_id, "k1"), _message(run_id, "k2")]) == {"k1", "k2"}
    with engine.begin() as conn:  # k2 is there already: only k3 goes in
        assert outbox.insert_messages(conn, [_message(run_id, "k2", body="又一条"), _message(run_id, "k3")]) == {"k3"}
    with engine.begin() as conn:
        assert outbox.insert_messages(conn, [_message(run_id, "k1")]) == set()
    with engine.connect() as conn:
        rows = {r.dedupe_key: r for r in conn.execute(select(Message))}
    assert sorted(rows) == ["k1", "k2", "k3"]
    assert rows["k2"].body == "正文"  # never written over
    k1 = rows["k1"]
    assert (k1.attempts, k1.retries, k1.history) == (0, 0, [])
    assert k1.created_at == NOW and k1.due_at == NOW + dt.timedelta(hours=1)
    assert k1.consent_at == NOW - dt.timedelta(days=3) and k1.created_at.tzinfo is not None


def test_sqlite_outbox_insert_refuses_a_naive_datetime(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite path")
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer("C1")], now=NOW, source="test")
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=NOW.date(), dry_run=False, now=NOW)
    with pytest.raises(Exception, match="naive datetime"):
        with engine.begin() as conn:
            outbox.insert_messages(conn, [_message(run_id, "k1", created_at=dt.datetime(2026, 3, 10, 9))])


@pytest.mark.parametrize("n", [0, 1, 31, 33, 2500])
def test_one_of_finds_what_in_finds_for_any_batch_size(engine, n: int) -> None:
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [customer(f"C{i}") for i in range(1, 60)], now=NOW, source="test")
    wanted = [f"C{i}" for i in range(n)] + ["C1"] * (n > 0)
    with engine.connect() as conn:
        found = set(conn.execute(select(Customer.customer_id)
                                 .where(one_of(conn, Customer.customer_id, wanted))).scalars())
    assert found == {f"C{i}" for i in range(1, min(n, 60))} | ({"C1"} if n else set())


def test_contact_state_caches_agree_with_the_caps() -> None:
    base = load_settings(env={})
    now = dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.timezone.utc)
    state = ContactState(planned={("C1", "sms"): [now - dt.timedelta(hours=1)]}, blocked=set())
    assert state.capped(base, "C1", Channel.SMS, now) is True  # one a day: C1 has today's
    assert state.capped(base, "C2", Channel.SMS, now) is False
    assert state.capped(base, "C3", Channel.SMS, now) is False  # the cached answer for the unplanned
    closed = ContactState(planned={}, blocked=set())
    strict = replace(base, frequency_caps=(Cap(days=1, max=0),))  # max 0: nobody, planned or not
    assert closed.capped(strict, "C2", Channel.SMS, now) is True
    assert closed.capped(strict, "C3", Channel.SMS, now) is True
    assert closed.due_at(base, Channel.SMS, now) == closed.due_at(base, Channel.SMS, now)
