"""The command line, driven as a user would: exit codes, JSON shapes, clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from campaign_engine.cli import main


# A test database needs no second person to approve a rule change: `rules publish` puts it live at once.
APPROVAL_OFF = {"CAMPAIGN_ENGINE_APPROVAL": "off"}


@pytest.fixture
def cli(settings, engine):
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, **APPROVAL_OFF}

    def invoke(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def publish_starter_pack(cli) -> None:  # type: ignore[no-untyped-def]
    """What a user does before anything runs: publish the project's rule folder (after the products
    are loaded: publishing checks the products rules name)."""
    result = cli("rules", "publish", "--all", "--note", "the starter pack", "--as", "marketer", "--json")
    assert result.exit_code == 0, result.output
    assert {draft["status"] for draft in json.loads(result.output)} == {"live"}


def test_cli_run_json_prints_counts_per_rule(cli):
    assert cli("demo-data", "--customers", "800", "--date", "2026-03-10").exit_code == 0
    publish_starter_pack(cli)
    result = cli("run", "--all", "--date", "2026-03-10", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["date"] == "2026-03-10" and isinstance(report["run_id"], int)
    td = next(r for r in report["rules"] if r["rule"] == "td-maturity-reminder")
    assert set(td) >= {"rule", "candidates", "matched", "queued", "suppressed"}
    written = td["queued"] + td["scheduled"]  # SMS wait for 08:00 when the test runs at night in Shanghai
    assert written > 0

    messages = json.loads(cli("messages", "--rule", "td-maturity-reminder", "--json").output)
    assert len(messages) == written
    assert set(messages[0]) >= {"id", "rule", "customer_id", "subject_id", "channel", "status", "subject", "body"}
    again = json.loads(cli("run", "--all", "--date", "2026-03-10", "--json").output)
    assert sum(r["queued"] + r["scheduled"] for r in again["rules"]) == 0

    shown = cli("report", str(report["run_id"]))
    assert "td-maturity-reminder" in shown.output


def test_cli_event_replay_and_bad_payload(cli):
    cli("demo-data", "--customers", "300", "--date", "2026-03-10")
    publish_starter_pack(cli)
    payload = ('{"event_id": "rc-7", "product_type": "time_deposit", "old_rate": 1.65, "new_rate": 1.45, '
               '"effective_date": "2026-03-20"}')
    first = json.loads(cli("event", "rate-change", "--data", payload, "--json").output)
    assert [r["rule"] for r in first["rules"]] == ["rate-change-notice"]
    second = json.loads(cli("event", "rate_change", "--data", payload, "--json").output)
    assert second["replayed"] is True and second["run_id"] == first["run_id"]
    bad = cli("event", "rate_change", "--data", '{"event_id": "x", "old_rate": "high"}')
    assert bad.exit_code == 2
    assert "old_rate" in bad.output and "new_rate" in bad.output and "Traceback" not in bad.output


def test_cli_import_reports_bad_rows_and_keeps_good_ones(cli, tmp_path):
    csv = tmp_path / "customers.csv"
    csv.write_text(
        "customer_id,name,gender,birth_date,mobile,email,city,branch,tier,risk_level,aum,rate_sensitive,"
        "sms_consent,email_consent,do_not_contact,language,manager_id\n"
        "C1,王芳,F,1985-02-03,13800000001,,上海,上海分行,gold,C3,100000,true,true,false,false,zh,RM1\n"
        "C2,李强,M,1985-13-03,13800000002,,上海,上海分行,golden,C3,100000,true,true,false,false,zh,RM1\n",
        encoding="utf-8")
    result = cli("import", "customers", str(csv))
    assert result.exit_code == 1
    assert "customers.csv:3" in result.output and "1 upserted" in result.output


def test_cli_rules_validate_names_file_line_and_field(cli, tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "broken.yaml").write_text("id: x\nname: y\ncategory: service\ntrigger: {schedule: '0 9 * * *'}\n"
                                       "conditions:\n  customer.agee: {gte: 60}\nchannels: [sms]\n"
                                       "template: birthday\n", encoding="utf-8")
    monkeypatch.setenv("CAMPAIGN_ENGINE_RULES_DIR", str(rules))
    result = CliRunner().invoke(main, ["rules", "validate"], catch_exceptions=False)
    assert result.exit_code == 2  # bad input
    assert "broken.yaml:6, rule x, field conditions.customer.agee: unknown field" in result.output


def test_cli_preview_for_one_customer_shows_each_condition(cli):
    cli("demo-data", "--customers", "300", "--date", "2026-03-10")
    publish_starter_pack(cli)
    result = cli("preview", "birthday-greeting", "--customer", "C00000001", "--date", "2026-03-10")
    assert result.exit_code == 0, result.output
    assert "customer.days_to_birthday eq 0" in result.output


def test_cli_unknown_rule_is_a_clear_error(cli):
    result = cli("run", "--rule", "no-such-rule", "--date", "2026-03-10")
    assert result.exit_code == 2 and "no-such-rule" in result.output


def test_cli_send_once_delivers_the_queued_outbox_through_the_file_channel(settings, engine, tmp_path):
    channels = {"sms": {"type": "file", "path": str(tmp_path / "sms.jsonl")},
                "email": {"type": "file", "path": str(tmp_path / "email.jsonl")}}
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, **APPROVAL_OFF,
           "CAMPAIGN_ENGINE_CHANNELS": json.dumps(channels),
           "CAMPAIGN_ENGINE_QUIET_HOURS": "{}",  # the test runs at any hour
           "CAMPAIGN_ENGINE_SEND_RATES": json.dumps({"sms": 0, "email": 0})}
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    invoke("demo-data", "--customers", "600", "--date", "2026-03-10")
    publish_starter_pack(invoke)
    report = json.loads(invoke("run", "--all", "--date", "2026-03-10", "--json").output)
    queued = sum(r["queued"] for r in report["rules"])
    assert queued > 0
    result = invoke("send", "--once")
    assert result.exit_code == 0 and f"sent {queued}" in result.output
    lines = [json.loads(line) for name in ("sms", "email") if (tmp_path / f"{name}.jsonl").exists()
             for line in (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == queued and all(line["body"] for line in lines)
    sent = json.loads(invoke("messages", "--status", "sent", "--limit", "10000", "--json").output)
    assert len(sent) == queued
    assert "nothing due" in invoke("send", "--once").output


def test_cli_suppress_add_list_remove(cli):
    added = cli("suppress", "add", "sms", "+86 139-0000-0001", "--reason", "complaint")
    assert added.exit_code == 0 and "13900000001" in added.output
    assert "13900000001" in cli("suppress", "list").output
    assert cli("suppress", "remove", "sms", "13900000001").exit_code == 0
    assert "13900000001" not in cli("suppress", "list").output
    assert cli("suppress", "remove", "sms", "13900000001").exit_code == 2
