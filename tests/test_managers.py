"""Relationship managers (issue #12): the managers CSV import, the customers CSV's phone_consent
column, the /api/v1/managers endpoints, and API keys bound to a manager (role manager)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import g
from sqlalchemy import func, select

from campaign_engine.api.auth import PERMISSIONS, READ, TASKS, requires
from campaign_engine.cli import main
from campaign_engine.imports import COLUMNS, parse_row
from campaign_engine.store import apikeys
from campaign_engine.store import managers as store
from campaign_engine.store.csv_import import import_csv
from campaign_engine.store.models import ApiKey, AuditEntry, Consent, Manager
from campaign_engine.vocabulary import Role
from factories import NOW
from test_api import ROLES, Api, api, assert_error, make_api  # noqa: F401 (fixtures)

UTC = dt.timezone.utc


def manager(**values: str) -> dict[str, str]:
    """A good managers.csv row as text, with some values replaced."""
    row = {"manager_id": "M030", "name": "陈静", "branch": "上海分行浦东支行", "mobile": "13900000030",
           "email": "chen.jing@bank.example.cn", "daily_call_capacity": "25", "daily_visit_capacity": "4",
           "active": "true"}
    row.update(values)
    return row


def customer(**values: str) -> dict[str, str]:
    """A good customers.csv row as text."""
    row = {"customer_id": "C00000001", "name": "王小明", "gender": "M", "birth_date": "1980-05-17",
           "mobile": "13800138000", "email": "xiaoming.wang@163.com", "city": "上海", "branch": "上海分行浦东支行",
           "tier": "diamond", "risk_level": "C3", "aum": "3500000.00", "rate_sensitive": "true",
           "sms_consent": "true", "email_consent": "false", "do_not_contact": "false", "language": "zh",
           "manager_id": "M030"}
    row.update(values)
    return row


def write_csv(path: Path, kind: str, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(COLUMNS[kind])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives naive UTC datetimes back, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def managers_in(engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {m["manager_id"]: m for m in store.list_managers(conn, limit=1000)}


def consents(engine, customer_id: str) -> dict[str, tuple[bool, str, dt.datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Consent.channel, Consent.granted, Consent.source, Consent.recorded_at)
                            .where(Consent.customer_id == customer_id)).all()
    return {channel: (granted, source, as_utc(at)) for channel, granted, source, at in rows}


def located(report) -> list[tuple[int | None, str | None]]:  # type: ignore[no-untyped-def]
    return [(p.line, p.field) for p in report.problems]


# --------------------------------------------------------------------------- the managers CSV


def test_import_managers_good_rows_are_upserted_by_id(engine, tmp_path, now):
    path = write_csv(tmp_path / "managers.csv", "managers", [
        manager(),
        manager(manager_id="M031", name="李强", mobile="+86 139-0000-0031", email="", daily_call_capacity="0",
                daily_visit_capacity="500", active="是"),
        manager(manager_id="M032", name="赵敏", branch="", mobile="", active="否"),
    ])

    report = import_csv(engine, "managers", path, now=now)

    assert report.ok, report.problems
    assert (report.rows, report.upserted, report.refused) == (3, 3, 0)
    stored = managers_in(engine)
    first = stored["M030"]
    assert {k: first[k] for k in COLUMNS["managers"]} == {
        "manager_id": "M030", "name": "陈静", "branch": "上海分行浦东支行", "mobile": "13900000030",
        "email": "chen.jing@bank.example.cn", "daily_call_capacity": 25, "daily_visit_capacity": 4, "active": True}
    assert (first["source"], as_utc(first["updated_at"])) == ("import:managers.csv", now)
    assert (stored["M031"]["mobile"], stored["M031"]["email"], stored["M031"]["active"]) == ("13900000031", None, True)
    assert (stored["M031"]["daily_call_capacity"], stored["M031"]["daily_visit_capacity"]) == (0, 500)
    assert (stored["M032"]["branch"], stored["M032"]["mobile"], stored["M032"]["active"]) == (None, None, False)

    # the same file again changes nothing; a changed row updates its manager
    later = now + dt.timedelta(hours=1)
    again = write_csv(tmp_path / "managers-2.csv", "managers", [manager(daily_call_capacity="30", active="0")])
    assert import_csv(engine, "managers", again, now=later).ok
    stored = managers_in(engine)
    assert len(stored) == 3
    assert (stored["M030"]["daily_call_capacity"], stored["M030"]["active"]) == (30, False)
    assert (stored["M030"]["source"], as_utc(stored["M030"]["updated_at"])) == ("import:managers-2.csv", later)
    assert stored["M031"]["source"] == "import:managers.csv"


def test_import_managers_bad_rows_reported_by_line_and_field(engine, tmp_path, now):
    path = write_csv(tmp_path / "managers.csv", "managers", [
        manager(),                                                         # line 2: good
        manager(manager_id="M040", daily_call_capacity="501"),            # 3
        manager(manager_id="M041", daily_visit_capacity="-1"),            # 4
        manager(manager_id="M042", daily_call_capacity="2.5", daily_visit_capacity=""),  # 5: two problems
        manager(manager_id="M043", name="", mobile="12345"),              # 6: two problems
        manager(manager_id="M044", email="not-an-email", active="maybe"),  # 7: two problems
        manager(manager_id="M" + "0" * 32),                                # 8: an id of 33 characters
        manager(manager_id="", active=""),                                 # 9
        manager(manager_id="M045", name="王\x00芳"),                        # 10
        manager(manager_id="M046", daily_call_capacity="25"),             # 11: good
    ])

    report = import_csv(engine, "managers", path, now=now)

    assert located(report) == [
        (3, "daily_call_capacity"), (4, "daily_visit_capacity"), (5, "daily_call_capacity"),
        (5, "daily_visit_capacity"), (6, "name"), (6, "mobile"), (7, "email"), (7, "active"), (8, "manager_id"),
        (9, "manager_id"), (9, "active"), (10, "name")]
    reasons = {(p.line, p.field): p.reason for p in report.problems}
    assert reasons[(3, "daily_call_capacity")] == "'501' is not a whole number from 0 to 500"
    assert reasons[(5, "daily_visit_capacity")] == "daily_visit_capacity is required"
    assert reasons[(7, "active")].startswith("'maybe' is not a boolean")
    assert reasons[(8, "manager_id")] == "is longer than 32 characters"
    assert reasons[(9, "active")] == "active is required"
    assert (report.rows, report.upserted, report.refused) == (10, 2, 8)
    assert set(managers_in(engine)) == {"M030", "M046"}


def test_import_managers_repeated_id_refused_first_kept(engine, tmp_path, now):
    path = write_csv(tmp_path / "managers.csv", "managers", [
        manager(), manager(manager_id="M031"), manager(name="另一个人", daily_call_capacity="99")])

    report = import_csv(engine, "managers", path, now=now)

    assert [(p.line, p.field, p.reason) for p in report.problems] == [
        (4, "manager_id", "manager_id 'M030' also on line 2; the first row was kept")]
    assert (report.upserted, report.refused) == (2, 1)
    assert managers_in(engine)["M030"]["name"] == "陈静"
    assert managers_in(engine)["M030"]["daily_call_capacity"] == 25


def test_import_managers_inactive_and_header_problems(engine, tmp_path, now):
    path = write_csv(tmp_path / "managers.csv", "managers", [manager(), manager(manager_id="M031", active="false")])
    assert import_csv(engine, "managers", path, now=now).ok
    with engine.connect() as conn:
        assert [m["manager_id"] for m in store.list_managers(conn, active=False)] == ["M031"]
        assert [m["manager_id"] for m in store.list_managers(conn, active=True)] == ["M030"]
        assert store.get_manager(conn, "M031")["active"] is False
        assert store.get_manager(conn, "M404") is None

    short = write_csv(tmp_path / "short.csv", "managers", [manager()],
                      columns=[c for c in COLUMNS["managers"] if c != "active"])
    report = import_csv(engine, "managers", short, now=now)
    assert (report.upserted, [(p.line, p.reason.split(";")[0]) for p in report.problems]) == (
        0, [(1, "missing column(s) active")])


def test_import_managers_rows_parse_like_api_bodies():
    row, problems = parse_row("managers", manager(mobile=" 139 0000 0030 ", active="Y"), today=dt.date(2026, 3, 10))
    assert problems == [] and row is not None
    assert (row["mobile"], row["active"], row["daily_call_capacity"]) == ("13900000030", True, 25)


# --------------------------------------------------------------------------- phone_consent in the customers CSV


def test_import_customers_phone_consent_recorded_with_source_and_time(engine, tmp_path, now):
    path = write_csv(tmp_path / "customers.csv", "customers", [
        customer(phone_consent="true"),
        customer(customer_id="C00000002", phone_consent="否"),
        customer(customer_id="C00000003", phone_consent=""),  # no answer: nothing recorded
    ])

    report = import_csv(engine, "customers", path, now=now)

    assert report.ok, report.problems
    assert consents(engine, "C00000001")["phone"] == (True, "import:customers.csv", now)
    assert consents(engine, "C00000002")["phone"] == (False, "import:customers.csv", now)
    assert "phone" not in consents(engine, "C00000003")
    assert set(consents(engine, "C00000003")) == {"sms", "email"}

    # the same answer again keeps the consent's time and source; a changed one is recorded anew
    later = now + dt.timedelta(days=1)
    again = write_csv(tmp_path / "again.csv", "customers", [
        customer(phone_consent="yes"), customer(customer_id="C00000002", phone_consent="1")])
    assert import_csv(engine, "customers", again, now=later).ok
    assert consents(engine, "C00000001")["phone"] == (True, "import:customers.csv", now)
    assert consents(engine, "C00000002")["phone"] == (True, "import:again.csv", later)

    bad = write_csv(tmp_path / "bad.csv", "customers", [customer(phone_consent="maybe")])
    assert located(import_csv(engine, "customers", bad, now=later)) == [(2, "phone_consent")]


def test_import_customers_without_phone_consent_column_changes_nothing(engine, tmp_path, now):
    older = [c for c in COLUMNS["customers"] if c not in ("phone_consent", "birthday_calendar")]
    first = write_csv(tmp_path / "first.csv", "customers", [customer()], columns=older)
    report = import_csv(engine, "customers", first, now=now)
    assert report.ok, report.problems
    assert set(consents(engine, "C00000001")) == {"sms", "email"}

    with_phone = write_csv(tmp_path / "phone.csv", "customers", [customer(phone_consent="true")])
    assert import_csv(engine, "customers", with_phone, now=now).ok
    later = now + dt.timedelta(days=1)
    without = write_csv(tmp_path / "without.csv", "customers", [customer(sms_consent="false")], columns=older)
    assert import_csv(engine, "customers", without, now=later).ok
    stored = consents(engine, "C00000001")
    assert stored["phone"] == (True, "import:phone.csv", now)  # left as it was
    assert stored["sms"] == (False, "import:without.csv", later)


# --------------------------------------------------------------------------- the API


def seed_managers(engine, tmp_path: Path, now: dt.datetime) -> None:
    rows = [manager(manager_id=f"M03{i}", name=f"经理{i}", mobile=f"1390000003{i}",
                    email=f"rm{i}@bank.example.cn", branch="上海分行" if i % 2 else "北京分行",
                    active="false" if i == 4 else "true") for i in range(5)]
    assert import_csv(engine, "managers", write_csv(tmp_path / "managers.csv", "managers", rows), now=now).ok


def walk(api: Api, role: str, **query: Any) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    for _ in range(20):
        resp = api.call("GET", "/api/v1/managers", role, query_string={**query, **({"after": after} if after else {})})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        pages.append(resp.get_json()["items"])
        after = resp.get_json()["next"]
        if after is None:
            return pages
    raise AssertionError("paging did not end")


def test_api_managers_list_filters_and_pages(api, tmp_path):
    seed_managers(api.engine, tmp_path, NOW)

    pages = walk(api, "admin", limit=2)
    assert [[m["manager_id"] for m in p] for p in pages] == [["M030", "M031"], ["M032", "M033"], ["M034"]]
    assert set(pages[0][0]) == {"manager_id", "name", "branch", "mobile", "email", "daily_call_capacity",
                                "daily_visit_capacity", "active", "updated_at", "source"}
    assert (pages[0][0]["mobile"], pages[0][0]["email"]) == ("13900000030", "rm0@bank.example.cn")  # admin: full

    def ids(**query: Any) -> list[str]:
        return [m["manager_id"] for p in walk(api, "viewer", **query) for m in p]

    assert ids(branch="北京分行") == ["M030", "M032", "M034"]
    assert ids(branch="北京分行", active="true") == ["M030", "M032"]
    assert ids(active="false") == ["M034"]
    assert ids(branch="广州分行") == []
    assert_error(api.call("GET", "/api/v1/managers", "viewer", query_string={"active": "perhaps"}), 400)
    assert_error(api.call("GET", "/api/v1/managers", "viewer", query_string={"limit": "0"}), 400)
    assert_error(api.call("GET", "/api/v1/managers"), 401)


def test_api_managers_contact_data_masked_as_customers_are(api, tmp_path):
    seed_managers(api.engine, tmp_path, NOW)
    for role in ("viewer", "marketer", "operator", "approver", "auditor"):
        listed = api.call("GET", "/api/v1/managers", role).get_json()["items"][0]
        one = api.call("GET", "/api/v1/managers/M030", role).get_json()
        for shown in (listed, one):
            assert (shown["mobile"], shown["email"]) == ("139****0030", "r***@bank.example.cn"), role
    assert api.call("GET", "/api/v1/managers/M030", "admin").get_json()["mobile"] == "13900000030"

    # an operator may reveal with a reason (audited); a viewer may not
    resp = api.call("GET", "/api/v1/managers/M030", "operator",
                    query_string={"reveal": "contact", "reason": "complaint 2026-0311-17"})
    assert resp.status_code == 200 and resp.get_json()["mobile"] == "13900000030"
    assert [(e["action"], e["target"], e["details"]) for e in api.audit()] == [
        ("contact.reveal", "manager:M030", {"reason": "complaint 2026-0311-17", "revealed": ["M030"]})]
    assert_error(api.call("GET", "/api/v1/managers", "viewer", query_string={"reveal": "contact", "reason": "x"}), 403)
    assert_error(api.call("GET", "/api/v1/managers", "operator", query_string={"reveal": "contact"}), 400)


def test_api_managers_get_one_and_404(api, tmp_path):
    seed_managers(api.engine, tmp_path, NOW)
    got = api.call("GET", "/api/v1/managers/M034", "viewer").get_json()
    assert (got["manager_id"], got["name"], got["active"], got["daily_call_capacity"]) == ("M034", "经理4", False, 25)
    assert_error(api.call("GET", "/api/v1/managers/M404", "viewer"), 404)


BODY = {"name": "陈静", "branch": "上海分行浦东支行", "mobile": "+86 139 0000 0030", "email": "chen.jing@bank.example.cn",
        "daily_call_capacity": 25, "daily_visit_capacity": 4, "active": True}


def test_api_managers_put_by_admin_creates_updates_and_is_audited(api):
    resp = api.call("PUT", "/api/v1/managers/M030", "admin", json=BODY)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    created = resp.get_json()
    assert (created["manager_id"], created["mobile"], created["active"]) == ("M030", "13900000030", True)
    assert created["source"] == f"api:{api.actor('admin')}"

    changed = api.call("PUT", "/api/v1/managers/M030", "admin",
                       json={**BODY, "daily_call_capacity": 0, "active": False, "email": None})
    assert changed.status_code == 200
    assert (changed.get_json()["daily_call_capacity"], changed.get_json()["active"],
            changed.get_json()["email"]) == (0, False, None)
    with api.engine.connect() as conn:
        assert store.get_manager(conn, "M030")["daily_call_capacity"] == 0

    entries = api.audit()
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        (api.actor("admin"), "managers.upsert", "M030"), (api.actor("admin"), "managers.upsert", "M030")]
    assert entries[0]["details"] == {"created": True, "branch": "上海分行浦东支行", "active": True,
                                     "daily_call_capacity": 25, "daily_visit_capacity": 4,
                                     "mobile": "139****0030", "email": "c***@bank.example.cn"}
    assert entries[1]["details"]["created"] is False and entries[1]["details"]["email"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({**BODY, "daily_call_capacity": 501}, "daily_call_capacity"),
    ({**BODY, "daily_visit_capacity": -1}, "daily_visit_capacity"),
    ({**BODY, "daily_call_capacity": "25"}, "daily_call_capacity"),
    ({**BODY, "active": "maybe"}, "active"),
    ({**BODY, "mobile": "12345"}, "mobile"),
    ({**BODY, "email": "nobody"}, "email"),
    ({**BODY, "name": ""}, "name"),
    ({**BODY, "manager_id": "M031"}, "manager_id"),  # the id is the path's
    ({k: v for k, v in BODY.items() if k != "active"}, "active"),
])
def test_api_managers_put_refuses_bad_bodies_and_writes_nothing(api, body, field):
    details = assert_error(api.call("PUT", "/api/v1/managers/M030", "admin", json=body), 400, field)
    assert field in details["fields"], details
    assert api.count(Manager) == 0 and api.audit() == []


def test_api_managers_put_id_checked_like_an_import_row(api):
    details = assert_error(api.call("PUT", "/api/v1/managers/" + "M" * 33, "admin", json=BODY), 400)
    assert "manager_id" in details["fields"]
    assert api.count(Manager) == 0


def test_api_managers_put_is_for_admins_only(api):
    for role in ("viewer", "marketer", "operator", "approver", "auditor", "manager"):
        resp = api.call("PUT", "/api/v1/managers/M030", role, json=BODY)
        assert_error(resp, 403, role)
        assert role in resp.get_json()["error"]["message"]
    assert api.count(Manager) == 0 and api.audit() == []


def test_api_imports_managers_csv_body(api):
    text = ",".join(COLUMNS["managers"]) + "\n" + ",".join(manager().values()) + "\n" + ",".join(
        manager(manager_id="M031", daily_call_capacity="x").values()) + "\n"
    resp = api.call("POST", "/api/v1/imports/managers", "admin", data=text.encode(), content_type="text/csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    report = resp.get_json()
    assert (report["kind"], report["rows"], report["upserted"], report["refused"]) == ("managers", 2, 1, 1)
    assert report["problems"] == [{"file": "request body", "line": 3, "field": "daily_call_capacity",
                                   "reason": "'x' is not a whole number from 0 to 500"}]
    assert_error(api.call("POST", "/api/v1/imports/managers", "operator", data=text.encode(),
                          content_type="text/csv"), 403)
    assert set(managers_in(api.engine)) == {"M030"}


# --------------------------------------------------------------------------- keys bound to a manager


def test_roles_permissions_tasks_for_every_role_and_only_tasks_for_a_manager():
    assert set(PERMISSIONS) == set(Role) and set(ROLES) == {role.value for role in Role}
    assert PERMISSIONS[Role.MANAGER] == {TASKS}
    assert all(TASKS in PERMISSIONS[role] for role in Role)
    assert [role.value for role in Role if READ not in PERMISSIONS[role]] == ["manager"]


@pytest.fixture
def cli(settings, engine):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def keys_in(engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(ApiKey.name, ApiKey.role, ApiKey.manager_id)
                                               .order_by(ApiKey.id))]


def test_cli_import_managers_and_list(cli, engine, tmp_path):
    path = write_csv(tmp_path / "managers.csv", "managers", [manager(), manager(manager_id="M031", active="false"),
                                                             manager(manager_id="M032", daily_call_capacity="999")])
    result = cli("import", "managers", str(path))
    assert result.exit_code == 1  # a refused row, as for the other kinds
    assert "managers.csv:4, field daily_call_capacity: '999' is not a whole number from 0 to 500" in result.output
    assert "managers: 3 row(s) read: 2 upserted, 1 refused (1 problem(s))" in result.output

    listed = cli("managers", "list")  # contact data as cli_contact_data says (full by default)
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "M030 陈静 上海分行浦东支行 calls 25/day visits 4/day active 13900000030 chen.jing@bank.example.cn",
        "M031 陈静 上海分行浦东支行 calls 25/day visits 4/day inactive 13900000030 chen.jing@bank.example.cn"]
    inactive = json.loads(cli("managers", "list", "--inactive", "--json").output)
    assert [m["manager_id"] for m in inactive] == ["M031"]
    masked = CliRunner().invoke(main, ["managers", "list", "--active"], catch_exceptions=False, env={
        "CAMPAIGN_ENGINE_DATABASE_URL": str(engine.url.render_as_string(hide_password=False)),
        "CAMPAIGN_ENGINE_CLI_CONTACT_DATA": "masked"})
    assert masked.output.splitlines() == [
        "M030 陈静 上海分行浦东支行 calls 25/day visits 4/day active 139****0030 c***@bank.example.cn"]


def test_cli_apikey_create_manager_key_bound_and_audited(cli, engine, tmp_path):
    assert cli("import", "managers", str(write_csv(tmp_path / "m.csv", "managers", [manager()]))).exit_code == 0

    created = cli("apikey", "create", "--role", "manager", "--manager", "M030", "--name", "chen-jing")

    assert created.exit_code == 0, created.output
    key = created.output.splitlines()[0]
    assert key.startswith("ce_")
    assert keys_in(engine) == [("chen-jing", "manager", "M030")]
    with engine.connect() as conn:
        found = apikeys.find_key(conn, key)
        assert found is not None and (found["role"], found["manager_id"]) == ("manager", "M030")
        [entry] = conn.execute(select(AuditEntry.action, AuditEntry.details)).all()
    assert entry == ("apikey.create", {"role": "manager", "manager": "M030"})
    assert "chen-jing manager manager M030 live" in cli("apikey", "list").output


def test_cli_apikey_create_manager_refusals_exit_2(cli, engine, tmp_path):
    assert cli("import", "managers", str(write_csv(tmp_path / "m.csv", "managers", [manager()]))).exit_code == 0

    unknown = cli("apikey", "create", "--role", "manager", "--manager", "M404", "--name", "nobody")
    assert unknown.exit_code == 2 and "manager 'M404' not found" in unknown.output
    missing = cli("apikey", "create", "--role", "manager", "--name", "nobody")
    assert missing.exit_code == 2 and "--manager" in missing.output
    other = cli("apikey", "create", "--role", "viewer", "--manager", "M030", "--name", "viewer-team")
    assert other.exit_code == 2 and "--manager" in other.output and "viewer" in other.output
    assert keys_in(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 0
    assert "Traceback" not in unknown.output + missing.output + other.output


def test_api_manager_key_authenticates_with_its_manager_and_reads_no_managers(api, tmp_path):
    seed_managers(api.engine, tmp_path, NOW)
    with api.engine.begin() as conn:
        _, bound = apikeys.create_key(conn, name="chen-jing", role="manager", now=NOW, manager_id="M030")
    seen: list[tuple[str, str | None]] = []

    @requires(TASKS)
    def whoami() -> dict[str, Any]:  # what a tasks view sees of the key
        seen.append((g.role, g.manager_id))
        return {"role": g.role, "manager_id": g.manager_id}

    api.app.add_url_rule("/test/whoami", "whoami", whoami)

    def call(path: str, key: str):  # type: ignore[no-untyped-def]
        return api.client.get(path, headers={"Authorization": f"Bearer {key}"})

    assert call("/test/whoami", bound).get_json() == {"role": "manager", "manager_id": "M030"}
    assert call("/test/whoami", api.keys["viewer"][1]).get_json() == {"role": "viewer", "manager_id": None}
    # a manager key has only `tasks`: the managers (and every other read) are 403
    for path in ("/api/v1/managers", "/api/v1/managers/M030", "/api/v1/customers"):
        resp = call(path, bound)
        assert_error(resp, 403, path)
        assert "role manager may not do this (needs read)" in resp.get_json()["error"]["message"]
    # a key of role manager bound to no manager is refused even where its role may go
    unbound = call("/test/whoami", api.keys["manager"][1])
    assert_error(unbound, 403)
    assert "bound to no manager" in unbound.get_json()["error"]["message"]
    assert seen == [("manager", "M030"), ("viewer", None)]
