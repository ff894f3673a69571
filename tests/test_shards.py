"""A run split into customer-id shards writes exactly what one pass writes, counts included,
and a shard executed again (its worker lost) neither loses nor duplicates a message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from campaign_engine.bootstrap import open_services
from campaign_engine.events import load_event, restore_event
from campaign_engine.pipeline import (begin_event, finish_run, handle_event, plan_shards, run_scheduled,
                                      run_shard, _payload_json)
from campaign_engine.store import runs
from campaign_engine.store.importers import load_demo_data
from campaign_engine.store.models import CampaignRun, Message, RunRuleStats, RunShard
from campaign_engine.vocabulary import EventType
from factories import NOW, TODAY

CUSTOMERS = 3000
RATE_CHANGE = {"event_id": "rc-1", "product_type": "time_deposit", "old_rate": 1.65, "new_rate": 1.45,
               "effective_date": TODAY.isoformat()}
SNAPSHOT = (Message.dedupe_key, Message.rule_id, Message.customer_id, Message.subject_id, Message.channel,
            Message.recipient, Message.status, Message.body, Message.subject, Message.due_at,
            Message.created_at)


def snapshot(engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*SNAPSHOT).order_by(Message.dedupe_key))]


def forget_runs(engine) -> None:
    with engine.begin() as conn:
        for table in (Message, RunRuleStats, RunShard, CampaignRun):
            conn.execute(delete(table))


def counts(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["rule"]: (r["candidates"], r["matched"], r["queued"], r["scheduled"], r["duplicates"],
                        r["failed"], r["suppressed"], r["error"]) for r in report["rules"]}


@pytest.fixture
def demo(settings, engine):
    load_demo_data(engine, CUSTOMERS, seed=7, today=TODAY, now=NOW)
    opened = []

    def services(shard_size: int):
        svc = open_services(settings.replace(shard_size=shard_size))
        opened.append(svc)
        return svc
    yield services
    for svc in opened:
        svc.close()


def day_then_event(services) -> tuple[dict[str, Any], dict[str, Any]]:
    """The starter pack's daily run, then a rate change the same day (the caps see the first)."""
    return (run_scheduled(services, today=TODAY, now=NOW),
            handle_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW))


def test_sharded_run_writes_exactly_the_messages_and_counts_of_one_pass(demo, engine):
    whole_day, whole_event = day_then_event(demo(10**7))
    whole = snapshot(engine)
    forget_runs(engine)
    day, event = day_then_event(demo(137))
    assert snapshot(engine) == whole
    assert counts(day) == counts(whole_day) and counts(event) == counts(whole_event)
    assert sum(r["queued"] for r in event["rules"]) > 100  # the comparison covers real traffic
    with engine.connect() as conn:
        shards = runs.shard_summary(conn, event["run_id"])
    assert shards == {"total": -(-CUSTOMERS // 137), "pending": 0, "running": 0, "completed": shards["total"],
                      "failed": 0}


def test_shard_executed_again_after_a_lost_worker_counts_its_own_messages_once(demo, engine):
    reference = handle_event(demo(10**7), EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    expected = snapshot(engine)
    forget_runs(engine)

    services = demo(700)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending
    shards = plan_shards(services, pending)
    first = run_shard(services, pending.run_id, 1, worker="w1", clock=lambda: NOW)
    written = len(snapshot(engine))
    assert first is not None and first.stats[0].queued > 0
    with engine.begin() as conn:  # w1 died after writing, before its task was acknowledged
        conn.execute(update(RunShard).where(RunShard.shard_no == 1).values(status="running"))
    again = run_shard(services, pending.run_id, 1, worker="w2", clock=lambda: NOW)
    assert len(snapshot(engine)) == written
    assert [s.as_dict() | {"seconds": 0} for s in again.stats] == [
        s.as_dict() | {"seconds": 0} for s in first.stats]
    assert again.stats[0].duplicates == 0  # its own messages are not someone else's duplicates

    closed = None
    for shard in shards:
        outcome = run_shard(services, pending.run_id, shard.number, worker="w3", clock=lambda: NOW)
        if shard.number == 1:
            assert outcome is None  # a finished shard delivered again does nothing
        elif outcome.closed:
            closed = outcome.closed
    assert closed is not None and closed["status"] == "completed"
    assert snapshot(engine) == expected
    with engine.connect() as conn:
        report = runs.get_run(conn, pending.run_id)
    assert counts(report) == counts(reference)
    with engine.connect() as conn:
        attempts = dict(conn.execute(select(RunShard.shard_no, RunShard.attempts)).all())
    assert attempts[1] == 2 and all(n == 1 for s, n in attempts.items() if s != 1)


def test_run_closes_once_with_summed_counts_whatever_order_the_shards_finish(demo, engine):
    services = demo(500)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending
    shards = plan_shards(services, pending)
    closes = [run_shard(services, pending.run_id, s.number, worker="w", clock=lambda: NOW).closed
              for s in reversed(shards)]
    assert [c is not None for c in closes] == [False] * (len(shards) - 1) + [True]
    with engine.connect() as conn:
        assert runs.close_if_done(conn, pending.run_id, now=NOW) is None  # already closed
        stored = conn.execute(select(RunRuleStats.queued)).scalars().all()
    assert stored == [closes[-1]["rules"][0]["queued"]]


def test_failed_shard_leaves_the_run_completed_with_errors_naming_it(demo, engine):
    services = demo(1000)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending
    shards = plan_shards(services, pending)
    from campaign_engine.pipeline import fail_shard

    fail_shard(services, pending.run_id, 0, "OperationalError: server closed the connection", now=NOW)
    for shard in shards[1:]:
        run_shard(services, pending.run_id, shard.number, worker="w", clock=lambda: NOW)
    with engine.connect() as conn:
        report = runs.get_run(conn, pending.run_id)
    assert report["status"] == "completed_with_errors"
    assert "1 of 3 shard(s) failed: shard 0: OperationalError" in report["error"]
    assert report["shards"]["failed"] == 1


def test_in_process_run_failing_on_a_bug_closes_the_run_as_failed(demo, engine, monkeypatch):
    services = demo(1000)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("campaign_engine.pipeline.execute_shard", broken)
    with pytest.raises(ZeroDivisionError):
        finish_run(services, pending)
    with engine.connect() as conn:
        report = runs.get_run(conn, pending.run_id)
    assert report["status"] == "failed" and "ZeroDivisionError: a bug" in report["error"]
    assert report["shards"]["failed"] == report["shards"]["total"] == 3


@pytest.mark.parametrize("event_type, payload", [
    (EventType.RATE_CHANGE, RATE_CHANGE),
    (EventType.RATE_CHANGE, {**RATE_CHANGE, "product_code": "TD1Y", "product_type": None}),
    (EventType.PRODUCT_LAUNCH, {"event_id": "pl-1", "launch_date": "2026-03-12", "product": {
        "code": "WM-NEW", "name": "稳健理财", "type": "wealth", "risk_level": "R3", "rate": 3.1,
        "min_amount": 10000}}),
    (EventType.PRODUCT_LAUNCH, {"event_id": "pl-2", "launch_date": "2026-03-12", "product": {
        "code": "WM-NEW", "name": "稳健理财", "type": "wealth", "risk_level": "R2"}}),
    (EventType.LARGE_TRANSACTION, {"event_id": "lt-1", "customer_id": "C00000001", "account_no": "6222",
                                   "amount": "500000.00", "direction": "in",
                                   "occurred_at": "2026-03-10T09:30:00+08:00"}),
])
def test_worker_rebuilds_the_event_exactly_as_the_api_validated_it(event_type, payload):
    payload = {k: v for k, v in payload.items() if v is not None}
    event = load_event(event_type, payload)
    assert restore_event(event_type, _payload_json(event)) == event


def test_resume_finishes_a_run_whose_process_died_mid_run(demo, engine, database_url, tmp_path):
    from click.testing import CliRunner

    from campaign_engine.cli import main

    reference = handle_event(demo(10**7), EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    expected = snapshot(engine)
    forget_runs(engine)
    services = demo(1000)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending
    plan_shards(services, pending)
    run_shard(services, pending.run_id, 0, worker="w", clock=lambda: NOW)
    with engine.begin() as conn:  # the process died in shard 1; shard 2 never started
        conn.execute(update(RunShard).where(RunShard.shard_no == 1).values(status="running"))

    env = {"CAMPAIGN_ENGINE_DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["resume", str(pending.run_id), "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "completed" and report["shards"]["completed"] == 3
    assert counts(report) == counts(reference)
    assert snapshot(engine) == expected

    again = CliRunner().invoke(main, ["resume", str(pending.run_id)], env=env)
    assert again.exit_code == 2 and "has no unfinished shard" in again.output
    missing = CliRunner().invoke(main, ["resume", "999999"], env=env)
    assert missing.exit_code != 0 and "999999" in missing.output


def test_shard_whose_workers_keep_dying_is_given_up_after_its_attempts(demo, engine):
    from campaign_engine.pipeline import SHARD_ATTEMPTS

    services = demo(10**7)
    pending = begin_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW).pending
    plan_shards(services, pending)
    with engine.begin() as conn:
        conn.execute(update(RunShard).values(status="running", attempts=SHARD_ATTEMPTS))
    outcome = run_shard(services, pending.run_id, 0, worker="w", clock=lambda: NOW)
    assert outcome.closed["status"] == "failed"
    assert f"given up after {SHARD_ATTEMPTS} attempts" in outcome.closed["error"]


def test_worker_process_reloads_rules_when_their_files_change(database_url, engine, tmp_path, monkeypatch):
    import os
    import shutil

    from campaign_engine.distributed import tasks
    from campaign_engine.settings import PROJECT_ROOT

    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "templates", tmp_path / "templates")
    for key, value in {"DATABASE_URL": database_url, "RULES_DIR": str(tmp_path / "rules"),
                       "TEMPLATES_DIR": str(tmp_path / "templates")}.items():
        monkeypatch.setenv(f"CAMPAIGN_ENGINE_{key}", value)
    monkeypatch.setattr(tasks, "_process", {})
    first = tasks.services()
    try:
        assert tasks.services() is first  # unchanged files: the same services
        rule_file = next(p for p in (tmp_path / "rules").glob("*.yaml") if "birthday" in p.read_text())
        rule_file.write_text(rule_file.read_text(encoding="utf-8").replace(
            "name: ", "name: 新版 ", 1), encoding="utf-8")
        os.utime(rule_file, ns=(1, 1))  # a different stamp even within the clock's resolution
        second = tasks.services()
        assert second is not first
        assert second.rulebook.rules["birthday-greeting"].name.startswith("新版")
    finally:
        tasks._process.get("services", first).close()
