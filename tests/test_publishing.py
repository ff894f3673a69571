"""Rules owned by marketing: drafts, four-eyes approval, versions, the emergency stop, history, export.

Driven through the API (Flask test client) and the CLI on the real test database, with
`approval: required` as a bank runs it; the multi-process checks are in test_publishing_processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign_engine.api import create_app
from campaign_engine.bootstrap import open_services
from campaign_engine.cli import main
from campaign_engine.pipeline import publishing
from campaign_engine.store import apikeys
from campaign_engine.store.models import AuditEntry, CampaignRun
from campaign_engine.vocabulary import Approval, EventType
from factories import GREETING_SMS, NOW, TODAY, World, customer, rule_yaml, run_day

RULE = rule_yaml("gold-greet", "  customer.tier: gold\n", channels="[sms]")
RULE_V2 = rule_yaml("gold-greet", "  customer.tier: {in: [gold, platinum]}\n", channels="[sms]")
ROLES = ("viewer", "marketer", "approver", "auditor", "operator", "admin")


class Desk:
    """One app with approval required, keys per role (a second marketer and approver too)."""

    def __init__(self, world: World, engine: Any):
        self.world = world
        self.engine = engine
        with engine.begin() as conn:
            self.keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW) for role in ROLES}
            self.keys["bob"] = apikeys.create_key(conn, name="bob", role="approver", now=NOW)
            self.keys["alice"] = apikeys.create_key(conn, name="alice", role="marketer", now=NOW)
            self.keys["alice-approver"] = apikeys.create_key(conn, name="alice", role="approver", now=NOW)
        self.settings = world.settings.replace(approval=Approval.REQUIRED)
        self.app = create_app(self.settings, clock=lambda: NOW)
        self.client = self.app.test_client()

    def call(self, method: str, path: str, who: str, **kw: Any) -> Any:
        return self.client.open(path, method=method, headers={"Authorization": f"Bearer {self.keys[who][1]}"}, **kw)

    def submit(self, source: str, who: str = "alice", file: str = "greet.yaml", note: str = "gold customers",
               templates: dict[str, str] | None = None) -> Any:
        body: dict[str, Any] = {"file": file, "source": source, "note": note,
                                "templates": {"greet/sms.txt.j2": GREETING_SMS} if templates is None else templates}
        return self.call("POST", "/api/v1/rules/drafts", who, json=body)

    def approve(self, draft_id: int, who: str = "bob", **body: Any) -> Any:
        return self.call("POST", f"/api/v1/rules/drafts/{draft_id}/approve", who, json=body)

    def live(self) -> dict[str, Any]:
        return {r["id"]: r for r in self.call("GET", "/api/v1/rules", "viewer").get_json()["items"]}

    def audit(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.actor, r.action) for r in conn.execute(select(AuditEntry).order_by(AuditEntry.id))]

    def services(self) -> Any:
        services = open_services(self.settings)
        self.world.opened.append(services)
        return services

    def close(self) -> None:
        state = self.app.extensions["campaign"]
        state.wait(30)
        state.runtime.close()


@pytest.fixture
def desk(world, engine):
    world.add("customers", customer("C1", tier="gold"), customer("C2", tier="platinum", mobile="13800000002"))
    desk = Desk(world, engine)
    yield desk
    desk.close()


def test_a_submitted_draft_is_pending_and_runs_nowhere_until_someone_else_approves_it(desk):
    answer = desk.submit(RULE)
    assert answer.status_code == 201
    draft = answer.get_json()
    assert draft["status"] == "pending" and draft["rules"] == ["gold-greet"] and len(draft["content_hash"]) == 64
    assert draft["changes"] == [{"rule": "gold-greet", "template": "greet", "content_hash": draft["changes"][0]["content_hash"],
                                 "base_version": None, "change": "new"}]
    assert desk.live() == {}
    # an unapproved draft never fires: not by a run of every rule, nor by naming it
    assert run_day(desk.services(), today=TODAY, now=NOW)["rules"] == []
    run = desk.call("POST", "/api/v1/runs", "operator", json={"date": TODAY.isoformat(), "rules": ["gold-greet"]})
    assert run.status_code == 404
    assert desk.world.messages() == []

    refused = desk.approve(draft["id"], who="alice-approver")  # the author, with her approver key
    assert refused.status_code == 403 and "four eyes" in refused.get_json()["error"]["message"]
    assert desk.live() == {}
    approved = desk.approve(draft["id"], content_hash=draft["content_hash"])
    assert approved.status_code == 200 and approved.get_json()["status"] == "live"
    live = desk.live()["gold-greet"]
    assert (live["version"], live["status"], live["approver"]) == (1, "live", f"key:bob#{desk.keys['bob'][0]}")
    assert live["author"] == f"key:alice#{desk.keys['alice'][0]}"
    report = run_day(desk.services(), today=TODAY, now=NOW)
    assert [m.customer_id for m in desk.world.messages()] == ["C1"]
    assert [m.rule_version for m in desk.world.messages()] == [1]
    with desk.engine.connect() as conn:
        recorded = conn.execute(select(CampaignRun.rule_versions).where(CampaignRun.id == report["run_id"])).scalar_one()
    assert recorded == {"gold-greet": {"version": 1, "hash": live["content_hash"], "generation": 1}}
    actions = [a for _, a in desk.audit()]
    assert actions[-3:] == ["rules.submit", "rules.approve_refused", "rules.approve"]


def test_approving_content_a_then_editing_to_b_needs_a_new_approval(desk):
    a = desk.submit(RULE).get_json()
    desk.approve(a["id"])
    b = desk.submit(RULE_V2, note="platinum too").get_json()
    assert b["status"] == "pending" and b["changes"][0]["change"] == "changed" and b["changes"][0]["base_version"] == 1
    assert desk.live()["gold-greet"]["version"] == 1  # A keeps running
    run_day(desk.services(), today=TODAY, now=NOW)
    assert [m.customer_id for m in desk.world.messages()] == ["C1"]
    # the approver reviewed other content: refused, nothing changes
    stale = desk.approve(b["id"], content_hash=a["content_hash"])
    assert stale.status_code == 409
    assert desk.approve(b["id"]).status_code == 200
    assert desk.live()["gold-greet"]["version"] == 2
    shown = desk.call("GET", f"/api/v1/rules/drafts/{b['id']}", "viewer").get_json()
    assert "-  customer.tier: gold" in shown["diff"] and "+  customer.tier: {in: [gold, platinum]}" in shown["diff"]


def test_an_unchanged_resubmission_is_live_at_once_and_makes_no_version(desk):
    a = desk.submit(RULE).get_json()
    desk.approve(a["id"])
    again = desk.submit(RULE.replace("id:", "# same rule, a comment\nid:"), note="comment only").get_json()
    assert again["status"] == "live" and again["changes"][0]["change"] == "unchanged"
    versions = desk.call("GET", "/api/v1/rules/gold-greet/versions", "viewer").get_json()["items"]
    assert [v["version"] for v in versions] == [1]


def test_a_draft_based_on_an_older_version_is_refused_after_another_publish(desk):
    first = desk.submit(RULE).get_json()
    desk.approve(first["id"])
    one = desk.submit(RULE_V2, note="platinum too").get_json()
    other = desk.submit(RULE.replace("测试gold-greet", "金卡问候"), file="greet.yaml", note="rename").get_json()
    # a newer draft of the same file supersedes the older pending one
    assert desk.call("GET", f"/api/v1/rules/drafts/{one['id']}", "viewer").get_json()["status"] == "superseded"
    assert desk.approve(one["id"]).status_code == 409
    assert desk.approve(other["id"]).status_code == 200
    assert desk.live()["gold-greet"]["name"] == "金卡问候"


def test_a_broken_file_never_takes_the_live_rule_away(desk):
    desk.approve(desk.submit(RULE).get_json()["id"])
    broken = desk.submit(RULE.replace("customer.tier: gold", "customer.teir: gold"), note="typo").get_json()
    assert broken["status"] == "invalid"
    [problem] = broken["problems"]
    assert problem["file"] == "greet.yaml" and problem["line"] == 7 and "customer.tier" in problem["reason"]
    assert desk.approve(broken["id"]).status_code == 409  # invalid: nothing to approve
    assert desk.live()["gold-greet"]["version"] == 1
    run_day(desk.services(), today=TODAY, now=NOW)
    assert [m.customer_id for m in desk.world.messages()] == ["C1"]


def test_a_yaml_body_submits_the_same_way_and_templates_travel_with_the_draft(desk):
    lonely = desk.call("POST", "/api/v1/rules/drafts?file=greet.yaml&note=via%20yaml", "alice", data=RULE,
                       content_type="application/yaml")
    assert lonely.status_code == 201 and lonely.get_json()["status"] == "invalid"
    assert "no template folder greet/" in lonely.get_json()["problems"][0]["reason"]
    desk.approve(desk.submit(RULE).get_json()["id"])
    # the live set has the template now: a YAML body alone is enough, its templates are the live ones
    answer = desk.call("POST", "/api/v1/rules/drafts?file=greet.yaml&note=via%20yaml", "alice", data=RULE_V2,
                       content_type="application/yaml")
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    new_text = "{{ customer.name | salutation(customer.gender) }}，新春快乐"
    with_template = desk.submit(RULE.replace("template: greet", "template: spring"), file="spring.yaml",
                                templates={"spring/sms.txt.j2": new_text}).get_json()
    assert with_template["status"] == "invalid"  # the same rule id from another file
    assert [p["reason"] for p in with_template["problems"]] == [
        "rule id gold-greet is live from greet.yaml: a rule id belongs to one file"]
    spring = rule_yaml("spring-greet", "  customer.tier: platinum\n", channels="[sms]", template="spring")
    fresh = desk.submit(spring, file="spring.yaml", templates={"spring/sms.txt.j2": new_text}).get_json()
    assert fresh["status"] == "pending"
    desk.approve(fresh["id"])
    run_day(desk.services(), today=TODAY, now=NOW)
    [message] = desk.world.messages(rule_id="spring-greet")
    assert "新春快乐" in message.body  # the published template's text, not a file on this server
    typo = desk.submit(RULE, templates={"gret/sms.txt.j2": "x"}).get_json()
    assert typo["status"] == "invalid" and "not used by any rule" in typo["problems"][0]["reason"]


def test_roles_submit_approve_and_read_as_their_role_allows(desk):
    assert desk.submit(RULE, who="viewer").status_code == 403
    assert desk.submit(RULE, who="approver").status_code == 403
    draft = desk.submit(RULE).get_json()
    assert desk.approve(draft["id"], who="marketer").status_code == 403
    assert desk.approve(draft["id"], who="operator").status_code == 403
    assert desk.call("GET", "/api/v1/rules/drafts?status=pending", "viewer").get_json()["items"][0]["id"] == draft["id"]
    rejected = desk.call("POST", f"/api/v1/rules/drafts/{draft['id']}/reject", "admin", json={"reason": "wrong tier"})
    assert rejected.status_code == 200 and rejected.get_json()["status"] == "rejected"
    assert desk.approve(draft["id"]).status_code == 409
    assert desk.call("POST", "/api/v1/rules/reload", "marketer").status_code == 410


def test_disable_is_immediate_and_enable_needs_approval(desk):
    desk.approve(desk.submit(RULE).get_json()["id"])
    services = desk.services()  # a process that opened before the stop
    run_day(services, today=TODAY, now=NOW)
    [queued] = desk.world.messages()
    assert queued.status == "queued"
    assert desk.call("POST", "/api/v1/rules/gold-greet/disable", "marketer", json={}).status_code == 400
    stop = desk.call("POST", "/api/v1/rules/gold-greet/disable", "marketer", json={"reason": "wrong text"})
    assert stop.status_code == 200 and stop.get_json()["suppressed_messages"] == 1
    [suppressed] = desk.world.messages()
    assert (suppressed.status, suppressed.suppressed_reason) == ("suppressed", "rule_disabled")
    # the process that opened before sees it at its next run, without any reload
    report = run_day(services, today=TODAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    [stats] = report["rules"]  # its rule set is from before the stop: each shard checks, and skips it
    marketer = f"key:marketer-key#{desk.keys['marketer'][0]}"
    assert stats["skipped"] == f"disabled by {marketer}: wrong text" and stats["candidates"] == 0
    assert run_day(desk.services(), today=TODAY + dt.timedelta(days=2), now=NOW)["rules"] == []
    assert desk.live()["gold-greet"]["status"] == "disabled"
    named = desk.call("POST", "/api/v1/runs", "operator", json={"date": TODAY.isoformat(), "rules": ["gold-greet"]})
    assert named.status_code == 409 and "disabled" in named.get_json()["error"]["message"]
    ask = desk.call("POST", "/api/v1/rules/gold-greet/enable", "alice", json={"note": "text fixed"})
    assert ask.status_code == 201 and ask.get_json()["status"] == "pending" and ask.get_json()["kind"] == "enable"
    assert desk.live()["gold-greet"]["status"] == "disabled"
    assert desk.approve(ask.get_json()["id"], who="alice-approver").status_code == 403
    assert desk.approve(ask.get_json()["id"]).status_code == 200
    assert desk.live()["gold-greet"]["status"] == "live"
    actions = [a for _, a in desk.audit() if a.startswith("rules.")]
    # the first step of a process configured `approval: required` marks the database as requiring it
    assert actions == ["rules.approval_required", "rules.submit", "rules.approve", "rules.disable",
                       "rules.enable_requested", "rules.approve_refused", "rules.approve"]


def test_a_run_started_before_a_publish_finishes_on_its_versions(desk, world):
    from test_shards import HeldExecutor

    from campaign_engine.pipeline import ScheduledRunRequest, start_run
    from campaign_engine.pipeline.shards import execute_shard

    desk.approve(desk.submit(RULE).get_json()["id"])
    held = HeldExecutor()
    services = dataclasses.replace(desk.services(), executor=held)
    report = start_run(services, ScheduledRunRequest(TODAY, ()), now=NOW, wait=False)
    desk.approve(desk.submit(RULE_V2, note="platinum too").get_json()["id"])  # v2 while the run waits
    fresh = desk.services()  # a worker that opened after the publish executes the held shards
    assert fresh.rulebook.rules["gold-greet"].version == 2
    [(run_id, shards)] = held.submitted
    for shard in shards:
        execute_shard(fresh, run_id, shard, worker="test", clock=lambda: NOW)
    assert sorted((m.customer_id, m.rule_version) for m in world.messages(run_id=report.run_id)) == [("C1", 1)]
    later = run_day(fresh, today=TODAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert sorted((m.customer_id, m.rule_version) for m in world.messages(run_id=later["run_id"])) == [
        ("C1", 2), ("C2", 2)]


def test_history_lists_every_version_with_its_diff_and_export_writes_the_live_set(desk, tmp_path):
    desk.approve(desk.submit(RULE).get_json()["id"])
    desk.approve(desk.submit(RULE_V2, note="platinum too").get_json()["id"])
    versions = desk.call("GET", "/api/v1/rules/gold-greet/versions", "viewer").get_json()["items"]
    assert [(v["version"], v["live"], v["note"]) for v in versions] == [(2, True, "platinum too"), (1, False, "gold customers")]
    assert "+  customer.tier: {in: [gold, platinum]}" in versions[0]["diff"]
    assert versions[1]["diff"].startswith("--- /dev/null")
    services = desk.services()
    written, problems = publishing.export_live(services, tmp_path / "rules", tmp_path / "templates")
    assert problems == []
    assert (tmp_path / "rules" / "greet.yaml").read_text(encoding="utf-8") == RULE_V2
    assert (tmp_path / "templates" / "greet" / "sms.txt.j2").read_text(encoding="utf-8") == GREETING_SMS


def test_cli_publish_approve_history_and_the_self_approval_refusal(world, engine):
    world.add("customers", customer("C1", tier="gold"))
    with engine.begin() as conn:
        bob = apikeys.create_key(conn, name="bob", role="approver", now=NOW)
        alice = apikeys.create_key(conn, name="alice", role="marketer", now=NOW)
        alice_approver = apikeys.create_key(conn, name="alice", role="approver", now=NOW)
        carol = apikeys.create_key(conn, name="carol", role="viewer", now=NOW)
    world.rule("greet.yaml", RULE)
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir), "CAMPAIGN_ENGINE_APPROVAL": "required"}
    runner = CliRunner()

    def cli(*args: str, key: tuple[int, str] | None = None, piped: tuple[int, str] | None = None) -> Any:
        """A command as one person: their API key in CAMPAIGN_ENGINE_API_KEY (`key`) or piped to stdin."""
        return runner.invoke(main, list(args), env={**env, "CAMPAIGN_ENGINE_API_KEY": key[1] if key else None},
                             input=f"{piped[1]}\n" if piped else None, catch_exceptions=False)

    published = cli("rules", "publish", "--all", "--note", "gold greeting", "--as", "alice", "--json", key=alice)
    assert published.exit_code == 0, published.output
    [draft] = json.loads(published.output)
    assert draft["status"] == "pending" and draft["author"] == f"key:alice#{alice[0]}"
    assert cli("run", "--all").exit_code == 0 and world.messages() == []
    mine = cli("rules", "approve", str(draft["id"]), "--as", "alice", key=alice_approver)
    assert mine.exit_code == 1 and "someone else must approve" in mine.output
    viewer = cli("rules", "approve", str(draft["id"]), "--as", "carol", key=carol)
    assert viewer.exit_code == 2 and "approver" in viewer.output
    approved = cli("rules", "approve", str(draft["id"]), "--as", "bob", piped=bob)
    assert approved.exit_code == 0, approved.output
    listed = cli("rules", "list")
    assert "gold-greet" in listed.output and "v1" in listed.output
    assert f"key:alice#{alice[0]} / key:bob#{bob[0]}" in listed.output
    assert cli("run", "--all").exit_code == 0 and [m.customer_id for m in world.messages()] == ["C1"]
    world.rule("greet.yaml", RULE.replace("customer.tier: gold", "customer.teir: gold"))
    broken = cli("rules", "publish", "greet.yaml", "--note", "typo", key=alice)
    assert broken.exit_code == 2 and "greet.yaml" in broken.output and "invalid" in broken.output
    history = cli("rules", "history", "gold-greet")
    assert history.exit_code == 0 and history.output.startswith("v1 ") and f"approved by key:bob#{bob[0]}" in history.output
    stop = cli("rules", "disable", "gold-greet", "--reason", "complaint")  # the emergency stop: no key
    assert stop.exit_code == 0 and "disabled" in stop.output
    assert "disabled" in cli("rules", "list").output


def test_the_reviewer_sees_exactly_who_a_one_line_change_adds_before_approving(desk, world):
    desk.approve(desk.submit(RULE).get_json()["id"])
    draft = desk.submit(RULE_V2, note="platinum too").get_json()
    diff = desk.call("GET", f"/api/v1/rules/drafts/{draft['id']}/diff?date={TODAY.isoformat()}", "approver")
    assert diff.status_code == 200
    body = diff.get_json()
    assert (body["draft_id"], body["date"], body["rule"]) == (draft["id"], TODAY.isoformat(), "gold-greet")
    assert body["live"]["queued"] == 1 and body["draft"]["queued"] == 2
    assert (body["added"], body["removed"], body["sample_added"], body["sample_removed"]) == (1, 0, ["C2"], [])
    assert body["by_reason"]["sent"] == {"live": 1, "draft": 2, "delta": 1}
    assert body["explain"] == {"C2": [  # the live condition that kept C2 out, the draft's that lets it in
        {"condition": "customer.tier eq gold (value: platinum)", "live": False, "draft": None},
        {"condition": "customer.tier in [gold, platinum] (value: platinum)", "live": None, "draft": True}]}
    assert world.messages() == []  # a diff writes nothing
    cli = CliRunner().invoke(main, ["rules", "diff", str(draft["id"]), "--date", TODAY.isoformat()],
                             env={"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url},
                             catch_exceptions=False)
    assert cli.exit_code == 0 and "+1 added, -0 removed" in cli.output and "C2" in cli.output


def test_an_unapproved_event_rule_is_not_fired_and_an_unapproved_schedule_gets_no_job(desk, world):
    from campaign_engine.runtime import Runtime
    from campaign_engine.scheduler import build_scheduler
    from factories import fire_event

    event_rule = rule_yaml("big-move", "  event.amount: {gte: 500000}\n", category="service", channels="[sms]",
                           trigger="{event: large_transaction, subject: customer}")
    pending = desk.submit(event_rule, file="big.yaml", note="follow up large moves").get_json()
    scheduled = desk.submit(RULE, note="gold").get_json()
    assert (pending["status"], scheduled["status"]) == ("pending", "pending")
    payload = {"event_id": "lt-9", "customer_id": "C1", "account_no": "6222020012345678", "amount": 800000,
               "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}
    services = desk.services()
    assert fire_event(services, EventType.LARGE_TRANSACTION, payload, now=NOW)["rules"] == []
    runtime = Runtime(services)
    scheduler = build_scheduler(runtime, owner="test-pending")
    scheduler.start(paused=True)
    try:
        assert scheduler.next_run_times() == {}
        desk.approve(scheduled["id"])
        assert runtime.refresh() is True  # what the scheduler loop does every second
        assert list(scheduler.next_run_times()) == ["gold-greet"]
    finally:
        scheduler.shutdown(wait=False)
    assert world.messages() == []
