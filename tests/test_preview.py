"""Previews tell what a run started now would do: queued now, scheduled for the next sending window
(quiet hours, in the configured time zone), or already written by an earlier run of the occurrence."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner

from campaign_engine.cli import main
from campaign_engine.pipeline import preview
from factories import BIRTHDAY, NOW, TODAY, World, customer, rule_yaml, run_day

NIGHT = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.timezone.utc)  # 22:00 in Shanghai: SMS wait for 08:00
WINDOW_OPENS = "2026-03-11T08:00:00+08:00"


@pytest.fixture
def birthdays(world: World) -> World:
    """A marketing SMS rule and three customers whose birthday is TODAY."""
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY, channels="[sms]"))
    world.add("customers", *(customer(f"C{n}", birth_date=dt.date(1970, 3, 10), mobile=f"1380000000{n}")
                             for n in (1, 2, 3)))
    return world


@pytest.fixture
def cli(birthdays: World, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`campaign-engine` on the world's database with its rule published, at a clock set by `at`."""
    birthdays.publish()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": birthdays.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(birthdays.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(birthdays.settings.templates_dir)}

    def invoke(*args: str, at: dt.datetime = NOW) -> str:
        monkeypatch.setattr("campaign_engine.cli._now", lambda: at)
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output
    return invoke


def counts(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["rule"] == "birthday")


def test_preview_at_night_counts_scheduled_and_when_the_window_opens(birthdays):
    services = birthdays.services()
    result = preview(services, "birthday", today=TODAY, now=NIGHT)
    c = result["counts"]
    assert (c["matched"], c["queued"], c["scheduled"], c["duplicates"]) == (3, 0, 3, 0)
    assert result["now"] == "2026-03-10T22:00:00+08:00"
    assert result["scheduled_for"] == [{"at": WINDOW_OPENS, "channel": "sms", "count": 3}]
    assert [s["scheduled_for"] for s in result["sample"]] == [WINDOW_OPENS] * 3
    assert birthdays.messages() == []
    # and a run at that moment does what the preview said
    run = counts(run_day(services, today=TODAY, now=NIGHT))
    assert (run["queued"], run["scheduled"]) == (c["queued"], c["scheduled"])
    assert {m.due_at.astimezone(services.settings.tz).isoformat() for m in birthdays.messages()} == {WINDOW_OPENS}


def test_preview_in_the_sending_window_queues_now(birthdays):
    result = preview(birthdays.services(), "birthday", today=TODAY, now=NOW)
    assert (result["counts"]["queued"], result["counts"]["scheduled"], result["scheduled_for"]) == (3, 0, [])
    assert all("scheduled_for" not in s for s in result["sample"])


def test_preview_after_a_run_counts_duplicates_not_sends(birthdays):
    services = birthdays.services()
    run_day(services, today=TODAY, now=NOW)
    result = preview(services, "birthday", today=TODAY, now=NOW)
    c = result["counts"]
    assert (c["matched"], c["queued"], c["scheduled"], c["duplicates"], c["suppressed"]) == (3, 0, 0, 3, {})
    assert result["sample"] == []


def test_preview_one_customer_after_a_run_shows_the_existing_message(birthdays):
    services = birthdays.services()
    run_day(services, today=TODAY, now=NIGHT)
    [message] = birthdays.messages(customer_id="C1")
    # an hour later the window is still closed; the frequency cap would count the message itself
    [subject] = preview(services, "birthday", today=TODAY, now=NIGHT + dt.timedelta(hours=1),
                        customer_id="C1")["subjects"]
    assert subject["matches"] is True
    assert subject["existing_message"] == {"id": message.id, "run_id": message.run_id, "status": "scheduled",
                                           "channel": "sms", "due_at": WINDOW_OPENS}
    assert not {"suppressed", "channel", "body"} & set(subject)  # no decision a run would never take


def test_preview_one_customer_before_a_run_shows_the_decision_and_when(birthdays):
    [subject] = preview(birthdays.services(), "birthday", today=TODAY, now=NIGHT, customer_id="C1")["subjects"]
    assert (subject["channel"], subject["scheduled_for"]) == ("sms", WINDOW_OPENS)
    assert "existing_message" not in subject and subject["body"].startswith("【XX银行】")


def test_cli_preview_summary_says_queued_now_scheduled_and_already_written(cli):
    night = cli("preview", "birthday", "--date", TODAY.isoformat(), at=NIGHT)
    assert ("birthday on 2026-03-10: 3 candidates, 3 matched, 0 would be queued now, "
            "3 scheduled for 2026-03-11 08:00 +08:00, 0 already written, suppressed {}") in night
    assert "-> C1 by sms [1 SMS part(s)], scheduled for 2026-03-11 08:00 +08:00: 【XX银行】" in night
    cli("run", "--rule", "birthday", "--date", TODAY.isoformat(), at=NOW)
    after = cli("preview", "birthday", "--date", TODAY.isoformat(), at=NOW)
    assert "0 would be queued now, 0 scheduled, 3 already written, suppressed {}" in after


def test_cli_preview_one_customer_after_a_run_names_the_message(cli, birthdays):
    cli("run", "--rule", "birthday", "--date", TODAY.isoformat(), at=NOW)
    [message] = birthdays.messages(customer_id="C2")
    shown = cli("preview", "birthday", "--customer", "C2", "--date", TODAY.isoformat(), at=NOW)
    assert f"-> C2: already written: message #{message.id}, queued by sms (run {message.run_id})" in shown
    assert "suppressed" not in shown and "would" not in shown
    as_json = json.loads(cli("preview", "birthday", "--customer", "C2", "--date", TODAY.isoformat(), "--json",
                             at=NOW))
    assert as_json["subjects"][0]["existing_message"]["id"] == message.id
    assert json.loads(cli("preview", "birthday", "--json", at=NIGHT))["scheduled_for"] == []  # all written
