"""Four eyes that configuration cannot switch off, and a command line that proves who acts.

- Once a process configured `approval: required` takes a publishing step on a database, the
  database requires approval: a process configured `approval: off` is refused there (CLI exit 2
  naming the setting, when and by whom it was required; API 409), turning it on stays allowed.
- `rules approve` / `rules reject` take the approver's API key secret (CAMPAIGN_ENGINE_API_KEY,
  typed hidden at a terminal, or piped), verified as the API verifies it; `--as` must match it.
- While the database requires approval, `rules publish` and `rules enable` authenticate their
  author the same way (a role that may submit rules); `rules disable` needs no key, as before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign_engine import cli as cli_module
from campaign_engine.api import create_app
from campaign_engine.cli import main
from campaign_engine.store import apikeys
from campaign_engine.store.models import AuditEntry, DatabaseSetting, RuleDraft
from campaign_engine.vocabulary import Approval
from factories import GREETING_SMS, NOW, customer, rule_yaml

RULE = rule_yaml("gold-greet", "  customer.tier: gold\n", channels="[sms]")
RULE_V2 = rule_yaml("gold-greet", "  customer.tier: {in: [gold, platinum]}\n", channels="[sms]")


class Shell:
    """The CLI on the test database, as different people: each with their key, or none."""

    def __init__(self, world: Any, engine: Any):
        self.world = world
        self.engine = engine
        with engine.begin() as conn:
            self.keys = {
                "alice": apikeys.create_key(conn, name="alice", role="marketer", now=NOW),
                "mallory": apikeys.create_key(conn, name="mallory", role="marketer", now=NOW),
                "bob": apikeys.create_key(conn, name="bob", role="approver", now=NOW),
                "carol": apikeys.create_key(conn, name="carol", role="viewer", now=NOW),
                "root": apikeys.create_key(conn, name="root", role="admin", now=NOW),
            }
        world.rule("greet.yaml", RULE)
        self.env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
                    "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
                    "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir),
                    "CAMPAIGN_ENGINE_API_KEY": None}

    def __call__(self, *args: str, approval: str = "required", key: str | None = None, secret: str | None = None,
                 stdin: str | None = None) -> Any:
        env = {**self.env, "CAMPAIGN_ENGINE_APPROVAL": approval}
        if key is not None or secret is not None:
            env["CAMPAIGN_ENGINE_API_KEY"] = secret if secret is not None else self.keys[str(key)][1]
        return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    def key_id(self, name: str) -> int:
        return self.keys[name][0]

    def actor(self, name: str) -> str:
        return f"key:{name}#{self.key_id(name)}"

    def audit(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.actor, r.action) for r in conn.execute(select(AuditEntry).order_by(AuditEntry.id))]

    def drafts(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(RuleDraft.id, RuleDraft.status, RuleDraft.author).order_by(RuleDraft.id)))

    def mark(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(DatabaseSetting)).first()


@pytest.fixture
def shell(world, engine):
    world.add("customers", customer("C1", tier="gold"))
    return Shell(world, engine)


def publish(shell: Shell, **kw: Any) -> dict[str, Any]:
    done = shell("rules", "publish", "greet.yaml", "--note", "gold greeting", "--json", **kw)
    assert done.exit_code == 0, done.output
    [draft] = json.loads(done.output)
    return draft


# --------------------------------------------------------------------------- approval is the database's


def test_approval_off_cannot_publish_to_a_database_that_required_approval(shell):
    first = publish(shell, key="alice")  # the first step with `approval: required` marks the database
    assert first["status"] == "pending"
    mark = shell.mark()
    assert (mark.name, mark.value, mark.set_by) == ("approval", "required", shell.actor("alice"))
    assert shell.audit()[0] == (shell.actor("alice"), "rules.approval_required")
    before = shell.drafts()
    shell.world.rule("greet.yaml", RULE_V2)
    sneak = shell("rules", "publish", "greet.yaml", "--note", "sneak", "--as", "mallory", approval="off")
    assert sneak.exit_code == 2
    assert "requires approval since" in sneak.output and "approval: off" in sneak.output
    assert "CAMPAIGN_ENGINE_APPROVAL" in sneak.output and shell.actor("alice") in sneak.output
    assert shell.drafts() == before  # nothing recorded, nothing live
    with_key = shell("rules", "publish", "greet.yaml", "--note", "sneak", "--as", "mallory", approval="off",
                     key="mallory")
    assert with_key.exit_code == 2 and "requires approval since" in with_key.output
    assert shell("rules", "list").output.strip().startswith("no published rules")
    # the emergency stop stays everyone's, whatever the setting
    assert shell("rules", "approve", str(first["id"]), key="bob").exit_code == 0
    stop = shell("rules", "disable", "gold-greet", "--reason", "complaint", approval="off")
    assert stop.exit_code == 0, stop.output
    enable = shell("rules", "enable", "gold-greet", "--note", "fixed", approval="off", key="alice")
    assert enable.exit_code == 2 and "requires approval since" in enable.output
    assert [a for _, a in shell.audit()].count("rules.approval_required") == 1


def test_the_api_of_a_process_with_approval_off_answers_409_on_such_a_database(shell, world):
    publish(shell, key="alice")
    app = create_app(world.settings.replace(approval=Approval.OFF), clock=lambda: NOW)
    client = app.test_client()
    try:
        headers = {"Authorization": f"Bearer {shell.keys['mallory'][1]}"}
        answer = client.post("/api/v1/rules/drafts", headers=headers, json={
            "file": "greet.yaml", "source": RULE_V2, "note": "sneak", "templates": {"greet/sms.txt.j2": GREETING_SMS}})
        assert answer.status_code == 409, answer.get_data(as_text=True)
        assert "requires approval since" in answer.get_json()["error"]["message"]
        yaml_body = client.post("/api/v1/rules/drafts?file=greet.yaml&note=sneak", headers=headers, data=RULE_V2,
                                content_type="application/yaml")
        assert yaml_body.status_code == 409
    finally:
        state = app.extensions["campaign"]
        state.wait(30)
        state.runtime.close()
    assert len(shell.drafts()) == 1


def test_a_database_that_never_required_approval_publishes_with_approval_off_as_today(shell):
    """The quick start's way (config/demo.yaml): no key, `cli:<name>`, live at once; turning approval
    on afterwards is always allowed, and from then on it sticks."""
    draft = publish(shell, approval="off")
    assert draft["status"] == "live" and draft["author"].startswith("cli:")
    named = shell("rules", "publish", "greet.yaml", "--note", "again", "--as", "demo", approval="off")
    assert named.exit_code == 0 and "by cli:demo" in named.output
    assert shell.mark() is None
    shell.world.rule("greet.yaml", RULE_V2)
    on = publish(shell, key="alice")
    assert on["status"] == "pending" and shell.mark() is not None
    assert shell("rules", "publish", "greet.yaml", "--note", "off again", approval="off").exit_code == 2


# --------------------------------------------------------------------------- approving needs the approver's key


def test_approve_needs_the_approvers_secret_not_just_a_name(shell):
    draft = publish(shell, key="alice")
    nothing = shell("rules", "approve", str(draft["id"]), "--as", "bob")  # the old way: a name only
    assert nothing.exit_code == 2 and "CAMPAIGN_ENGINE_API_KEY" in nothing.output
    wrong = shell("rules", "approve", str(draft["id"]), "--as", "bob", secret="ce_not-a-key")
    assert wrong.exit_code == 2 and "unknown or revoked API key" in wrong.output
    someone_else = shell("rules", "approve", str(draft["id"]), "--as", "bob", key="mallory")
    assert someone_else.exit_code == 2 and "not 'bob'" in someone_else.output
    marketer = shell("rules", "approve", str(draft["id"]), key="mallory")  # a key whose role may not approve
    assert marketer.exit_code == 2 and "approver" in marketer.output and "role marketer" in marketer.output
    assert [d.status for d in shell.drafts()] == ["pending"]
    assert "rules.approve" not in [a for _, a in shell.audit()]
    piped = shell("rules", "approve", str(draft["id"]), "--as", "bob", stdin=shell.keys["bob"][1] + "\n")
    assert piped.exit_code == 0, piped.output
    assert (shell.actor("bob"), "rules.approve") in shell.audit()


def test_without_as_the_approver_is_the_keys_owner_and_a_revoked_key_is_refused(shell):
    draft = publish(shell, key="alice")
    with shell.engine.begin() as conn:
        apikeys.revoke_key(conn, shell.key_id("bob"), NOW)
    revoked = shell("rules", "approve", str(draft["id"]), key="bob")
    assert revoked.exit_code == 2 and "unknown or revoked" in revoked.output
    approved = shell("rules", "approve", str(draft["id"]), key="root")
    assert approved.exit_code == 0, approved.output
    assert (shell.actor("root"), "rules.approve") in shell.audit()


def test_reject_needs_the_reviewers_key_too(shell):
    draft = publish(shell, key="alice")
    assert shell("rules", "reject", str(draft["id"]), "--as", "bob", "--reason", "no").exit_code == 2
    assert shell("rules", "reject", str(draft["id"]), "--reason", "no", key="carol").exit_code == 2
    done = shell("rules", "reject", str(draft["id"]), "--as", "bob", "--reason", "wrong tier", key="bob")
    assert done.exit_code == 0 and "rejected" in done.output
    assert (shell.actor("bob"), "rules.reject") in shell.audit()


def test_the_key_is_asked_for_hidden_at_a_terminal(shell, monkeypatch):
    class Terminal:
        def isatty(self) -> bool:
            return True

    asked: list[dict[str, Any]] = []

    def prompt(text: str, **kw: Any) -> str:
        asked.append({"text": text, **kw})
        return shell.keys["bob"][1]

    monkeypatch.setattr(cli_module.sys, "stdin", Terminal())
    monkeypatch.setattr(cli_module.click, "prompt", prompt)
    monkeypatch.delenv("CAMPAIGN_ENGINE_API_KEY", raising=False)
    assert cli_module._api_key_secret("bob") == shell.keys["bob"][1]
    assert asked and asked[0]["hide_input"] is True and "bob" in asked[0]["text"]


# --------------------------------------------------------------------------- the author proves who they are


def test_while_approval_is_required_the_author_is_proven_by_a_key(shell):
    """bob cannot submit `--as mallory` and approve it himself as bob."""
    anyone = shell("rules", "publish", "greet.yaml", "--note", "x", "--as", "mallory")
    assert anyone.exit_code == 2 and "CAMPAIGN_ENGINE_API_KEY" in anyone.output
    as_other = shell("rules", "publish", "greet.yaml", "--note", "x", "--as", "mallory", key="bob")
    assert as_other.exit_code == 2 and "not 'mallory'" in as_other.output
    approver = shell("rules", "publish", "greet.yaml", "--note", "x", key="bob")
    assert approver.exit_code == 2 and "role approver" in approver.output and "marketer" in approver.output
    assert shell.drafts() == []
    draft = publish(shell, key="mallory")
    assert draft["author"] == shell.actor("mallory")
    mine = shell("rules", "approve", str(draft["id"]), key="mallory")
    assert mine.exit_code == 2  # a marketer may not approve at all


def test_enable_needs_a_key_while_approval_is_required_and_disable_needs_none(shell):
    draft = publish(shell, key="alice")
    assert shell("rules", "approve", str(draft["id"]), key="bob").exit_code == 0
    stop = shell("rules", "disable", "gold-greet", "--reason", "wrong text", "--as", "anyone")
    assert stop.exit_code == 0 and "disabled" in stop.output
    assert ("cli:anyone", "rules.disable") in shell.audit()
    no_key = shell("rules", "enable", "gold-greet", "--note", "fixed", "--as", "mallory")
    assert no_key.exit_code == 2 and "CAMPAIGN_ENGINE_API_KEY" in no_key.output
    viewer = shell("rules", "enable", "gold-greet", "--note", "fixed", key="carol")
    assert viewer.exit_code == 2 and "role viewer" in viewer.output
    asked = shell("rules", "enable", "gold-greet", "--note", "fixed", key="alice")
    assert asked.exit_code == 0 and "pending" in asked.output and f"by {shell.actor('alice')}" in asked.output
    assert (shell.actor("alice"), "rules.enable_requested") in shell.audit()


def test_with_approval_off_enable_works_as_today_without_a_key(shell):
    publish(shell, approval="off")
    assert shell("rules", "disable", "gold-greet", "--reason", "stop", approval="off").exit_code == 0
    again = shell("rules", "enable", "gold-greet", "--as", "demo", approval="off")
    assert again.exit_code == 0 and "live" in again.output and "by cli:demo" in again.output
