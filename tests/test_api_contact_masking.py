"""Contact data by role in the API, and the message lists' status, date and due_at handling.

Mobile numbers, email addresses and recipients are masked for every role but admin; an operator
(or admin) may ask `?reveal=contact&reason=...`, which is audited with the key and the reason.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from campaign_engine.errors import ConfigError
from campaign_engine.masking import Access, ContactData, contact_access, mask_contact, mask_email, shown
from campaign_engine.settings import load_settings
from campaign_engine.store import outbox
from campaign_engine.store import runs as run_store
from campaign_engine.vocabulary import MessageStatus, Role
from factories import NOW, customer
from test_api import ROLES, Api, api, assert_error, make_api, seed_messages  # noqa: F401 (fixtures)
from test_architecture import FRAMEWORKS, MODULES, direct_violations

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MASKED_SMS, FULL_SMS = "138****0000", "13800000000"
MASKED_EMAIL, FULL_EMAIL = "c***@example.com", "c1@example.com"
MESSAGE_PATHS = ("/api/v1/messages", "/api/v1/customers/C1/messages")


def recipients(api: Api, path: str, role: str, **query: Any) -> set[str]:
    resp = api.call("GET", path, role, query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {m["recipient"] for m in resp.get_json()["items"]}


def write_messages(api: Api, *created: dt.datetime, due_at: dt.datetime | None = None) -> list[int]:
    """One SMS to C1 per creation time (in that order); returns their ids."""
    api.add("customers", customer("C1"))
    with api.engine.begin() as conn:
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=NOW.date(), dry_run=False, now=NOW)
        for n, at in enumerate(created):
            outbox.insert_messages(conn, [{
                "dedupe_key": f"greet|customer|C1|{n}", "run_id": run_id, "rule_id": "greet", "category": "marketing",
                "priority": 50, "customer_id": "C1", "subject_type": "customer", "subject_id": "C1", "channel": "sms",
                "recipient": FULL_SMS, "status": "queued", "subject": None, "body": f"正文{n}", "html": None,
                "sms_segments": 1, "error": None, "consent_source": "test", "consent_at": NOW,
                "created_at": at, "due_at": due_at or at}])
    with api.engine.connect() as conn:
        return [m["id"] for m in reversed(outbox.query_messages(conn, limit=100))]


# --------------------------------------------------------------------------- the policy, pure


@pytest.mark.parametrize(("role", "reveal", "expected"), [
    (Role.VIEWER, False, Access.MASKED), (Role.MARKETER, False, Access.MASKED),
    (Role.OPERATOR, False, Access.MASKED), (Role.ADMIN, False, Access.FULL),
    (Role.VIEWER, True, Access.REFUSED), (Role.MARKETER, True, Access.REFUSED),
    (Role.OPERATOR, True, Access.REVEALED), (Role.ADMIN, True, Access.REVEALED),
    ("no-such-role", False, Access.MASKED), ("no-such-role", True, Access.REFUSED),
])
def test_masking_contact_access_by_role(role, reveal, expected):
    assert contact_access(role, reveal=reveal) is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("13812345678", "138****5678"), ("+86 138 1234 5678", "138****5678"), ("zhang.wei@example.com", "z***@example.com"),
    ("@example.com", "***@example.com"), (None, None), ("", ""), ("  ", "  "),
])
def test_masking_mask_contact_tells_mobile_from_email(value, expected):
    assert mask_contact(value) == expected


def test_masking_mask_email_without_at_shows_nothing():
    assert mask_email("not-an-address") == "***"


def test_masking_shown_masks_only_the_named_fields_and_copies():
    row = {"id": 1, "recipient": FULL_SMS, "body": FULL_SMS}
    assert shown(row, ("recipient",), ContactData.MASKED) == {"id": 1, "recipient": MASKED_SMS, "body": FULL_SMS}
    assert shown(row, ("recipient",), ContactData.FULL) == row and row["recipient"] == FULL_SMS


def test_masking_module_imports_no_framework():
    assert not direct_violations(MODULES["campaign_engine.masking"], FRAMEWORKS)
    imported = {i.target for i in MODULES["campaign_engine.masking"].imports}
    assert {t for t in imported if t.startswith("campaign_engine.")} == {"campaign_engine.vocabulary.Role"}


def test_settings_cli_contact_data_is_full_or_masked():
    assert load_settings(env={}).cli_contact_data is ContactData.FULL
    assert load_settings(env={"CAMPAIGN_ENGINE_CLI_CONTACT_DATA": "Masked"}).cli_contact_data is ContactData.MASKED
    with pytest.raises(ConfigError, match="cli_contact_data"):
        load_settings(env={"CAMPAIGN_ENGINE_CLI_CONTACT_DATA": "partial"})


# --------------------------------------------------------------------------- masked by role


@pytest.mark.parametrize("role", ["viewer", "marketer", "operator"])
def test_api_contact_messages_are_masked_for_every_role_but_admin(api, role):
    ids, _ = seed_messages(api)
    for path in MESSAGE_PATHS:
        assert recipients(api, path, role) == {MASKED_SMS, MASKED_EMAIL}, path
    resp = api.call("GET", f"/api/v1/messages/{ids[3]}", role)
    assert resp.get_json()["recipient"] == MASKED_EMAIL
    text = api.call("GET", "/api/v1/messages", role, query_string={"limit": 1000}).get_data(as_text=True)
    assert FULL_SMS not in text and "@example.com" in text and "c1@" not in text and "c2@" not in text


def test_api_contact_messages_are_full_for_admin(api):
    ids, _ = seed_messages(api)
    assert recipients(api, "/api/v1/customers/C1/messages", "admin") == {FULL_SMS, FULL_EMAIL}
    assert recipients(api, "/api/v1/messages", "admin") == {FULL_SMS, FULL_EMAIL, "c2@example.com", "c3@example.com"}
    assert api.call("GET", f"/api/v1/messages/{ids[3]}", "admin").get_json()["recipient"] == FULL_EMAIL
    assert api.audit() == []  # seeing by role is not a reveal


@pytest.mark.parametrize("role", ["viewer", "marketer", "operator"])
def test_api_contact_customers_are_masked_for_every_role_but_admin(api, role):
    api.add("customers", customer("C1", mobile="13912345678", email="zhang.wei@example.com"))
    one = api.call("GET", "/api/v1/customers/C1", role).get_json()
    [listed] = api.call("GET", "/api/v1/customers", role).get_json()["items"]
    for body in (one, listed):
        assert (body["mobile"], body["email"]) == ("139****5678", "z***@example.com")
        assert body["name"] == "张伟"  # only contact data is masked
    admin = api.call("GET", "/api/v1/customers/C1", "admin").get_json()
    assert (admin["mobile"], admin["email"]) == ("13912345678", "zhang.wei@example.com")


def test_api_contact_filters_work_on_masked_answers(api):
    ids, runs = seed_messages(api)
    for query, expected in [({"customer": "C1"}, [0, 2, 3]), ({"rule": "rate-change-notice"}, [3, 4, 5]),
                            ({"status": "failed"}, [2, 5]), ({"customer": "C3", "channel": "sms"}, [5])]:
        body = api.call("GET", "/api/v1/messages", "viewer", query_string=query).get_json()
        assert [m["id"] for m in body["items"]] == sorted((ids[i] for i in expected), reverse=True), query
        assert all("*" in m["recipient"] for m in body["items"])
    pages = [api.call("GET", "/api/v1/customers/C1/messages", "viewer", query_string={"limit": 1, **after}).get_json()
             for after in ({}, {"after": str(ids[3])})]
    assert [p["items"][0]["id"] for p in pages] == [ids[3], ids[2]]  # the cursor is the id, never contact data


# --------------------------------------------------------------------------- reveal


@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_api_contact_operator_reveal_answers_full_and_is_audited(api, path):
    ids, _ = seed_messages(api)
    query = {"reveal": "contact", "reason": "complaint 2026-0311-17", "channel": "email"}
    resp = api.call("GET", path, "operator", query_string=query)
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    assert {m["recipient"] for m in items} == {"c1@example.com"} | ({"c2@example.com", "c3@example.com"}
                                                                    if path == "/api/v1/messages" else set())
    [entry] = api.audit()
    target = "messages" if path == "/api/v1/messages" else "customer:C1:messages"
    assert (entry["actor"], entry["action"], entry["target"], entry["at"]) == (
        api.actor("operator"), "contact.reveal", target, NOW)
    assert entry["details"] == {"reason": "complaint 2026-0311-17", "revealed": [m["id"] for m in items]}


def test_api_contact_reveal_of_one_message_and_one_customer_is_audited(api):
    ids, _ = seed_messages(api)
    reveal = {"reveal": "contact", "reason": "wrong number reported"}
    assert api.call("GET", f"/api/v1/messages/{ids[0]}", "operator", query_string=reveal).get_json()[
        "recipient"] == FULL_SMS
    customer_body = api.call("GET", "/api/v1/customers/C1", "operator", query_string=reveal).get_json()
    assert (customer_body["mobile"], customer_body["email"]) == (FULL_SMS, FULL_EMAIL)
    listed = api.call("GET", "/api/v1/customers", "admin", query_string=reveal).get_json()["items"]
    assert [c["customer_id"] for c in listed] == ["C1", "C2", "C3"]
    assert [(e["actor"], e["target"], e["details"]) for e in api.audit()] == [
        (api.actor("operator"), f"message:{ids[0]}", {"reason": "wrong number reported", "revealed": [ids[0]]}),
        (api.actor("operator"), "customer:C1", {"reason": "wrong number reported", "revealed": ["C1"]}),
        (api.actor("admin"), "customers", {"reason": "wrong number reported", "revealed": ["C1", "C2", "C3"]}),
    ]


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_api_contact_reveal_by_viewer_or_marketer_answers_403(api, role):
    ids, _ = seed_messages(api)
    reveal = {"reveal": "contact", "reason": "curious"}
    for path in (*MESSAGE_PATHS, f"/api/v1/messages/{ids[0]}", "/api/v1/customers", "/api/v1/customers/C1"):
        resp = api.call("GET", path, role, query_string=reveal)
        assert_error(resp, 403, path)
        assert "reveal" in resp.get_json()["error"]["message"]
        assert FULL_SMS not in resp.get_data(as_text=True)
    assert api.audit() == []


@pytest.mark.parametrize(("query", "field"), [
    ({"reveal": "contact"}, "query.reason"),
    ({"reveal": "contact", "reason": "   "}, "query.reason"),
    ({"reveal": "contact", "reason": "two\nlines"}, "query.reason"),
    ({"reveal": "contact", "reason": "x" * 201}, "query.reason"),
    ({"reason": "why not"}, "query.reason"),
    ({"reveal": "everything", "reason": "why not"}, "query.reveal"),
])
def test_api_contact_reveal_needs_a_reason_in_plain_text(api, query, field):
    seed_messages(api)
    for path in ("/api/v1/messages", "/api/v1/customers/C1"):
        details = assert_error(api.call("GET", path, "operator", query_string=query), 400, path)
        assert field in details["fields"], details
    assert api.audit() == []


def test_api_contact_openapi_says_contact_data_is_masked(api):
    spec = json.loads(api.call("GET", "/api/v1/openapi.json").get_data(as_text=True))
    schemas = spec["components"]["schemas"]
    for schema, field in (("Message", "recipient"), ("Customer", "mobile"), ("Customer", "email")):
        description = schemas[schema]["properties"][field]["description"]
        assert "masked" in description and "admin" in description and "reveal=contact" in description
    assert "due_at" in schemas["Message"]["properties"]
    for path in ("/api/v1/messages", "/api/v1/messages/{message_id}", "/api/v1/customers/{customer_id}/messages",
                 "/api/v1/customers", "/api/v1/customers/{customer_id}"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert params["reveal"]["schema"]["enum"] == ["contact"], path
        assert "audit" in params["reveal"]["description"] and "reason" in params, path
    params = {p["name"]: p for p in spec["paths"]["/api/v1/messages"]["get"]["parameters"]}
    assert params["status"]["schema"]["enum"] == [s.value for s in MessageStatus]
    assert "time zone" in params["from"]["description"] and "time zone" in params["to"]["description"]


# --------------------------------------------------------------------------- due_at, status, dates


def test_api_messages_answer_due_at(api):
    created = NOW
    due = dt.datetime(2026, 3, 10, 8, 0, tzinfo=SHANGHAI)
    [message_id] = write_messages(api, created, due_at=due)
    for path in ("/api/v1/messages", "/api/v1/customers/C1/messages"):
        [item] = api.call("GET", path, "viewer").get_json()["items"]
        assert dt.datetime.fromisoformat(item["due_at"]) == due, path
    assert dt.datetime.fromisoformat(api.call("GET", f"/api/v1/messages/{message_id}", "viewer").get_json()[
        "due_at"]) == due


@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_api_messages_unknown_status_answers_400_naming_the_statuses(api, path):
    seed_messages(api)
    details = assert_error(api.call("GET", path, "viewer", query_string={"status": "bogus"}), 400)
    [reason] = details["fields"]["query.status"]
    assert all(status.value in reason for status in MessageStatus), reason


def test_api_messages_date_only_from_to_are_whole_days_in_the_configured_time_zone(api):
    times = [dt.datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI), dt.datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI),
             dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=SHANGHAI), dt.datetime(2026, 12, 2, 0, 0, tzinfo=SHANGHAI)]
    ids = write_messages(api, *times)

    def listed(**query: str) -> list[int]:
        resp = api.call("GET", "/api/v1/messages", "viewer", query_string=query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return sorted(m["id"] for m in resp.get_json()["items"])

    assert listed(**{"from": "2026-12-01", "to": "2026-12-01"}) == [ids[1], ids[2]]  # 23:59:59 included
    assert listed(**{"from": "2026-12-01"}) == [ids[1], ids[2], ids[3]]
    assert listed(**{"to": "2026-11-30"}) == [ids[0]]
    assert listed(**{"from": "2026-12-01T12:00:00+08:00", "to": "2026-12-02"}) == [ids[2], ids[3]]
    assert listed(**{"to": "2026-12-01T23:59:59+08:00"}) == [ids[0], ids[1]]  # a date-time stays exclusive
    customer = api.call("GET", "/api/v1/customers/C1/messages", "viewer",
                        query_string={"from": "2026-12-01", "to": "2026-12-01"}).get_json()["items"]
    assert sorted(m["id"] for m in customer) == [ids[1], ids[2]]


@pytest.mark.parametrize("value", ["2026-13-01", "2026-12-01T09:00:00", "tomorrow", "2026-12-1"])
def test_api_messages_bad_from_answers_400(api, value):
    details = assert_error(api.call("GET", "/api/v1/messages", "viewer", query_string={"from": value}), 400)
    assert "query.from" in details["fields"]


@pytest.mark.parametrize(("query", "count"), [
    ({"from": "0001-01-01"}, 1), ({"to": "0001-01-01"}, 0), ({"to": "9999-12-31"}, 1),
    ({"from": "9999-12-31T23:59:59-12:00"}, 0), ({"to": "0001-01-01T00:00:00+14:00"}, 0),
])
def test_api_messages_dates_at_the_ends_of_the_calendar_are_not_server_errors(api, query, count):
    write_messages(api, NOW)
    resp = api.call("GET", "/api/v1/messages", "viewer", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(resp.get_json()["items"]) == count


def test_api_contact_roles_cover_every_role():
    assert set(ROLES) == {role.value for role in Role}
