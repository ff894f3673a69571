"""A rule's life after its first publish, as marketing and reviewers meet it: the emergency stop,
the enable that undoes it, new versions of a stopped rule, and the pending drafts each step leaves
(superseded, never stuck); and the edges of the drafts and audit endpoints.

Driven through the API (Flask test client) and the CLI on the real test database, with
`approval: required` (test_publishing's Desk).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from campaign_engine.cli import main
from campaign_engine.pipeline import publishing
from campaign_engine.store import apikeys
from campaign_engine.store.models import RuleDraft
from factories import NOW, TODAY, customer, rule_yaml
from test_publishing import RULE, RULE_V2, Desk

LOCAL_NOW = "2026-03-10 09:00+08:00"  # NOW in the configured time zone (Asia/Shanghai)


@pytest.fixture
def desk(world, engine):
    world.add("customers", customer("C1", tier="gold"), customer("C2", tier="platinum", mobile="13800000002"))
    desk = Desk(world, engine)
    with engine.begin() as conn:
        desk.keys["carol"] = apikeys.create_key(conn, name="carol", role="marketer", now=NOW)
    yield desk
    desk.close()


def actor(desk: Desk, who: str) -> str:
    return f"key:{who}#{desk.keys[who][0]}"


def cli(desk: Desk, *args: str, key: str | None = None) -> Any:
    env = {**({"CAMPAIGN_ENGINE_API_KEY": key} if key else {}),"CAMPAIGN_ENGINE_DATABASE_URL": desk.world.settings.database_url, "CAMPAIGN_ENGINE_APPROVAL": "required",
           "CAMPAIGN_ENGINE_RULES_DIR": str(desk.world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(desk.world.settings.templates_dir)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def send(desk: Desk, method: str, path: str, who: str, headers: dict[str, str], **kw: Any) -> Any:
    """A request with headers of its own (a Content-Type, or none at all)."""
    return desk.client.open(path, method=method, headers={"Authorization": f"Bearer {desk.keys[who][1]}", **headers},
                            **kw)


def live_and_stopped(desk: Desk, who: str = "carol", reason: str = "wrong text") -> None:
    """gold-greet v1 live, then stopped by `who`."""
    assert desk.approve(desk.submit(RULE).get_json()["id"]).status_code == 200
    stop = desk.call("POST", "/api/v1/rules/gold-greet/disable", who, json={"reason": reason})
    assert stop.status_code == 200


def enable(desk: Desk, rule_id: str = "gold-greet", who: str = "alice") -> dict[str, Any]:
    answer = desk.call("POST", f"/api/v1/rules/{rule_id}/enable", who, json={"note": "text fixed"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def draft(desk: Desk, draft_id: int) -> dict[str, Any]:
    return desk.call("GET", f"/api/v1/rules/drafts/{draft_id}", "viewer").get_json()


def diff(desk: Desk, draft_id: int) -> dict[str, Any]:
    answer = desk.call("GET", f"/api/v1/rules/drafts/{draft_id}/diff?date={TODAY.isoformat()}", "approver")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# --------------------------------------------------------------------------- the diff of a stop

def test_the_diff_of_an_enable_adds_everyone_the_stopped_rule_would_contact(desk):
    live_and_stopped(desk)
    asked = enable(desk)
    body = diff(desk, asked["id"])
    # the disabled live rule sends nothing: the enable adds its whole audience, and says why
    assert (body["added"], body["removed"], body["sample_added"]) == (1, 0, ["C1"])
    assert body["live"]["queued"] == 0 and body["draft"]["queued"] == 1
    assert body["by_reason"]["sent"] == {"live": 0, "draft": 1, "delta": 1}
    assert body["live"]["skipped"] == f"disabled by {actor(desk, 'carol')} at {LOCAL_NOW}: wrong text"
    assert "switches it on" in body["note"] and "contacts nobody now" in body["note"]
    assert body["explain"] == {"C1": [{"policy": {"live": "disabled", "draft": "sent"}}]}
    shown = cli(desk, "rules", "diff", str(asked["id"]), "--date", TODAY.isoformat())
    assert shown.exit_code == 0, shown.output
    assert "+1 added, -0 removed" in shown.output and "note: gold-greet is disabled by" in shown.output
    assert "live: contacts nobody on this date (disabled by" in shown.output
    assert desk.world.messages() == []


def test_a_new_version_of_a_stopped_rule_stays_stopped_and_its_diff_says_so(desk):
    live_and_stopped(desk)
    new = desk.submit(RULE_V2, note="platinum too").get_json()
    body = diff(desk, new["id"])
    assert (body["added"], body["removed"]) == (0, 0)
    assert body["live"]["queued"] == 0 and body["draft"]["queued"] == 0
    assert body["by_reason"]["sent"] == {"live": 0, "draft": 0, "delta": 0}
    assert body["draft"]["skipped"].startswith(f"stays disabled by {actor(desk, 'carol')}")
    assert "stays stopped when approved" in body["note"] and "rules enable gold-greet" in body["note"]
    assert desk.approve(new["id"]).status_code == 200
    live = desk.live()["gold-greet"]  # what the diff said: approved, and still stopped
    assert (live["version"], live["status"]) == (2, "disabled")
    # the enable's diff now shows whom v2 would contact
    assert diff(desk, enable(desk)["id"])["sample_added"] == ["C1", "C2"]


# --------------------------------------------------------------------------- who stopped it

def test_approving_a_new_version_keeps_who_stopped_the_rule_when_and_why(desk):
    live_and_stopped(desk, who="carol", reason="错误的利率")
    assert desk.approve(desk.submit(RULE_V2, note="platinum too").get_json()["id"], who="bob").status_code == 200
    carol = actor(desk, "carol")
    stopped = desk.live()["gold-greet"]["disabled"]
    assert stopped == f"disabled by {carol} at {NOW.isoformat(timespec='seconds')}: 错误的利率"
    assert "bob" not in stopped
    listed = cli(desk, "rules", "list")
    assert listed.exit_code == 0, listed.output
    assert f"[disabled by {carol} at {LOCAL_NOW}: 错误的利率]" in listed.output
    assert "+00:00" not in listed.output  # local times with their offset, like the rest of the CLI
    assert ("rules.disable", carol) in {(e["action"], e["actor"]) for e in desk.call(
        "GET", "/api/v1/audit?action=rules.disable", "auditor").get_json()["items"]}
    # the stop is still carol's in the runs too
    assert publishing.live_rulebook(desk.services().store).stopped["gold-greet"].startswith(f"disabled by {carol}")


# --------------------------------------------------------------------------- enables never cancel each other

def _item(text: str) -> str:
    head, *rest = text.splitlines()
    return "- " + head + "\n" + "".join(f"  {line}\n" for line in rest)


def test_enabling_two_rules_of_one_file_keeps_both_requests(desk):
    two = _item(rule_yaml("greet-a", "  customer.tier: gold\n", channels="[sms]")) + _item(
        rule_yaml("greet-b", "  customer.tier: platinum\n", channels="[sms]"))
    assert desk.approve(desk.submit(two, file="two.yaml").get_json()["id"]).status_code == 200
    for rule_id in ("greet-a", "greet-b"):
        assert desk.call("POST", f"/api/v1/rules/{rule_id}/disable", "carol", json={"reason": "pause"}).status_code == 200
    first, second = enable(desk, "greet-a"), enable(desk, "greet-b")
    assert (draft(desk, first["id"])["status"], draft(desk, second["id"])["status"]) == ("pending", "pending")
    again = enable(desk, "greet-a")  # a later enable of the same rule does supersede
    assert draft(desk, first["id"])["status"] == "superseded"
    assert draft(desk, first["id"])["reason"] == f"superseded by draft {again['id']}"
    assert draft(desk, second["id"])["status"] == "pending"
    assert desk.approve(second["id"]).status_code == 200 and desk.approve(again["id"]).status_code == 200
    assert {r: desk.live()[r]["status"] for r in ("greet-a", "greet-b")} == {"greet-a": "live", "greet-b": "live"}


# --------------------------------------------------------------------------- stale enables are cleared

def test_a_new_version_supersedes_the_pending_enable_requested_before_it(desk):
    live_and_stopped(desk)
    asked = enable(desk)
    assert desk.call("GET", "/api/v1/rules", "viewer").get_json()["pending_drafts"] == 1
    new = desk.submit(RULE_V2, note="platinum too").get_json()
    assert draft(desk, asked["id"])["status"] == "pending"  # a pending publish does not take it away
    assert desk.approve(new["id"]).status_code == 200
    stale = draft(desk, asked["id"])
    assert stale["status"] == "superseded"
    assert stale["reason"] == (f"rule gold-greet was published at version 2 (draft {new['id']}) after this "
                               "enable was requested: request the enable again")
    assert desk.call("GET", "/api/v1/rules", "viewer").get_json()["pending_drafts"] == 0
    refused = desk.approve(asked["id"])
    assert refused.status_code == 409 and "superseded" in refused.get_json()["error"]["message"]
    assert desk.live()["gold-greet"]["status"] == "disabled"


def _left_pending(desk: Desk, draft_id: int) -> None:
    """A stale enable as an older version of the engine left it: still pending."""
    with desk.engine.begin() as conn:
        conn.execute(update(RuleDraft).where(RuleDraft.id == draft_id).values(
            status="pending", decided_by=None, decided_at=None, reason=None))


def test_approving_a_stale_enable_is_a_clear_409_and_marks_it_superseded(desk):
    live_and_stopped(desk)
    asked = enable(desk)
    assert desk.approve(desk.submit(RULE_V2, note="platinum too").get_json()["id"]).status_code == 200
    _left_pending(desk, asked["id"])
    refused = desk.approve(asked["id"])
    assert refused.status_code == 409
    message = refused.get_json()["error"]["message"]
    assert message.startswith(f"draft {asked['id']} is stale: rule gold-greet was published at version 2")
    assert "marked superseded" in message and "rules enable gold-greet" in message
    assert draft(desk, asked["id"])["status"] == "superseded"
    assert desk.live()["gold-greet"]["status"] == "disabled" and desk.live()["gold-greet"]["version"] == 2
    assert ("rules.approve_refused" in [a for _, a in desk.audit()])
    # the CLI: exit 2 (nothing to retry), the reason, and it is no longer pending
    _left_pending(desk, asked["id"])
    with desk.engine.begin() as conn:
        _, secret = apikeys.create_key(conn, name="dave", role="approver", now=NOW)
    answer = cli(desk, "rules", "approve", str(asked["id"]), "--as", "dave", key=secret)
    assert answer.exit_code == 2 and "is stale" in answer.output, answer.output
    assert draft(desk, asked["id"])["status"] == "superseded"
    pending = cli(desk, "rules", "drafts", "--status", "pending")
    assert pending.output.strip() == "no drafts pending"


def test_an_enable_answers_201_with_iso_dates(desk):
    live_and_stopped(desk)
    created = enable(desk)["created_at"]
    assert dt.datetime.fromisoformat(created) == NOW and "GMT" not in created
    assert dt.datetime.fromisoformat(created).utcoffset() is not None


# --------------------------------------------------------------------------- the drafts endpoint's edges

@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}], ids=["text/plain", "none"])
def test_a_draft_body_neither_yaml_nor_json_is_415_naming_the_accepted_types(desk, headers):
    answer = send(desk, "POST", "/api/v1/rules/drafts?file=greet.yaml&note=gold", "alice", headers, data=RULE.encode())
    assert answer.status_code == 415, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/yaml" in error["message"] and "?file=...&note=..." in error["message"]
    assert "application/json" in error["message"]
    assert "application/json" in error["details"]["accepted"]
    assert desk.call("GET", "/api/v1/rules/drafts", "viewer").get_json()["items"] == []


def test_validate_refuses_a_plain_text_body_the_same_way(desk):
    answer = send(desk, "POST", "/api/v1/rules/validate", "alice", {"Content-Type": "text/plain"}, data=RULE.encode())
    assert answer.status_code == 415 and "application/yaml" in answer.get_json()["error"]["message"]


def _yaml_submit(desk: Desk, note: str) -> Any:
    return send(desk, "POST", "/api/v1/rules/drafts", "alice", {"Content-Type": "application/yaml"},
                query_string={"file": "greet.yaml", "note": note}, data=RULE.encode())


def test_a_note_in_the_query_string_may_have_the_documented_2000_characters(desk):
    assert publishing.NOTE_MAX == 2000
    fits = _yaml_submit(desk, "生" * 2000)
    assert fits.status_code == 201, fits.get_json()
    assert len(fits.get_json()["note"]) == 2000
    over = _yaml_submit(desk, "生" * 2001)
    assert over.status_code == 400
    assert "query.note" in over.get_json()["error"]["details"]["fields"]
    # other query parameters keep the edge's 1,000 characters
    long_file = send(desk, "POST", "/api/v1/rules/drafts", "alice", {"Content-Type": "application/yaml"},
                     query_string={"file": "a" * 1001 + ".yaml", "note": "n"}, data=RULE.encode())
    assert long_file.status_code == 400 and "1000 characters" in long_file.get_json()["error"]["message"]


# --------------------------------------------------------------------------- unknown query parameters

@pytest.mark.parametrize(("path", "typo", "meant"), [
    ("/api/v1/audit?actors=alice", "actors", "actor"),
    ("/api/v1/audit?bogus=1", "bogus", None),
    ("/api/v1/rules/drafts?stauts=pending", "stauts", "status"),
    ("/api/v1/messages?limt=5", "limt", "limit"),
    ("/api/v1/runs?afterr=3", "afterr", "after"),
])
def test_an_unknown_query_parameter_is_a_400_naming_it(desk, path, typo, meant):
    answer = desk.call("GET", path, "admin")
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert f"unknown query parameter '{typo}'" in error["message"]
    assert (f"(did you mean '{meant}'?)" in error["message"]) == (meant is not None)
    assert f"query.{typo}" in error["details"]["fields"]


def test_the_known_audit_parameters_still_filter(desk):
    desk.submit(RULE)
    answer = desk.call("GET", "/api/v1/audit?actor=alice&action=rules.submit&limit=5", "auditor")
    assert answer.status_code == 200
    assert [(e["action"], e["actor"]) for e in answer.get_json()["items"]] == [("rules.submit", actor(desk, "alice"))]
    assert desk.call("GET", "/api/v1/audit?actor=nobody&action=rules.*", "auditor").get_json()["items"] == []


def test_help_and_api_docs_name_an_action_that_exists(desk):
    helped = CliRunner().invoke(main, ["audit", "list", "--help"])
    assert helped.exit_code == 0 and "rules.approve" in helped.output and "rules.reload" not in helped.output
    spec = json.dumps(desk.client.get("/api/v1/openapi.json").get_json())
    assert "rules.reload" not in spec and "rules.approve" in spec


# --------------------------------------------------------------------------- rules list

def test_rules_list_points_at_pending_drafts_when_nothing_is_live(desk):
    fresh = cli(desk, "rules", "list")
    assert fresh.exit_code == 0 and "rules publish --all" in fresh.output
    desk.submit(RULE)
    listed = cli(desk, "rules", "list")
    assert listed.exit_code == 0, listed.output
    assert "no published rules yet; 1 draft(s) await approval" in listed.output
    assert "campaign-engine rules drafts --status pending" in listed.output
    assert "rules approve DRAFT --as NAME" in listed.output
    assert "rules publish --all" not in listed.output
    assert json.loads(cli(desk, "rules", "list", "--json").output)["pending_drafts"] == 1
