"""`campaign-engine messages` as a user runs it: one line or whole bodies, due times in the
configured time zone, statuses checked, recipients as `cli_contact_data` says."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata

import pytest
from click.testing import CliRunner

from campaign_engine.cli import main
from campaign_engine.store import outbox
from campaign_engine.store import runs as run_store
from campaign_engine.vocabulary import MessageStatus

NOW = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)  # 09:00 in Shanghai
LONG_BODY = "尊敬的张先生：您尾号5678的定期存款将于2026年3月15日到期，" * 4 + "\n详询95588。"


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@pytest.fixture
def cli(settings, engine):
    runner = CliRunner()

    def invoke(*args: str, **env: str):
        return runner.invoke(main, list(args), catch_exceptions=False,
                             env={"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, **env})
    return invoke


@pytest.fixture
def outbox_rows(engine) -> list[int]:
    """An SMS due at 09:00 Shanghai with a long two-line body, and an email with a short one."""
    with engine.begin() as conn:
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=NOW.date(), dry_run=False, now=NOW)
        for n, (channel, recipient, body) in enumerate([("sms", "13812345678", LONG_BODY),
                                                        ("email", "zhang.wei@example.com", "短信息")]):
            outbox.insert_messages(conn, [{
                "dedupe_key": f"td|deposit|D1|{n}", "run_id": run_id, "rule_id": "td-maturity-reminder",
                "category": "service", "priority": 80, "customer_id": "C1", "subject_type": "deposit",
                "subject_id": "D1", "channel": channel, "recipient": recipient, "status": "queued",
                "subject": "到期提醒" if channel == "email" else None, "body": body, "html": None,
                "sms_segments": 3 if channel == "sms" else None, "error": None, "consent_source": None,
                "consent_at": None, "created_at": NOW - dt.timedelta(hours=12), "due_at": NOW}])
        return [m["id"] for m in reversed(outbox.query_messages(conn, limit=10))]


def test_cli_messages_json_has_full_recipient_and_due_at_by_default(cli, outbox_rows):
    result = cli("messages", "--json")
    assert result.exit_code == 0, result.output
    sms, email = sorted(json.loads(result.output), key=lambda m: m["id"])
    assert (sms["recipient"], email["recipient"]) == ("13812345678", "zhang.wei@example.com")
    assert dt.datetime.fromisoformat(sms["due_at"]) == NOW
    assert sms["body"] == LONG_BODY  # --json always carries the whole body
    assert set(sms) >= {"id", "rule", "customer_id", "subject_id", "channel", "recipient", "status", "subject",
                        "body", "sms_segments", "error", "run_id", "created_at", "due_at"}


def test_cli_messages_masks_recipients_when_configured(cli, outbox_rows):
    masked = {"CAMPAIGN_ENGINE_CLI_CONTACT_DATA": "masked"}
    result = cli("messages", "--json", **masked)
    assert result.exit_code == 0, result.output
    assert {m["recipient"] for m in json.loads(result.output)} == {"138****5678", "z***@example.com"}
    for args in (("messages",), ("messages", "--full")):
        text = cli(*args, **masked).output
        assert "138****5678" in text and "z***@example.com" in text, args
        assert "13812345678" not in text and "zhang.wei@" not in text, args


def test_cli_messages_text_is_one_line_each_cut_with_an_ellipsis(cli, outbox_rows):
    result = cli("messages")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    email, sms = lines  # newest first
    assert email.endswith(": 短信息") and "…" not in email
    assert sms.endswith("…") and LONG_BODY.replace("\n", " ") not in sms
    shown = sms.split(": ", 1)[1]
    assert LONG_BODY.startswith(shown[:-1]) and columns(shown) <= 90  # Chinese characters take two columns
    assert sms.startswith(f"#{outbox_rows[0]} queued    td-maturity-reminder C1 sms 13812345678 due ")


def test_cli_messages_full_shows_whole_subjects_and_bodies(cli, outbox_rows):
    result = cli("messages", "--full")
    assert result.exit_code == 0, result.output
    text = result.output
    for line in LONG_BODY.splitlines():
        assert f"  {line}\n" in text
    assert "  subject: 到期提醒\n" in text and "…" not in text


def test_cli_messages_due_at_in_the_configured_time_zone(cli, outbox_rows):
    assert "due 2026-03-10 09:00+08:00" in cli("messages").output
    assert "due 2026-03-10 01:00+00:00" in cli("messages", CAMPAIGN_ENGINE_TIMEZONE="UTC").output


def test_cli_messages_unknown_status_exits_2_naming_the_statuses(cli, outbox_rows):
    result = cli("messages", "--status", "bogus")
    assert result.exit_code == 2
    assert "bogus" in result.output and all(s.value in result.output for s in MessageStatus)
    assert cli("messages", "--status", "queued").output.count("\n") == 2
    assert cli("messages", "--status", "sent").output == "no messages match\n"
    assert cli("messages", "--status", "sent", "--json").output == "[]\n"
