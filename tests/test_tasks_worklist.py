"""Working the relationship managers' task list (issue #12): list and show, a manager key's isolation
(another manager's task is 404, never 403), outcomes and their effects (phone consent, the call
suppression list, conversions), 409 and 400, overdue at the SLA, expiry, the daily digest once per
manager and day, the reports, the CLI and the scheduler's sweep. Tasks and managers are written
straight into their tables: this is the list, not the planning."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from campaign_engine.api import create_app
from campaign_engine.pipeline import tasks as worklist
from campaign_engine.store import apikeys, runs
from campaign_engine.store.models import (AuditEntry, CampaignRun, Consent, Conversion, Manager, Message,
                                          SuppressedAddress, Task)
from factories import NOW, customer, rule_yaml, world_cli

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
ROLES = ("viewer", "marketer", "operator", "approver", "auditor", "admin")


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(dt.timezone.utc)


TODAY_10 = local(2026, 3, 10, 10)  # NOW is 09:00 in Shanghai on Tuesday 2026-03-10


class Book:
    """The world's database with managers, a run and helpers to add tasks."""

    def __init__(self, world: Any):
        self.world = world
        self.engine = world.engine
        self._n = 0
        with self.engine.begin() as conn:
            self.run_id = runs.insert_run(conn, kind="event", run_date=NOW.date(), dry_run=False, now=NOW)

    def manager(self, manager_id: str, **overrides: Any) -> None:
        row = dict(manager_id=manager_id, name=f"经理{manager_id}", branch="北京分行", mobile="13900000000",
                   email=f"{manager_id.lower()}@bank.example", daily_call_capacity=25, daily_visit_capacity=5,
                   active=True, updated_at=NOW, source="test")
        row.update(overrides)
        with self.engine.begin() as conn:
            conn.execute(insert(Manager).values(**row))

    def task(self, customer_id: str, manager_id: str | None, **overrides: Any) -> int:
        self._n += 1
        row = dict(dedupe_key=f"followup|{customer_id}|{self._n}", run_id=self.run_id, rule_id="followup",
                   rule_version=1, category="marketing", priority=50, customer_id=customer_id,
                   subject_type="customer", subject_id=customer_id, type="call", manager_id=manager_id,
                   branch="北京分行", status="open", due_at=TODAY_10, created_at=NOW, updated_at=NOW, alerts=1,
                   last_alert_at=NOW, talking_points="王先生本周转入大额资金，可介绍定期存款。")
        row.update(overrides)
        with self.engine.begin() as conn:
            return int(conn.execute(insert(Task).values(**row).returning(Task.id)).scalar_one())

    def row(self, task_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(Task).where(Task.id == task_id)).one()

    def count(self, model: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


@pytest.fixture
def book(world):
    world.rule("followup.yaml", rule_yaml("followup", "  customer.tier: gold\n", channels="[sms]"))
    world.rule("other.yaml", rule_yaml("other", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C1", name="王小明", manager_id="M1", mobile="13812345678"),
              customer("C2", name="李娜", gender="F", manager_id="M2", mobile="13887654321"),
              customer("C3", name="赵强", manager_id=None, mobile="13811112222"))
    world.publish()
    book = Book(world)
    book.manager("M1")
    book.manager("M2")
    return book


@pytest.fixture
def api(book):
    app = create_app(book.world.settings.replace(api_rate_limit=0), clock=lambda: NOW, background_workers=1)
    with book.engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW)[1] for role in ROLES}
        keys["m1"] = apikeys.create_key(conn, name="wang", role="manager", now=NOW, manager_id="M1")[1]
        keys["m2"] = apikeys.create_key(conn, name="li", role="manager", now=NOW, manager_id="M2")[1]

    def call(method: str, path: str, role: str, **kw: Any):  # type: ignore[no-untyped-def]
        return app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {keys[role]}"}, **kw)

    yield call
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


@pytest.fixture
def services(book):
    return book.world.services(publish=False)


def ids(resp: Any) -> list[int]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [t["id"] for t in resp.get_json()["items"]]


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# --------------------------------------------------------------------------- list, show, isolation

def test_list_and_show_a_task_with_masked_mobile_and_local_due_time(api, book):
    own = book.task("C1", "M1")

    task = api("GET", f"/api/v1/tasks/{own}", "viewer").get_json()

    assert task["customer_name"] == "王小明" and task["mobile"] == "138****5678"
    assert (task["rule_id"], task["rule_name"], task["type"], task["type_name"]) == (
        "followup", "测试followup", "call", "电联")
    assert task["due_at"].startswith("2026-03-10T02:00:00") and task["due_local"] == "2026-03-10T10:00:00+08:00"
    assert (task["status"], task["alerts"], task["overdue"], task["outcome"], task["note"]) == ("open", 1, False,
                                                                                                None, None)
    assert task["talking_points"].startswith("王先生") and task["manager_name"] == "经理M1"
    assert api("GET", f"/api/v1/tasks/{own}", "admin").get_json()["mobile"] == "13812345678"
    # operators reveal on a stated reason (audited); a manager may not
    revealed = api("GET", f"/api/v1/tasks/{own}?reveal=contact&reason=callback", "operator").get_json()
    assert revealed["mobile"] == "13812345678"
    error(api("GET", f"/api/v1/tasks/{own}?reveal=contact&reason=x", "m1"), 403)
    assert book.count(AuditEntry, AuditEntry.action == "contact.reveal", AuditEntry.target == f"task:{own}") == 1


def test_a_manager_key_sees_and_closes_only_its_own_tasks(api, book):
    own = book.task("C1", "M1")
    other = book.task("C2", "M2")
    queue = book.task("C3", None)

    assert ids(api("GET", "/api/v1/tasks", "m1")) == [own]
    assert ids(api("GET", "/api/v1/tasks", "m2")) == [other]
    assert sorted(ids(api("GET", "/api/v1/tasks", "viewer"))) == sorted([own, other, queue])
    assert ids(api("GET", "/api/v1/tasks?manager=M1", "m1")) == [own]
    # another manager's list, task, outcome and report: 404 with nothing of theirs in it
    for method, path, kw in (("GET", "/api/v1/tasks?manager=M2", {}), ("GET", f"/api/v1/tasks/{other}", {}),
                             ("GET", f"/api/v1/tasks/{queue}", {}),
                             ("POST", f"/api/v1/tasks/{other}/outcome", {"json": {"outcome": "reached"}}),
                             ("POST", f"/api/v1/tasks/{queue}/outcome", {"json": {"outcome": "reached"}}),
                             ("GET", "/api/v1/tasks/report?manager=M2", {})):
        resp = api(method, path, "m1", **kw)
        body = error(resp, 404)
        assert "李娜" not in resp.get_data(as_text=True) and "13887654321" not in json.dumps(body)
    # the same answer as for a task that does not exist
    assert error(api("GET", "/api/v1/tasks/999999", "m1"), 404)["code"] == "not_found"
    assert book.row(other).status == "open" and book.row(queue).status == "open"
    # queue=true: a manager has no queue tasks; a supervisor lists the branch queue
    assert ids(api("GET", "/api/v1/tasks?queue=true", "m1")) == []
    assert ids(api("GET", "/api/v1/tasks?queue=true&branch=北京分行", "viewer")) == [queue]
    resp = api("POST", f"/api/v1/tasks/{own}/outcome", "m1", json={"outcome": "reached", "note": "已联系"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "done"
    assert book.row(own).completed_by.startswith("key:wang#")


def test_closing_needs_the_manager_an_operator_or_an_admin(api, book):
    tasks = {role: book.task("C1", "M1") for role in ROLES}
    for role in ("viewer", "marketer", "approver", "auditor"):
        assert "may not close tasks" in error(api("POST", f"/api/v1/tasks/{tasks[role]}/outcome", role,
                                                  json={"outcome": "reached"}), 403)["message"]
        assert book.row(tasks[role]).status == "open"
    for role in ("operator", "admin"):
        resp = api("POST", f"/api/v1/tasks/{tasks[role]}/outcome", role, json={"outcome": "not_reached"})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert book.row(tasks[role]).completed_by == f"key:{role}-key#" + book.row(tasks[role]).completed_by.split("#")[1]


def test_list_filters_and_due_order_with_cursor_paging(api, book):
    later = book.task("C1", "M1", due_at=local(2026, 3, 11, 10))
    first = book.task("C1", "M1", due_at=local(2026, 3, 10, 9, 30))
    same_time = [book.task("C2", "M2"), book.task("C3", None)]
    done = book.task("C1", "M1", status="done", outcome="reached", due_at=local(2026, 3, 9, 10))

    everything = ids(api("GET", "/api/v1/tasks", "viewer"))
    assert everything == [done, first, *same_time, later]
    seen, after = [], None
    while True:
        resp = api("GET", "/api/v1/tasks", "viewer", query_string={"limit": 2, **({"after": after} if after else {})})
        seen += ids(resp)
        after = resp.get_json()["next"]
        if after is None:
            break
    assert seen == everything
    assert ids(api("GET", "/api/v1/tasks?status=open&due_before=2026-03-10", "viewer")) == [first, *same_time]
    assert ids(api("GET", "/api/v1/tasks?due_before=2026-03-10T10:00:00%2B08:00", "viewer")) == [done, first]
    assert ids(api("GET", "/api/v1/tasks?manager=M1&status=open", "viewer")) == [first, later]
    assert ids(api("GET", "/api/v1/tasks?customer=C2", "viewer")) == [same_time[0]]
    assert ids(api("GET", f"/api/v1/tasks?run={book.run_id}&rule=followup&limit=1", "viewer")) == [done]
    assert ids(api("GET", "/api/v1/tasks?rule=other", "viewer")) == []
    assert error(api("GET", "/api/v1/tasks?after=12", "viewer"), 400)["details"]["fields"] == {
        "query.after": ["not a cursor this list produced: pass the `next` of the previous page"]}
    assert "query.status" in error(api("GET", "/api/v1/tasks?status=closed", "viewer"), 400)["details"]["fields"]


# --------------------------------------------------------------------------- outcomes and their effects

def test_refused_withdraws_phone_consent_with_source_and_time(api, book):
    task_id = book.task("C1", "M1")

    resp = api("POST", f"/api/v1/tasks/{task_id}/outcome", "m1",
               json={"outcome": "refused", "note": "客户表示不希望电话营销", "next_contact_on": "2026-06-01"})

    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["status"], body["outcome"], body["note"], body["next_contact_on"]) == (
        "done", "refused", "客户表示不希望电话营销", "2026-06-01")
    assert body["completed_at"].startswith("2026-03-10T01:00:00")
    with book.engine.connect() as conn:
        consents = {c.channel: c for c in conn.execute(select(Consent).where(Consent.customer_id == "C1"))}
        audit = {a.action: a for a in conn.execute(select(AuditEntry))}
    phone = consents["phone"]
    assert (phone.granted, phone.source, phone.recorded_at) == (False, f"task:{task_id}", NOW)
    assert consents["sms"].granted and consents["email"].granted  # nothing else withdrawn
    assert book.count(SuppressedAddress) == 0 and book.count(Conversion) == 0
    assert audit["tasks.outcome"].target == f"task:{task_id}" and audit["tasks.outcome"].actor.startswith("key:wang#")
    assert audit["tasks.outcome"].details["outcome"] == "refused"
    assert audit["tasks.outcome"].details["effects"] == {"consent_withdrawn": "phone", "cancelled_tasks": 0}
    assert (audit["consent.withdraw"].target, audit["consent.withdraw"].details) == (
        "C1:phone", {"source": f"task:{task_id}"})


def test_wrong_number_puts_the_mobile_on_the_call_suppression_list(api, book):
    task_id = book.task("C1", "M1")

    assert api("POST", f"/api/v1/tasks/{task_id}/outcome", "operator",
               json={"outcome": "wrong_number"}).status_code == 200

    with book.engine.connect() as conn:
        entry = conn.execute(select(SuppressedAddress)).one()
        audit = conn.execute(select(AuditEntry).where(AuditEntry.action == "suppression.add")).one()
    assert (entry.channel, entry.address, entry.reason, entry.source) == ("call", "13812345678", "wrong_number",
                                                                          f"task:{task_id}")
    assert audit.details["address"] == "138****5678"  # contact data in the audit log is masked
    assert book.count(Consent, Consent.channel == "phone") == 0


@pytest.mark.parametrize("outcome", ["converted", "interested"])
def test_converted_and_interested_record_a_conversion(api, book, outcome):
    task_id = book.task("C1", "M1")

    assert api("POST", f"/api/v1/tasks/{task_id}/outcome", "m1", json={"outcome": outcome}).status_code == 200

    with book.engine.connect() as conn:
        conversion = conn.execute(select(Conversion)).one()
    assert (conversion.conversion_id, conversion.customer_id, conversion.type, conversion.occurred_at,
            conversion.source) == (f"task:{task_id}:{outcome}", "C1", "custom", NOW, f"task:{task_id}")


@pytest.mark.parametrize("outcome", ["reached", "not_reached", "declined"])
def test_other_outcomes_close_the_task_and_change_nothing_else(api, book, outcome):
    task_id = book.task("C1", "M1")
    assert api("POST", f"/api/v1/tasks/{task_id}/outcome", "m1", json={"outcome": outcome}).status_code == 200
    assert (book.row(task_id).status, book.row(task_id).outcome) == ("done", outcome)
    assert book.count(Conversion) == book.count(SuppressedAddress) == 0
    assert book.count(Consent, Consent.channel == "phone") == 0


def test_a_closed_task_is_409_and_bad_input_400(api, book):
    task_id = book.task("C1", "M1")
    expired = book.task("C1", "M1", status="expired")
    path = f"/api/v1/tasks/{task_id}/outcome"

    fields = error(api("POST", path, "m1", json={"outcome": "happy"}), 400)["details"]["fields"]
    assert list(fields) == ["outcome"]
    assert "outcome" in error(api("POST", path, "m1", json={}), 400)["details"]["fields"]
    assert error(api("POST", path, "m1", json={"outcome": "reached", "next_contact_on": "2026-03-09"}),
                 400)["details"]["fields"] == {"next_contact_on": ["next_contact_on must be today (2026-03-10) or later"]}
    assert "colour" in error(api("POST", path, "m1", json={"outcome": "reached", "colour": 1}), 400)["details"]["fields"]
    assert book.row(task_id).status == "open"
    assert api("POST", path, "m1", json={"outcome": "refused"}).status_code == 200
    assert "not open" in error(api("POST", path, "m1", json={"outcome": "converted"}), 409)["message"]
    assert "is expired" in error(api("POST", f"/api/v1/tasks/{expired}/outcome", "admin",
                                     json={"outcome": "reached"}), 409)["message"]
    assert book.row(task_id).outcome == "refused" and book.count(Conversion) == 0  # the second closing did nothing
    assert book.count(AuditEntry, AuditEntry.action == "tasks.outcome") == 1


def test_closing_twice_at_once_applies_once(book, services):
    """The closing is one conditional UPDATE: a second closing that read the task open finds it done."""
    task_id = book.task("C1", "M1")
    viewer = worklist.Viewer("cli:a", "operator")
    task = services.store.task(task_id)
    worklist.record_outcome(services, task_id, worklist.OutcomeRequest(worklist.TaskOutcome.CONVERTED), viewer,
                            now=NOW)
    from campaign_engine.errors import Conflict
    with pytest.raises(Conflict):
        services.store.close_task(task_id, outcome="converted", note=None, next_contact_on=None, by="cli:b", now=NOW,
                                  manager_id=None, effects=worklist.outcome_effects(task, worklist.TaskOutcome.CONVERTED,
                                                                                   now=NOW), audit_entries=[])
    assert book.count(Conversion) == 1 and book.row(task_id).completed_by == "cli:a"


# --------------------------------------------------------------------------- overdue and expiry

def test_overdue_is_flagged_after_the_sla_not_before(api, book, services):
    task_id = book.task("C1", "M1", due_at=TODAY_10)  # 10:00, sla 24 h
    assert services.settings.tasks.sla_hours == 24

    assert worklist.flag_overdue(services, TODAY_10 + dt.timedelta(hours=24, minutes=-1)) == 0
    assert book.row(task_id).overdue_at is None
    flagged_at = TODAY_10 + dt.timedelta(hours=24, minutes=1)
    assert worklist.flag_overdue(services, flagged_at) == 1
    assert book.row(task_id).overdue_at == flagged_at
    assert worklist.flag_overdue(services, flagged_at + dt.timedelta(hours=1)) == 0  # once
    # the branch supervisor's list
    assert ids(api("GET", "/api/v1/tasks?overdue=true&branch=北京分行", "viewer")) == [task_id]
    assert ids(api("GET", "/api/v1/tasks?overdue=true&branch=上海分行", "viewer")) == []
    assert api("GET", f"/api/v1/tasks/{task_id}", "m1").get_json()["overdue"] is True
    api("POST", f"/api/v1/tasks/{task_id}/outcome", "m1", json={"outcome": "reached"})
    closed = api("GET", f"/api/v1/tasks/{task_id}", "m1").get_json()
    assert closed["overdue"] is False and closed["overdue_at"] is not None  # done late
    assert ids(api("GET", "/api/v1/tasks?overdue=true", "viewer")) == []


def test_open_tasks_expire_after_expire_days(book, services):
    old = book.task("C1", "M1", due_at=TODAY_10 - dt.timedelta(days=15))
    recent = book.task("C1", "M1", due_at=TODAY_10 - dt.timedelta(days=13))
    closed = book.task("C2", "M2", due_at=TODAY_10 - dt.timedelta(days=20), status="done", outcome="reached")

    assert worklist.expire(services, TODAY_10) == 1
    assert [book.row(t).status for t in (old, recent, closed)] == ["expired", "open", "done"]
    assert worklist.expire(services, TODAY_10) == 0


# --------------------------------------------------------------------------- the daily digest

def digests(book: Book) -> list[Any]:
    with book.engine.connect() as conn:
        return list(conn.execute(select(Message).where(Message.rule_id == worklist.DIGEST_RULE)
                                 .order_by(Message.dedupe_key)))


def test_the_digest_goes_once_per_manager_and_day(book, services):
    book.manager("M3", email=None)  # no address: no digest
    book.manager("M4", active=False)
    book.task("C1", "M1", due_at=local(2026, 3, 10, 10))
    book.task("C1", "M1", due_at=local(2026, 3, 10, 9, 30), type="visit")
    book.task("C1", "M1", due_at=local(2026, 3, 11, 10))  # tomorrow's: not in today's digest
    book.task("C1", "M1", due_at=local(2026, 3, 10, 11), status="done", outcome="reached")
    book.task("C2", "M2", due_at=local(2026, 3, 10, 14), rule_id="other")
    book.task("C2", "M3")
    book.task("C2", "M4")
    book.task("C3", None)  # the queue has no digest

    assert worklist.send_digests(services, local(2026, 3, 10, 8, 29)).written == 0  # before digest_hour
    result = worklist.send_digests(services, local(2026, 3, 10, 8, 30))

    assert result.written == 2 and result.managers == ["M1", "M2"]
    m1, m2 = digests(book)
    assert (m1.dedupe_key, m1.channel, m1.recipient, m1.status, m1.category) == (
        "digest|M1|2026-03-10", "email", "m1@bank.example", "queued", "service")
    assert m1.subject == "今日客户跟进任务（2项）" and m2.subject == "今日客户跟进任务（1项）"
    lines = m1.body.splitlines()
    assert lines[0] == "经理M1，您好："
    task_lines = [line for line in lines if line[:2] in ("1.", "2.")]
    assert task_lines[0].startswith("1. 09:30 面谈 王小明（C1） 测试followup")
    assert task_lines[1].startswith("2. 10:00 电联 王小明（C1） 测试followup")
    assert "14:00 电联 李娜（C2） 测试other" in m2.body
    with book.engine.connect() as conn:
        run = conn.execute(select(CampaignRun).where(CampaignRun.id == m1.run_id)).one()
    assert (run.kind, run.status, run.run_date, run.rule_ids) == ("digest", "completed", dt.date(2026, 3, 10),
                                                                  [worklist.DIGEST_RULE])
    from campaign_engine.pipeline import get_report
    report = get_report(services, m1.run_id).as_dict()  # reported like any run (`report ID`, GET /runs/{id})
    assert (report["kind"], report["status"], report["rules"][0]["rule"], report["rules"][0]["queued"]) == (
        "digest", "completed", worklist.DIGEST_RULE, 2)
    assert report["rules"][0]["delivery"] == {"queued": 2}
    # a second sweep the same day writes nothing, and records no empty run
    runs_before = book.count(CampaignRun)
    assert worklist.sweep(services, local(2026, 3, 10, 9, 31))["digests"] == 0
    assert worklist.send_digests(services, local(2026, 3, 10, 17)).written == 0
    assert len(digests(book)) == 2 and book.count(CampaignRun) == runs_before
    # the next day is a new digest
    assert worklist.send_digests(services, local(2026, 3, 11, 8, 45)).managers == ["M1"]
    assert "digest|M1|2026-03-11" in [m.dedupe_key for m in digests(book)] and len(digests(book)) == 3


def test_the_digest_is_delivered_through_the_email_channel(book, tmp_path):
    """`send --once` delivers it like any email: the pre-send check passes it (a service message to
    the manager's own address, no customer consent involved)."""
    from click.testing import CliRunner

    from campaign_engine.cli import main

    book.task("C1", "M1")
    channels = {"sms": {"type": "file", "path": str(tmp_path / "sms.jsonl")},
                "email": {"type": "file", "path": str(tmp_path / "email.jsonl")}}
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": book.world.settings.database_url,
           "CAMPAIGN_ENGINE_CHANNELS": json.dumps(channels), "CAMPAIGN_ENGINE_QUIET_HOURS": "{}",
           "CAMPAIGN_ENGINE_SEND_RATES": json.dumps({"sms": 0, "email": 0})}
    services = book.world.services(publish=False)
    assert worklist.send_digests(services, NOW).written == 1

    result = CliRunner().invoke(main, ["send", "--once"], env=env, catch_exceptions=False)

    assert result.exit_code == 0 and "sent 1" in result.output, result.output
    (sent,) = [json.loads(line) for line in (tmp_path / "email.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sent["recipient"] == "m1@bank.example" and sent["subject"] == "今日客户跟进任务（1项）"
    assert digests(book)[0].status == "sent"


def test_a_digest_written_by_another_process_is_not_written_again(book, services):
    book.task("C1", "M1")
    due = services.store.digest_due(start=local(2026, 3, 10, 0), end=local(2026, 3, 11, 0), key_prefix="digest|",
                                    key_suffix="|2026-03-10")
    assert [m["manager_id"] for m in due] == ["M1"]
    assert worklist.send_digests(services, NOW).written == 1
    row = {**{c: getattr(digests(book)[0], c) for c in ("dedupe_key", "rule_id", "category", "priority",
                                                        "customer_id", "subject_type", "subject_id", "channel",
                                                        "recipient", "status", "subject", "body", "created_at",
                                                        "due_at")}}
    # the race: another process's insert landed between our read and our write
    assert services.store.record_digest(kind=worklist.RunKind.DIGEST, run_date=NOW.date(), now=NOW,
                                        rule_id=worklist.DIGEST_RULE, rows=[row]) == (None, 0)
    assert book.count(CampaignRun, CampaignRun.kind == "digest") == 1


# --------------------------------------------------------------------------- reports

def test_reports_count_per_rule_and_per_manager(api, book):
    other_run = Book(book.world).run_id
    book.task("C1", "M1")  # open
    book.task("C1", "M1", overdue_at=NOW)  # open, overdue
    book.task("C1", "M1", status="done", outcome="converted", overdue_at=NOW)  # done late
    book.task("C1", "M1", status="done", outcome="refused")
    book.task("C2", "M2", status="done", outcome="converted", rule_id="other")
    book.task("C2", "M2", status="expired", overdue_at=NOW, rule_id="other", run_id=other_run)
    book.task("C3", None, status="cancelled")

    report = api("GET", "/api/v1/tasks/report", "viewer").get_json()

    rules = {r["rule"]: r for r in report["rules"]}
    assert rules["followup"] == {"rule": "followup", "name": "测试followup", "created": 5, "open": 2, "done": 2,
                                 "cancelled": 1, "expired": 0, "overdue": 2, "overdue_open": 1,
                                 "by_outcome": {"converted": 1, "refused": 1}, "conversion_rate": 0.5}
    assert (rules["other"]["created"], rules["other"]["expired"], rules["other"]["by_outcome"]) == (
        2, 1, {"converted": 1})
    managers = {(m["manager_id"], m["branch"]): m for m in report["managers"]}
    m1 = managers[("M1", "北京分行")]
    assert (m1["name"], m1["queue"], m1["open"], m1["done"], m1["overdue"], m1["overdue_open"],
            m1["conversion_rate"]) == ("经理M1", False, 2, 2, 2, 1, 0.5)
    assert managers[("M2", "北京分行")]["conversion_rate"] == 1.0
    queue = managers[(None, "北京分行")]
    assert (queue["queue"], queue["cancelled"], queue["conversion_rate"]) == (True, 1, None)
    assert [m["manager_id"] for m in report["managers"]] == ["M1", "M2", None]
    # one run: per rule of that run
    one = api("GET", f"/api/v1/tasks/report?run={other_run}", "viewer").get_json()
    assert [(r["rule"], r["run"], r["created"], r["expired"]) for r in one["rules"]] == [("other", other_run, 1, 1)]
    # filters: rule, manager, creation days
    assert [r["rule"] for r in api("GET", "/api/v1/tasks/report?rule=other", "viewer").get_json()["rules"]] == ["other"]
    by_m2 = api("GET", "/api/v1/tasks/report?manager=M2", "viewer").get_json()
    assert [m["manager_id"] for m in by_m2["managers"]] == ["M2"] and by_m2["manager"] == "M2"
    assert api("GET", "/api/v1/tasks/report?from=2026-03-11", "viewer").get_json()["rules"] == []
    assert len(api("GET", "/api/v1/tasks/report?from=2026-03-10&to=2026-03-10", "viewer").get_json()["rules"]) == 2
    assert "from" in error(api("GET", "/api/v1/tasks/report?from=2026-03-11&to=2026-03-10", "viewer"),
                           400)["details"]["fields"]
    # a manager: their own figures only
    own = api("GET", "/api/v1/tasks/report", "m1").get_json()
    assert own["manager"] == "M1" and [m["manager_id"] for m in own["managers"]] == ["M1"]
    assert [r["created"] for r in own["rules"]] == [4]


# --------------------------------------------------------------------------- the command line and the scheduler

def test_cli_lists_closes_and_reports(book):
    cli = world_cli(book.world)
    task_id = book.task("C1", "M1")
    book.task("C2", "M2", due_at=TODAY_10 + dt.timedelta(hours=1))

    listed = cli("tasks", "list", "--manager", "M1", "--json")
    assert listed.exit_code == 0, listed.output
    page = json.loads(listed.output)
    assert [t["id"] for t in page["items"]] == [task_id] and page["next"] is None
    assert page["items"][0]["mobile"] == "13812345678"  # cli_contact_data: full by default
    text = cli("tasks", "list", "--status", "open").output
    assert "电联" in text and "王小明" in text and "测试followup" in text
    done = cli("tasks", "done", str(task_id), "--outcome", "converted", "--note", "买了", "--as", "alice", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["completed_by"] == "cli:alice" and book.row(task_id).outcome == "converted"
    again = cli("tasks", "done", str(task_id), "--outcome", "reached")
    assert again.exit_code == 1 and "not open" in again.output
    assert cli("tasks", "show", "999999").exit_code == 2
    assert "王先生本周转入大额资金" in cli("tasks", "show", str(task_id)).output
    report = json.loads(cli("tasks", "report", "--json").output)
    assert report["rules"][0]["by_outcome"] == {"converted": 1}
    assert "conversion 100.00%" in cli("tasks", "report", "--manager", "M1").output
    # the sweep by hand, at the real time: the open task of 2026-03-10 is long past due by now
    swept = cli("tasks", "sweep", "--json")
    assert swept.exit_code == 0 and json.loads(swept.output) == {"overdue": 1, "expired": 1, "digests": 0}
    assert cli("tasks", "list", "--overdue").output.strip() == "no tasks match"
    assert "expired" in cli("tasks", "list", "--customer", "C2").output


def test_the_scheduler_sweep_logs_a_failure_and_goes_on(services, caplog, monkeypatch):
    from campaign_engine import scheduler

    def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("database gone")

    monkeypatch.setattr(services.store, "flag_overdue_tasks", broken)
    scheduler._sweep_tasks(services, lambda: NOW)  # never raises
    assert "overdue failed" in caplog.text
    done = worklist.sweep(services, NOW)
    assert "overdue" not in done and done["expired"] == 0  # the other steps still ran
