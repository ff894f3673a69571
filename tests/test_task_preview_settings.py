"""What a user reads about manager tasks outside the list: the preview's text line counts the calls
and visits it would plan (as it counts messages), and settings refuse a task hour outside the
call window."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from click.testing import CliRunner

from campaign_engine.cli import main
from campaign_engine.errors import ConfigError
from campaign_engine.settings import load_settings
from factories import customer
from test_manager_tasks import CALL_RULE, TASK_TEXT, large_move, local, manager

FRIDAY = local(2026, 3, 13, 15, 0)  # the next business day is Monday 2026-03-16


@pytest.fixture
def preview(world, engine, monkeypatch):  # type: ignore[no-untyped-def]
    world.template("big", {"sms.txt.j2": "{{ customer.name }}，您的大额入账已到账", "task.txt.j2": TASK_TEXT})
    world.rule("big.yaml", CALL_RULE)
    world.add("customers", customer("X007", tier="diamond", manager_id="M1"),
              customer("X008", tier="diamond", manager_id=None, branch="上海分行"))
    manager(engine, "M1")
    world.publish()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir)}
    monkeypatch.setattr("campaign_engine.cli._now", lambda: FRIDAY)

    def invoke(customer_id: str, *extra: str) -> str:
        event = json.dumps(large_move(customer_id, f"lt-{customer_id}"))
        result = CliRunner().invoke(main, ["preview", "big-move", "--event", event, *extra], env=env,
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output
    return invoke


def test_the_preview_text_counts_the_calls_it_would_plan(preview):
    text = preview("X007")
    assert ("big-move on 2026-03-13: 1 candidates, 1 matched, 0 would be queued now, 0 scheduled, "
            "1 call would be planned for 2026-03-16 10:00 +08:00, 0 merged into open tasks, 0 already written, "
            "suppressed {}") in text
    assert "-> X007 by call, due 2026-03-16 10:00 +08:00 for M1 经理M1: 电联张伟" in text
    data = json.loads(preview("X007", "--json"))
    assert data["counts"]["tasks"] == 1 and data["scheduled_for"] == []  # a call is no scheduled message
    assert data["tasks_planned"] == [{"at": "2026-03-16T10:00:00+08:00", "type": "call", "count": 1}]
    assert data["sample"][0]["owner"] == {"id": "M1", "name": "经理M1", "branch": "北京分行", "queue": False}


def test_the_preview_names_the_branch_queue(preview):
    assert "-> X008 by call, due 2026-03-16 10:00 +08:00 for the 上海分行 branch queue: " in preview("X008")


def settings_with(tmp_path, tasks: dict[str, Any]):  # type: ignore[no-untyped-def]
    config = tmp_path / "override.yaml"
    config.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    return load_settings(env={"CAMPAIGN_ENGINE_CONFIG": str(config)})


def test_a_task_hour_outside_the_call_window_is_refused_naming_setting_value_and_window(tmp_path):
    with pytest.raises(ConfigError) as raised:
        settings_with(tmp_path, {"hour": "20:00"})  # the call window is 09:00-18:00
    [problem] = raised.value.problems
    assert problem.field == "tasks.hour"
    assert problem.reason.startswith("tasks.hour 20:00 is outside the call window tasks.window 09:00-18:00")
    with pytest.raises(ConfigError, match="tasks.hour 08:30 is outside"):
        settings_with(tmp_path, {"hour": "08:30"})
    assert settings_with(tmp_path, {"hour": "20:00", "window": {"start": "09:00", "end": "21:00"}}).tasks.hour == \
        dt.time(20, 0)
    assert settings_with(tmp_path, {"hour": "17:30"}).tasks.hour == dt.time(17, 30)
