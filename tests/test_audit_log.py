"""The audit log for auditors: the approver and auditor roles, GET /api/v1/audit (filters, cursor
paging, hostile input) and `campaign-engine audit list`, on the real migrated test database."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner

from campaign_engine.api import create_app
from campaign_engine.api.auth import APPROVE, AUDIT, PERMISSIONS, READ, TASKS
from campaign_engine.cli import main
from campaign_engine.store import apikeys, audit
from campaign_engine.vocabulary import Role
from factories import NOW

UTC = dt.timezone.utc
ROLES = [role.value for role in Role]
ERROR_CODES = {400: "invalid_request", 403: "forbidden"}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def write(engine, *entries: tuple[str, str, str | None, dt.datetime] | tuple[str, str, str | None, dt.datetime, Any]
          ) -> list[int]:  # type: ignore[no-untyped-def]
    """(actor, action, target, at[, details]) each, in order; returns their ids."""
    from sqlalchemy import func, select

    from campaign_engine.store.models import AuditEntry

    with engine.begin() as conn:
        for actor, action, target, when, *details in entries:
            audit.record(conn, actor=actor, action=action, target=target, now=when,
                         details=details[0] if details else None)
        newest = conn.execute(select(func.max(AuditEntry.id))).scalar_one()
    return list(range(newest - len(entries) + 1, newest + 1))


class Client:
    def __init__(self, app, keys: dict[str, tuple[int, str]]):  # type: ignore[no-untyped-def]
        self.app = app
        self.keys = keys
        self.client = app.test_client()

    def get(self, role: str, **query: Any):  # type: ignore[no-untyped-def]
        return self.client.get("/api/v1/audit", query_string=query,
                               headers={"Authorization": f"Bearer {self.keys[role][1]}"})

    def items(self, role: str = "auditor", **query: Any) -> list[dict[str, Any]]:
        resp = self.get(role, **query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()["items"]

    def actor(self, role: str) -> str:
        return f"key:{role}-key#{self.keys[role][0]}"


@pytest.fixture
def api(settings, engine):  # type: ignore[no-untyped-def]
    """The app in Asia/Shanghai, without a rate limit, and one key per role (named `<role>-key`)."""
    app = create_app(settings.replace(timezone="Asia/Shanghai", api_rate_limit=0), clock=lambda: NOW)
    with engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW) for role in ROLES}
    yield Client(app, keys)
    state = app.extensions["campaign"]
    try:
        state.wait(30)
    finally:
        state.runtime.close()


def assert_error(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The JSON error body (never HTML, never a traceback); `field` is named in details.fields."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, text
    assert resp.mimetype == "application/json" and "Traceback" not in text
    error = json.loads(text)["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == ERROR_CODES[status]
    if field is not None:
        assert field in error["details"].get("fields", {}), error
    return error["details"]


# --------------------------------------------------------------------------- the roles


def test_roles_approver_and_auditor_permissions():
    assert {Role.APPROVER.value, Role.AUDITOR.value} <= set(ROLES)
    assert PERMISSIONS[Role.APPROVER] == {READ, APPROVE, TASKS}
    assert PERMISSIONS[Role.AUDITOR] == {READ, AUDIT, TASKS}
    assert {APPROVE, AUDIT} <= PERMISSIONS[Role.ADMIN]
    assert [role for role in ROLES if AUDIT in PERMISSIONS[role]] == ["auditor", "admin"]


@pytest.mark.parametrize("role", ROLES)
def test_api_audit_is_for_auditors_and_admins_only(api, engine, role):
    write(engine, ("cli", "apikey.create", "key:x#1", NOW, {"role": "viewer"}))
    resp = api.get(role)
    if role in ("auditor", "admin"):
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert [e["action"] for e in resp.get_json()["items"]] == ["apikey.create"]
    else:
        assert_error(resp, 403)
        assert role in resp.get_json()["error"]["message"] and "audit" in resp.get_json()["error"]["message"]


def test_api_audit_needs_a_key(api):
    assert api.client.get("/api/v1/audit").status_code == 401


def test_api_roles_approver_and_auditor_read_but_change_nothing(api):
    for role in ("approver", "auditor"):
        assert api.client.get("/api/v1/rules", headers={"Authorization": f"Bearer {api.keys[role][1]}"}
                              ).status_code == 200
        refused = api.client.post("/api/v1/runs", json={"date": "2026-03-10", "dry_run": True},
                                  headers={"Authorization": f"Bearer {api.keys[role][1]}"})
        assert_error(refused, 403)


# --------------------------------------------------------------------------- the answer and its filters


def test_api_audit_entry_shape_newest_first(api, engine):
    ids = write(engine, ("cli", "suppression.add", "sms", at("2026-03-10T01:00:00+00:00"), {"reason": "投诉"}),
                ("key:ops#2", "run", "run:7", at("2026-03-10T02:00:00+00:00")))
    items = api.items()
    assert [e["id"] for e in items] == ids[::-1]
    assert items[1] == {"id": ids[0], "actor": "cli", "action": "suppression.add", "target": "sms",
                        "details": {"reason": "投诉"}, "at": items[1]["at"]}
    assert dt.datetime.fromisoformat(items[1]["at"]) == at("2026-03-10T01:00:00+00:00")
    assert items[0]["details"] is None


def test_api_audit_reads_are_not_audited(api, engine):
    api.items()
    api.items("admin")
    assert api.items() == []


ACTIONS = ["rules.reload", "rules.submit", "rules.approve", "rulesets.x", "run", "consent.grant", "rules"]


@pytest.mark.parametrize(("action", "expected"), [
    ("rules.reload", ["rules.reload"]),
    ("rules", ["rules"]),  # exact: no prefix without `.` or `*` at the end
    ("rules.", ["rules.reload", "rules.submit", "rules.approve"]),
    ("rules.*", ["rules.reload", "rules.submit", "rules.approve"]),
    ("rules*", ["rules.reload", "rules.submit", "rules.approve", "rulesets.x", "rules"]),
    ("*", ACTIONS),
    ("consent.*", ["consent.grant"]),
    ("Rules.*", []),  # case counts, on SQLite too
    ("r_les.*", []),  # `_` and `%` are no wildcards
    ("%", []),
    ("rules.%", []),
    ("nope", []),
])
def test_api_audit_action_exact_or_prefix(api, engine, action, expected):
    write(engine, *((f"key:a#{n}", name, None, NOW) for n, name in enumerate(ACTIONS)))
    assert [e["action"] for e in api.items(action=action)] == expected[::-1]


ACTORS = ["key:alice#3", "key:alice#9", "cli:alice", "cli", "key:alice-ops#4", "key:Alice#5", "key:alice#3#7",
          "key:bob#1", "anonymous", "key:al_ce#8"]


@pytest.mark.parametrize(("actor", "expected"), [
    ("alice", ["key:alice#3", "key:alice#9", "cli:alice"]),
    ("key:alice#3", ["key:alice#3"]),
    ("key:alice#3#7", ["key:alice#3#7"]),  # a key named `alice#3`: found by its whole actor only
    ("cli", ["cli"]),
    ("cli:alice", ["cli:alice"]),
    ("Alice", ["key:Alice#5"]),
    ("alice-ops", ["key:alice-ops#4"]),
    ("anonymous", ["anonymous"]),
    ("al_ce", ["key:al_ce#8"]),
    ("al%", []),
    ("ali", []),
    ("key:alice", []),  # a stored actor exactly, or a bare name: nothing in between
])
def test_api_audit_actor_exact_or_bare_name(api, engine, actor, expected):
    write(engine, *((who, "customer.upsert", f"C{n}", NOW) for n, who in enumerate(ACTORS)))
    assert [e["actor"] for e in api.items(actor=actor)] == expected[::-1]


def test_api_audit_finds_the_calling_keys_own_changes(api, engine):
    write(engine, (api.actor("admin"), "consent.grant", "C1:sms", NOW), ("cli", "import", "customers", NOW))
    assert [e["target"] for e in api.items(actor="admin-key")] == ["C1:sms"]


# Asia/Shanghai is UTC+8: its 2026-03-10 is 2026-03-09T16:00Z up to 2026-03-10T16:00Z.
BOUNDARY = ["2026-03-09T15:59:59+00:00", "2026-03-09T16:00:00+00:00", "2026-03-10T15:59:59.999999+00:00",
            "2026-03-10T16:00:00+00:00"]


@pytest.mark.parametrize(("query", "expected"), [
    ({"from": "2026-03-10"}, [1, 2, 3]),
    ({"to": "2026-03-10"}, [0, 1, 2]),  # a date as `to`: that day included
    ({"from": "2026-03-10", "to": "2026-03-10"}, [1, 2]),  # one day, in Shanghai
    ({"from": "2026-03-09", "to": "2026-03-09"}, [0]),
    ({"from": "2026-03-11"}, [3]),
    ({"to": "2026-03-10T00:00:00+08:00"}, [0]),  # a date-time: exclusive
    ({"from": "2026-03-10T00:00:00+08:00"}, [1, 2, 3]),  # inclusive
    ({"from": "2026-03-09T16:00:00Z", "to": "2026-03-10T16:00:00Z"}, [1, 2]),
    ({"from": "2026-03-10T08:00:00+08:00", "to": "2026-03-10T08:00:00+08:00"}, []),
    ({"from": "0001-01-01", "to": "9999-12-31"}, [0, 1, 2, 3]),  # the ends of the calendar are no 500
    ({"from": "9999-12-31T23:59:59-12:00"}, []),
    ({"to": "0001-01-01T00:00:00+14:00"}, []),
])
def test_api_audit_from_to_at_the_shanghai_day_boundary(api, engine, query, expected):
    ids = write(engine, *(("cli", "run", f"run:{n}", at(moment)) for n, moment in enumerate(BOUNDARY)))
    assert [e["id"] for e in api.items(**query)] == [ids[n] for n in expected][::-1]


def test_api_audit_filters_combine(api, engine):
    write(engine, ("key:alice#3", "rules.submit", "a", at("2026-03-10T01:00:00+00:00")),
          ("key:alice#3", "rules.submit", "b", at("2026-03-11T01:00:00+00:00")),
          ("key:bob#4", "rules.approve", "a", at("2026-03-10T02:00:00+00:00")),
          ("key:alice#3", "run", "c", at("2026-03-10T03:00:00+00:00")))
    found = api.items(action="rules.*", actor="alice", **{"from": "2026-03-10", "to": "2026-03-10"})
    assert [(e["action"], e["target"]) for e in found] == [("rules.submit", "a")]


# --------------------------------------------------------------------------- cursor paging


def test_api_audit_cursor_pages_return_every_entry_once_in_order(api, engine):
    ids = write(engine, *(("cli", "run", f"run:{n}", NOW + dt.timedelta(seconds=n)) for n in range(8)))
    write(engine, ("cli", "consent.grant", "other", NOW))  # filtered out on every page
    seen, pages, cursor = [], [], None
    while True:
        resp = api.get("auditor", limit=3, action="run", **({"after": cursor} if cursor else {}))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        page = resp.get_json()
        pages.append(len(page["items"]))
        seen += [e["id"] for e in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
        assert len(pages) < 10
    assert pages == [3, 3, 2]
    assert seen == ids[::-1]


def test_api_audit_last_full_page_then_an_empty_one(api, engine):
    ids = write(engine, *(("cli", "run", f"run:{n}", NOW) for n in range(4)))
    first = api.get("auditor", limit=2).get_json()
    second = api.get("auditor", limit=2, after=first["next"]).get_json()
    third = api.get("auditor", limit=2, after=second["next"]).get_json()
    assert [e["id"] for e in first["items"] + second["items"]] == ids[::-1]
    assert third == {"items": [], "next": None}


def test_api_audit_default_limit_is_50(api, engine):
    write(engine, *(("cli", "run", f"run:{n}", NOW) for n in range(55)))
    page = api.get("auditor").get_json()
    assert len(page["items"]) == 50 and page["next"] is not None
    assert len(api.items(limit=500)) == 55


# --------------------------------------------------------------------------- hostile input: 400, never 500


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-13-01"}, "query.from"),
    ({"from": "tomorrow"}, "query.from"),
    ({"to": "2026-12-1"}, "query.to"),
    ({"to": "2026-03-10T09:00:00"}, "query.to"),  # a date-time needs its offset
    ({"from": "2026-02-30"}, "query.from"),
    ({"from": "+10000-01-01"}, "query.from"),
    ({"after": "abc"}, "query.after"),
    ({"after": "-1"}, "query.after"),
    ({"after": "1.5"}, "query.after"),
    ({"after": "٣"}, "query.after"),  # a digit, but not ASCII
    ({"after": "9" * 30}, "query.after"),  # beyond BIGINT
    ({"limit": "0"}, "query.limit"),
    ({"limit": "501"}, "query.limit"),
    ({"limit": "10000"}, "query.limit"),
    ({"limit": "-5"}, "query.limit"),
    ({"limit": "lots"}, "query.limit"),
    ({"action": "x" * 65}, "query.action"),
    ({"actor": "y" * 65}, "query.actor"),
    ({"action": "x" * 999}, "query.action"),
    ({"actor": "a" * 5000}, "query.actor"),  # refused at the edge (at most 1,000 characters)
    ({"action": "rules.\x00"}, "query.action"),  # NUL: PostgreSQL text cannot hold it
    ({"actor": ""}, "query.actor"),
])
def test_api_audit_hostile_values_answer_400_naming_the_parameter(api, engine, query, field):
    write(engine, ("cli", "run", "run:1", NOW))
    assert_error(api.get("auditor", **query), 400, field)


def test_api_audit_cursor_beyond_the_last_entry_is_an_empty_page(api, engine):
    write(engine, ("cli", "run", "run:1", NOW))
    assert api.get("auditor", after="1").get_json() == {"items": [], "next": None}
    assert len(api.items(after=str(2**63 - 1))) == 1


def test_api_audit_is_documented(api):
    spec = api.client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/audit"]["get"]
    assert set(spec["paths"]["/api/v1/audit"]) == {"get"}
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {"action", "actor", "from", "to", "limit", "after"}
    assert api.client.post("/api/v1/audit", headers={"Authorization": f"Bearer {api.keys['admin'][1]}"}
                           ).status_code == 405


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(settings, engine):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, "CAMPAIGN_ENGINE_TIMEZONE": "Asia/Shanghai"}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def seed_cli(engine) -> list[int]:  # type: ignore[no-untyped-def]
    return write(engine,
                 ("key:alice#3", "rules.submit", "birthday.yaml", at("2026-03-09T15:30:00+00:00"), {"sha": "ab12"}),
                 ("cli:alice", "rules.approve", "birthday.yaml", at("2026-03-09T16:30:00+00:00")),
                 ("key:bob#4", "consent.withdraw", "C1:sms", at("2026-03-10T02:00:00+00:00"),
                  {"mobile": "138****0001", "source": "短信退订"}))


def test_cli_audit_list_one_line_per_entry_in_local_time(cli, engine):
    seed_cli(engine)
    result = cli("audit", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("2026-03-10 10:00+08:00 key:bob#4")
    assert "consent.withdraw" in lines[0] and "C1:sms" in lines[0]
    assert lines[0].endswith('{"mobile":"138****0001","source":"短信退订"}')
    assert lines[1].startswith("2026-03-10 00:30+08:00 cli:alice") and lines[1].endswith("birthday.yaml")
    assert lines[2].startswith("2026-03-09 23:30+08:00 key:alice#3")


def test_cli_audit_list_filters(cli, engine):
    seed_cli(engine)

    def actions(*args: str) -> list[str]:
        result = cli("audit", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [e["action"] for e in json.loads(result.output)]

    assert actions("--action", "rules.*") == ["rules.approve", "rules.submit"]
    assert actions("--action", "rules.submit") == ["rules.submit"]
    assert actions("--actor", "alice") == ["rules.approve", "rules.submit"]
    assert actions("--actor", "key:bob#4") == ["consent.withdraw"]
    assert actions("--from", "2026-03-10") == ["consent.withdraw", "rules.approve"]  # Shanghai's day
    assert actions("--to", "2026-03-09") == ["rules.submit"]
    assert actions("--from", "2026-03-10", "--to", "2026-03-10") == ["consent.withdraw", "rules.approve"]
    assert actions("--to", "2026-03-10T00:30:00+08:00") == ["rules.submit"]
    assert actions("--limit", "1") == ["consent.withdraw"]
    assert actions("--actor", "carol") == []


def test_cli_audit_list_json_is_valid_json(cli, engine):
    ids = seed_cli(engine)
    result = cli("audit", "list", "--json")
    assert result.exit_code == 0
    entries = json.loads(result.output)
    assert [e["id"] for e in entries] == ids[::-1]
    assert set(entries[0]) == {"id", "at", "actor", "action", "target", "details"}
    assert dt.datetime.fromisoformat(entries[0]["at"]) == at("2026-03-10T02:00:00+00:00")
    assert entries[0]["details"] == {"mobile": "138****0001", "source": "短信退订"}
    assert json.loads(cli("audit", "list", "--json", "--actor", "nobody").output) == []


def test_cli_audit_list_nothing_and_bad_dates(cli, engine):
    assert cli("audit", "list").output.strip() == "no audit entries match"
    for option, value in (("--from", "2026-13-01"), ("--to", "yesterday"), ("--from", "2026-03-10T09:00:00")):
        bad = cli("audit", "list", option, value)
        assert bad.exit_code == 2 and option in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("role", ["approver", "auditor"])
def test_cli_apikey_create_for_the_new_roles_is_audited(cli, engine, role):
    created = cli("apikey", "create", "--role", role, "--name", f"{role}-team")
    assert created.exit_code == 0, created.output
    assert created.output.startswith("ce_")
    listed = cli("apikey", "list").output
    assert f"{role}-team {role} live" in listed
    [entry] = json.loads(cli("audit", "list", "--json", "--action", "apikey.*").output)
    assert entry["actor"] == "cli" and entry["details"] == {"role": role}
    assert entry["target"].startswith(f"key:{role}-team#")
