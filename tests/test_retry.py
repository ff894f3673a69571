"""Retrying failed messages from the operator's side: a template typo fails a run's messages, the
template is fixed and the fix published, `retry` (CLI or API) renders them again with the live
version onto the same rows and queues them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from campaign_engine.api import create_app
from campaign_engine.cli import main
from campaign_engine.errors import ValidationFailed
from campaign_engine.events import parse_event
from campaign_engine.pipeline import EventRunRequest, start_run
from campaign_engine.pipeline.retry import RetryRequest, retry_messages
from campaign_engine.store import apikeys
from campaign_engine.store.models import AuditEntry, Customer, Deposit, Message
from campaign_engine.vocabulary import EventType
from factories import NOW, TODAY, customer, deposit, rule_yaml, run_day

# A typo on a branch the sample context does not take (its customer is a man): the rule loads and
# runs, and every woman's message fails to render.
TYPO = ("{% if customer.gender == 'F' %}{{ customer.nmae }}女士{% else %}"
        "{{ customer.name | salutation(customer.gender) }}{% endif %}，您的账户有新通知")
FIXED = "{{ customer.name | salutation(customer.gender) }}，您的账户有新通知"
BODY = "【XX银行】张女士，您的账户有新通知"
LATER = NOW + dt.timedelta(hours=2)  # the retry, once the template is fixed (10:00 in Shanghai)
GOLD = "  customer.tier: gold\n"


def notice_rule(world, *, category: str = "service", channels: str = "[sms]", **kw: Any) -> None:
    world.template("notice", {"sms.txt.j2": TYPO})
    world.rule("notice.yaml", rule_yaml("notice", GOLD, category=category, channels=channels, template="notice",
                                        **kw))


def fix_template(world, text: str = FIXED) -> None:
    """The template edited on disk: a retry renders it once it is published (`world.services()`
    publishes the folders, the CLI tests run `rules publish`)."""
    world.template("notice", {"sms.txt.j2": text})


def woman(customer_id: str, **kw: Any) -> dict[str, Any]:
    return customer(customer_id, gender="F", **kw)


def rule_counts(report: dict[str, Any], rule_id: str = "notice") -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == rule_id)


def outbox(world) -> list[tuple[int, str, str, str]]:
    """(id, dedupe key, customer, status) of every message, in id order."""
    return [(m.id, m.dedupe_key, m.customer_id, m.status) for m in world.messages()]


# --------------------------------------------------------------------------- the command line, end to end


@pytest.fixture
def cli(world, monkeypatch):
    """`campaign-engine` on the test database and the world's rule and template folders, at a set
    clock; approval off (a rule change published is live at once)."""
    clock = {"now": NOW}
    monkeypatch.setattr("campaign_engine.cli._now", lambda: clock["now"])
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir), "CAMPAIGN_ENGINE_APPROVAL": "off"}

    def invoke(*args: str, at: dt.datetime | None = None):  # type: ignore[no-untyped-def]
        clock["now"] = at or NOW
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def publish(cli, note: str) -> None:  # type: ignore[no-untyped-def]
    """`rules publish notice.yaml`: the rule file and its templates, live at once."""
    result = cli("rules", "publish", "notice.yaml", "--note", note, "--as", "marketer", "--json")
    assert result.exit_code == 0, result.output
    assert [d["status"] for d in json.loads(result.output)] == ["live"]


def test_retry_cli_template_typo_run_is_queued_once_per_customer_after_the_fix_is_published(world, cli):
    notice_rule(world)
    publish(cli, "account notice")
    world.add("customers", *(woman(f"C{n:02}", mobile=f"138000000{n:02}") for n in range(1, 22)))

    first = cli("run", "--rule", "notice", "--date", TODAY.isoformat(), "--json")
    report = json.loads(first.output)
    counts = rule_counts(report)
    assert (counts["matched"], counts["queued"], counts["failed"]) == (21, 0, 21)
    assert counts["delivery"] == {"failed": 21}
    before = outbox(world)
    assert len(before) == 21 and {status for *_, status in before} == {"failed"}
    assert all(m.body is None and "nmae" in m.error for m in world.messages())

    fix_template(world)
    unpublished = json.loads(cli("retry", "--run", str(report["run_id"]), "--dry-run", "--json", at=LATER).output)
    assert (unpublished["retried"], unpublished["skipped"]) == (0, 21)  # the fix on disk only: not live yet
    assert {m["skipped_because"] for m in unpublished["messages"]} == {"template_failed"}
    publish(cli, "fix the typo in the account notice")
    retried = cli("retry", "--run", str(report["run_id"]), "--json", at=LATER)
    assert retried.exit_code == 0, retried.output
    answer = json.loads(retried.output)
    assert (answer["retried"], answer["skipped"], answer["dry_run"]) == (21, 0, False)
    assert answer["messages"] == [{"id": i, "status": "queued"} for i, *_ in before]

    after = outbox(world)  # the same rows: same ids, same idempotency keys, one per customer
    assert [(i, key, cid) for i, key, cid, _ in after] == [(i, key, cid) for i, key, cid, _ in before]
    assert {status for *_, status in after} == {"queued"}
    first_message = world.messages()[0]
    assert first_message.body == BODY and first_message.error is None
    assert first_message.due_at == LATER and first_message.attempts == 0
    [entry] = first_message.history
    assert entry["by"] == "cli" and entry["outcome"] == "queued" and entry["previous_status"] == "failed"
    assert "nmae" in entry["previous_error"]
    assert dt.datetime.fromisoformat(entry["at"]) == LATER

    shown = json.loads(cli("report", str(report["run_id"]), "--json").output)
    counts = rule_counts(shown)
    assert (counts["queued"], counts["failed"]) == (0, 21)  # what the run did stands
    assert counts["delivery"] == {"queued": 21}  # where its messages stand now

    again = cli("retry", "--run", str(report["run_id"]), "--json", at=LATER)
    assert again.exit_code == 0
    assert json.loads(again.output) == {"dry_run": False, "retried": 0, "skipped": 0, "messages": []}
    rerun = rule_counts(json.loads(cli("run", "--rule", "notice", "--date", TODAY.isoformat(), "--json").output))
    assert (rerun["duplicates"], rerun["queued"], rerun["failed"]) == (21, 0, 0)
    assert len(world.messages()) == 21

    with world.engine.connect() as conn:
        audit = conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.details)
                             .where(AuditEntry.action == "messages.retry")).all()
    assert audit == [("cli", "messages.retry", f"run:{report['run_id']}", {"retried": 21, "skipped": {},
                                                                           "run": report["run_id"]})]


def test_retry_cli_text_output_and_exit_1_while_the_template_still_fails(world, cli):
    notice_rule(world)
    publish(cli, "account notice")
    world.add("customers", woman("C1"))
    run_id = json.loads(cli("run", "--rule", "notice", "--date", TODAY.isoformat(), "--json").output)["run_id"]
    fix_template(world, TYPO.replace("nmae", "nmae2"))
    publish(cli, "try to fix the typo")
    result = cli("retry", "--run", str(run_id), at=LATER)
    assert result.exit_code == 1
    assert "retried 0 message(s), skipped 1 (template_failed=1)" in result.output
    assert "nmae2" in result.output and "Traceback" not in result.output


def audit_entries(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def test_retry_cli_dry_run_writes_nothing(world, cli):
    notice_rule(world)
    publish(cli, "account notice")
    world.add("customers", woman("C1"), woman("C2"))
    run_id = json.loads(cli("run", "--rule", "notice", "--date", TODAY.isoformat(), "--json").output)["run_id"]
    fix_template(world)
    publish(cli, "fix the typo in the account notice")
    before = [(m.id, m.status, m.error, m.history, m.retries) for m in world.messages()]
    audited = audit_entries(world)  # the publishes'
    result = cli("retry", "--run", str(run_id), "--dry-run", at=LATER)
    assert result.exit_code == 0 and "dry run: would retry 2 message(s), skipped 0" in result.output
    assert [(m.id, m.status, m.error, m.history, m.retries) for m in world.messages()] == before
    assert audit_entries(world) == audited


def test_retry_cli_needs_a_selection_and_refuses_ids_with_a_run(cli):
    nothing = cli("retry")
    assert nothing.exit_code == 2 and "say which messages" in nothing.output
    both = cli("retry", "--run", "1", "--message", "2")
    assert both.exit_code == 2 and "not both" in both.output


# --------------------------------------------------------------------------- the API, with roles


@pytest.fixture
def api(world):
    """Publishes the world's folders and builds the app on them (call it once the rules and templates
    are written), with a key per role; the builder returns call(method, path, role, **kw)."""
    with world.engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW)
                for role in ("viewer", "marketer", "operator")}
    apps = []

    def build():  # type: ignore[no-untyped-def]
        world.publish()
        app = create_app(world.settings, clock=lambda: LATER, background_workers=1)
        apps.append(app)
        client = app.test_client()

        def call(method: str, path: str, role: str, **kw: Any):  # type: ignore[no-untyped-def]
            return client.open(path, method=method, headers={"Authorization": f"Bearer {keys[role][1]}"}, **kw)
        return call

    build.keys = keys  # type: ignore[attr-defined]
    yield build
    for app in apps:
        state = app.extensions["campaign"]
        state.wait(30)
        state.runtime.close()


def test_retry_api_roles_dry_run_then_retry_with_history(world, api):
    notice_rule(world)
    world.add("customers", woman("C1"), woman("C2"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    ids = [m.id for m in world.messages()]
    fix_template(world)
    keys, api = api.keys, api()
    body = {"run": run_id, "rule": "notice", "status": "failed"}

    for role in ("viewer", "marketer"):
        refused = api("POST", "/api/v1/messages/retry", role, json=body)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"

    dry = api("POST", "/api/v1/messages/retry", "operator", json={**body, "dry_run": True})
    assert dry.status_code == 200, dry.get_data(as_text=True)
    assert dry.get_json() == {"dry_run": True, "retried": 2, "skipped": 0,
                              "messages": [{"id": i, "status": "queued"} for i in ids]}
    assert {(m.status, m.retries) for m in world.messages()} == {("failed", 0)}  # wrote nothing
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEntry)
                            .where(AuditEntry.action == "messages.retry")).scalar_one() == 0

    done = api("POST", "/api/v1/messages/retry", "operator", json=body)
    assert done.status_code == 200
    assert done.get_json() == {"dry_run": False, "retried": 2, "skipped": 0,
                               "messages": [{"id": i, "status": "queued"} for i in ids]}
    operator = f"key:operator-key#{keys['operator'][0]}"
    shown = api("GET", f"/api/v1/messages/{ids[0]}", "viewer").get_json()
    assert shown["status"] == "queued" and shown["body"] == BODY
    [entry] = shown["history"]
    assert (entry["by"], entry["previous_status"], entry["outcome"], entry["previous_attempts"]) == (
        operator, "failed", "queued", 0)
    assert "nmae" in entry["previous_error"]
    listed = api("GET", "/api/v1/messages", "viewer", query_string={"run": run_id}).get_json()["items"]
    assert all(len(m["history"]) == 1 for m in listed)
    with world.engine.connect() as conn:
        [(actor, target, details)] = conn.execute(select(AuditEntry.actor, AuditEntry.target, AuditEntry.details)
                                                  .where(AuditEntry.action == "messages.retry")).all()
    assert (actor, target, details) == (operator, f"run:{run_id}", {"retried": 2, "skipped": {}, "run": run_id,
                                                                     "rule": "notice"})

    by_id = api("POST", "/api/v1/messages/retry", "operator", json={"message_ids": [ids[0], ids[-1] + 100]})
    assert by_id.status_code == 200
    assert by_id.get_json()["messages"] == [
        {"id": ids[0], "status": "queued", "error": "message is queued, not failed", "skipped_because": "not_failed"},
        {"id": ids[-1] + 100, "status": None, "error": f"message {ids[-1] + 100} not found",
         "skipped_because": "not_found"}]


@pytest.mark.parametrize("body, field", [
    ({}, "run"),
    ({"message_ids": [1], "run": 1}, "message_ids"),
    ({"run": 1, "status": "queued"}, "status"),
    ({"message_ids": []}, "message_ids"),
    ({"message_ids": [0]}, "message_ids.0"),
])
def test_retry_api_bad_request_answers_400_naming_the_field(world, api, body, field):
    resp = api()("POST", "/api/v1/messages/retry", "operator", json=body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert field in resp.get_json()["error"]["details"]["fields"]


# --------------------------------------------------------------------------- policy, skips and history


def retry(world, **request: Any):  # type: ignore[no-untyped-def]
    return retry_messages(world.services(), RetryRequest(**request), now=LATER, actor="test").as_dict()


def test_retry_suppresses_a_customer_who_withdrew_sms_consent_since(world):
    notice_rule(world, category="marketing")
    world.add("customers", woman("C1"), woman("C2"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    first, second = world.messages()
    world.add("customers", woman("C2", sms_consent=False))  # withdrawn before the retry
    fix_template(world)
    answer = retry(world, run_id=run_id)
    assert (answer["retried"], answer["skipped"]) == (1, 1)
    assert answer["messages"] == [{"id": first.id, "status": "queued"},
                                  {"id": second.id, "status": "suppressed", "skipped_because": "no_consent"}]
    c1, c2 = world.messages()
    assert c1.body == BODY + "。回复TD退订" and c1.status == "queued"
    assert (c2.status, c2.suppressed_reason, c2.body) == ("suppressed", "no_consent", None)
    assert c2.history[0]["outcome"] == "suppressed" and c2.history[0]["suppressed_reason"] == "no_consent"
    report = run_day(world.services(), today=TODAY, now=LATER)
    assert rule_counts(report)["duplicates"] == 2  # suppressed or not, the occurrence has its message


def test_retry_run_report_delivery_shows_the_change_not_the_counts(world):
    notice_rule(world, category="marketing")
    world.add("customers", woman("C1"), woman("C2"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    world.add("customers", woman("C2", sms_consent=False))
    fix_template(world)
    retry(world, run_id=run_id)
    from campaign_engine.pipeline import get_report

    counts = rule_counts(get_report(world.services(), run_id).as_dict())
    assert (counts["queued"], counts["failed"]) == (0, 2)
    assert counts["delivery"] == {"queued": 1, "suppressed": {"no_consent": 1}}


def test_retry_template_still_failing_stays_failed_with_the_new_error_then_succeeds(world):
    notice_rule(world)
    world.add("customers", woman("C1"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    fix_template(world, TYPO.replace("nmae", "naem"))
    answer = retry(world, run_id=run_id)
    [only] = answer["messages"]
    assert (answer["retried"], answer["skipped"], only["status"], only["skipped_because"]) == (
        0, 1, "failed", "template_failed")
    assert "naem" in only["error"]
    [message] = world.messages()
    assert message.status == "failed" and "naem" in message.error and message.retries == 1
    fix_template(world)
    assert retry(world, run_id=run_id)["retried"] == 1
    [message] = world.messages()
    assert [(h["outcome"], "naem" in (h["error"] or ""), "nmae" in h["previous_error"]) for h in message.history] \
        == [("failed", True, True), ("queued", False, False)]
    assert message.retries == 2 and message.status == "queued"


def test_retry_template_broken_after_the_fix_is_refused_and_the_retry_renders_the_live_fix(world):
    notice_rule(world)
    world.add("customers", woman("C1"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    [failed] = world.messages()
    fix_template(world)
    services = world.services()  # a long-running process, on the fix as published
    fix_template(world, "{% if %}")
    world.publish()  # broken: an invalid draft, the fix stays live
    [draft] = world.drafts
    assert draft["status"] == "invalid" and "notice/sms.txt.j2" in draft["problems"][0]["reason"]
    for process in (services, world.services(publish=False)):  # running before the publish, or started after it
        assert process.rulebook.template_set("notice").texts["notice/sms.txt.j2"] == FIXED
    request = RetryRequest(run_id=run_id)
    [only] = retry_messages(services, request, now=LATER, actor="test").as_dict()["messages"]
    assert only == {"id": failed.id, "status": "queued"}
    [message] = world.messages()
    assert (message.status, message.body, message.error, len(message.history)) == ("queued", BODY, None, 1)


def test_retry_rule_disabled_is_skipped_and_leaves_the_message(world):
    from campaign_engine.pipeline.publishing import disable

    notice_rule(world)
    world.add("customers", woman("C1"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    fix_template(world)
    world.rule("notice.yaml", rule_yaml("notice", GOLD, category="service", channels="[sms]", template="notice",
                                        extra="enabled: false\n"))
    [disabled] = retry(world, run_id=run_id)["messages"]  # published with `enabled: false`
    assert disabled["skipped_because"] == "rule_not_live" and "disabled" in disabled["error"]

    notice_rule(world)  # enabled again, the fix in place: then the emergency stop
    fix_template(world)
    world.publish()
    disable(world.services(publish=False), "notice", actor="cli:ops", reason="wrong audience", now=LATER)
    [stopped] = retry(world, rule_id="notice")["messages"]
    assert stopped["skipped_because"] == "rule_not_live" and "disabled" in stopped["error"]
    [message] = world.messages()
    assert (message.status, message.history, message.retries) == ("failed", [], 0)


def test_retry_subject_gone_customer_deleted_or_deposit_renewed(world):
    world.template("notice", {"sms.txt.j2": "{% if customer.gender == 'F' %}{{ deposit.nmae }}{% endif %}到期"})
    world.rule("td.yaml", rule_yaml("td", "  deposit.days_to_maturity: {between: [0, 7]}\n", category="service",
                                    channels="[sms]", template="notice",
                                    trigger='{schedule: "0 9 * * *", subject: deposit}'))
    world.add("customers", woman("C1"), woman("C2"), woman("C3"))
    world.add("deposits", deposit("D1", "C1"), deposit("D2", "C2"), deposit("D3", "C3"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    d1, d2, d3 = world.messages()
    with world.engine.begin() as conn:
        conn.execute(delete(Deposit).where(Deposit.deposit_id == "D2"))
    world.add("deposits", deposit("D3", "C3", maturity_date=dt.date(2027, 3, 15)))  # renewed: a new occurrence
    fix_template(world, "{{ deposit.amount | money }}到期")
    answer = retry(world, run_id=run_id)
    assert [(m["id"], m["status"], m.get("skipped_because")) for m in answer["messages"]] == [
        (d1.id, "queued", None), (d2.id, "failed", "subject_gone"), (d3.id, "failed", "subject_gone")]
    assert "deposit D2 is gone" in answer["messages"][1]["error"]
    assert "maturity:2027-03-15" in answer["messages"][2]["error"]
    assert world.messages()[0].body == "【XX银行】¥80,000.00到期"


def test_retry_event_rule_renders_with_the_event_stored_with_its_run(world):
    world.template("rc", {"sms.txt.j2": "利率由{{ event.old_rate | percent }}调整为"
                                        "{% if customer.gender == 'F' %}{{ event.new_rat }}{% endif %}"})
    world.rule("rc.yaml", rule_yaml("rc", "  customer.rate_sensitive: true\n", category="service",
                                    channels="[sms]", template="rc",
                                    trigger="{event: rate_change, subject: customer}"))
    world.add("customers", woman("C1", rate_sensitive=True))
    world.add("deposits", deposit("D1", "C1"))
    event = parse_event(EventType.RATE_CHANGE, {"event_id": "rc-9", "product_type": "time_deposit",
                                                "old_rate": 1.65, "new_rate": 1.45, "effective_date": "2026-03-20"})
    run_id = start_run(world.services(), EventRunRequest(event), now=NOW).run_id
    [message] = world.messages()
    assert message.status == "failed" and "new_rat" in message.error
    world.template("rc", {"sms.txt.j2": "利率由{{ event.old_rate | percent }}调整为{{ event.new_rate | percent }}"})
    assert retry(world, message_ids=(message.id,))["retried"] == 1
    [message] = world.messages()
    assert message.body == "【XX银行】利率由1.65%调整为1.45%" and message.dedupe_key.endswith("event:rate_change:rc-9")
    assert message.run_id == run_id


def test_retry_message_failed_at_delivery_is_requeued_with_a_fresh_delivery_state(world):
    world.template("notice", {"sms.txt.j2": FIXED})
    world.rule("notice.yaml", rule_yaml("notice", GOLD, category="service", channels="[sms]", template="notice"))
    world.add("customers", customer("C1"))
    run_day(world.services(), today=TODAY, now=NOW)
    with world.engine.begin() as conn:  # what the delivery worker records for a permanent failure
        conn.execute(update(Message).values(status="failed", attempts=3, error="invalid number",
                                            provider="sms-gw", provider_message_id="gw-1", sent_at=NOW))
    world.add("customers", customer("C1", mobile="13900000001"))  # the number is corrected
    [message] = world.messages()
    assert retry(world, message_ids=(message.id,))["retried"] == 1
    [message] = world.messages()
    assert (message.status, message.recipient, message.attempts, message.error) == (
        "queued", "13900000001", 0, None)
    assert (message.provider, message.provider_message_id, message.sent_at) == (None, None, None)
    [entry] = message.history
    assert (entry["previous_error"], entry["previous_attempts"], entry["previous_status"]) == (
        "invalid number", 3, "failed")


def test_retry_quiet_hours_schedule_the_retried_sms(world):
    notice_rule(world)
    world.add("customers", woman("C1"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    fix_template(world)
    night = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.timezone.utc)  # 23:00 in Shanghai
    services = world.services()
    [only] = retry_messages(services, RetryRequest(run_id=run_id), now=night, actor="test").as_dict()["messages"]
    assert only["status"] == "scheduled"
    [message] = world.messages()
    assert message.due_at == dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.timezone.utc)  # 08:00 the next morning


def test_retry_two_retries_racing_write_once(world):
    notice_rule(world)
    world.add("customers", woman("C1"))
    run_day(world.services(), today=TODAY, now=NOW)
    fix_template(world)
    services = world.services()
    [stale] = services.store.messages_by_id([world.messages()[0].id])  # read by a retry that is slower
    assert retry(world, message_ids=(stale.id,))["retried"] == 1
    outcome = {"id": stale.id, "retries": stale.retries, "history": [], "error": "late"}
    assert services.store.apply_retries([outcome]) == set()
    [message] = world.messages()
    assert message.status == "queued" and message.retries == 1 and len(message.history) == 1


def test_retry_deleted_customer_is_subject_gone(world):
    notice_rule(world)
    world.add("customers", woman("C1"))
    run_id = run_day(world.services(), today=TODAY, now=NOW)["run_id"]
    with world.engine.begin() as conn:
        conn.execute(delete(Customer).where(Customer.customer_id == "C1"))
    fix_template(world)
    [only] = retry(world, run_id=run_id)["messages"]
    assert (only["skipped_because"], only["error"]) == ("subject_gone", "customer C1 is gone")


def test_retry_request_validates_its_selection():
    with pytest.raises(ValidationFailed):
        RetryRequest()
    with pytest.raises(ValidationFailed):
        RetryRequest(message_ids=(1,), rule_id="x")
    with pytest.raises(ValidationFailed):
        RetryRequest(run_id=1, status="sent")
    assert RetryRequest(run_id=1, rule_id="x").status == "failed"
