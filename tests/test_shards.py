"""A run split into customer-id shards writes exactly what one pass writes, counts included,
and a shard executed again (its worker lost) neither loses nor duplicates a message."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from campaign_engine.bootstrap import open_services
from campaign_engine.demo.loader import load_demo_data
from campaign_engine.events import Event, parse_event
from campaign_engine.pipeline import EventRunRequest, start_run
from campaign_engine.pipeline.report import summarize_shards
from campaign_engine.pipeline.shards import SHARD_ATTEMPTS, execute_shard, fail_shard
from campaign_engine.store import runs
from campaign_engine.store.models import CampaignRun, ManagerLoad, Message, RunRuleStats, RunShard, Task
from campaign_engine.vocabulary import EventType
from factories import NOW, TODAY, fire_event, run_day, publish_rules

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
        for table in (Message, Task, ManagerLoad, RunRuleStats, RunShard, CampaignRun):
            conn.execute(delete(table))


def counts(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["rule"]: (r["candidates"], r["matched"], r["queued"], r["scheduled"], r["duplicates"],
                        r["failed"], r["suppressed"], r["error"]) for r in report["rules"]}


@pytest.fixture
def demo(settings, engine):
    load_demo_data(engine, CUSTOMERS, seed=7, today=TODAY, now=NOW)
    opened = []

    def services(shard_size: int):
        publish_rules(settings)
        svc = open_services(settings.replace(shard_size=shard_size))
        opened.append(svc)
        return svc
    yield services
    for svc in opened:
        svc.close()


class HeldExecutor:
    """Records what it is handed and executes nothing: the test executes the shards itself."""

    name = "held"

    def __init__(self) -> None:
        self.submitted: list[tuple[int, list[int]]] = []

    def submit(self, services, run_id, shards, *, now) -> None:  # type: ignore[no-untyped-def]
        self.submitted.append((run_id, list(shards)))

    def sweep_delivery(self, services) -> int:  # type: ignore[no-untyped-def]
        return 0

    def close(self) -> None:
        pass


def recorded_event(services) -> tuple[Any, int, list[int]]:  # type: ignore[no-untyped-def]
    """A rate-change run recorded with its shards but not executed: (services, run id, shard numbers)."""
    held = HeldExecutor()
    services = dataclasses.replace(services, executor=held)
    report = start_run(services, EventRunRequest(parse_event(EventType.RATE_CHANGE, RATE_CHANGE)), now=NOW,
                       wait=False)
    assert report.status.value == "running" and held.submitted == [(report.run_id, held.submitted[0][1])]
    return services, report.run_id, held.submitted[0][1]


def day_then_event(services) -> tuple[dict[str, Any], dict[str, Any]]:
    """The starter pack's daily run, then a rate change the same day (the caps see the first)."""
    return (run_day(services, today=TODAY, now=NOW),
            fire_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW))


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
    reference = fire_event(demo(10**7), EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    expected = snapshot(engine)
    forget_runs(engine)

    services, run_id, shards = recorded_event(demo(700))
    first = execute_shard(services, run_id, 1, worker="w1", clock=lambda: NOW)
    written = len(snapshot(engine))
    assert first is not None and first.stats[0].queued > 0
    with engine.begin() as conn:  # w1 died after writing, before its task was acknowledged
        conn.execute(update(RunShard).where(RunShard.shard_no == 1).values(status="running"))
    again = execute_shard(services, run_id, 1, worker="w2", clock=lambda: NOW)
    assert len(snapshot(engine)) == written
    assert [s.as_dict() | {"seconds": 0} for s in again.stats] == [
        s.as_dict() | {"seconds": 0} for s in first.stats]
    assert again.stats[0].duplicates == 0  # its own messages are not someone else's duplicates

    closed = None
    for shard_no in shards:
        outcome = execute_shard(services, run_id, shard_no, worker="w3", clock=lambda: NOW)
        if shard_no == 1:
            assert outcome is None  # a finished shard delivered again does nothing
        elif outcome.closed:
            closed = outcome.closed
    assert closed is not None and closed["status"] == "completed"
    assert snapshot(engine) == expected
    with engine.connect() as conn:
        report = runs.get_run(conn, run_id)
    assert counts(report) == counts(reference)
    with engine.connect() as conn:
        attempts = dict(conn.execute(select(RunShard.shard_no, RunShard.attempts)).all())
    assert attempts[1] == 2 and all(n == 1 for s, n in attempts.items() if s != 1)


def test_run_closes_once_with_summed_counts_whatever_order_the_shards_finish(demo, engine):
    services, run_id, shards = recorded_event(demo(500))
    closes = [execute_shard(services, run_id, s, worker="w", clock=lambda: NOW).closed for s in reversed(shards)]
    assert [c is not None for c in closes] == [False] * (len(shards) - 1) + [True]
    with engine.connect() as conn:
        assert runs.close_if_done(conn, run_id, now=NOW, summarize=summarize_shards) is None  # already closed
        stored = conn.execute(select(RunRuleStats.queued)).scalars().all()
    assert stored == [closes[-1]["rules"][0]["queued"]]


def test_failed_shard_leaves_the_run_completed_with_errors_naming_it(demo, engine):
    services, run_id, shards = recorded_event(demo(1000))
    fail_shard(services, run_id, 0, "OperationalError: server closed the connection", now=NOW)
    for shard_no in shards[1:]:
        execute_shard(services, run_id, shard_no, worker="w", clock=lambda: NOW)
    with engine.connect() as conn:
        report = runs.get_run(conn, run_id)
    assert report["status"] == "completed_with_errors"
    assert "1 of 3 shard(s) failed: shard 0: OperationalError" in report["error"]
    assert report["shards"]["failed"] == 1


def test_in_process_run_failing_on_a_bug_closes_the_run_as_failed(demo, engine, monkeypatch):
    services = demo(1000)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("campaign_engine.pipeline.shards.run_rules", broken)
    with pytest.raises(ZeroDivisionError):
        fire_event(services, EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    with engine.connect() as conn:
        [run_id] = conn.execute(select(CampaignRun.id)).scalars().all()
        report = runs.get_run(conn, run_id)
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
    event = parse_event(event_type, payload)
    stored = json.loads(json.dumps(event.canonical()))  # as the run record holds it
    assert Event.from_canonical(event_type, stored) == event


def test_resume_finishes_a_run_whose_process_died_mid_run(demo, engine, database_url, tmp_path):
    from click.testing import CliRunner

    from campaign_engine.cli import main

    reference = fire_event(demo(10**7), EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    expected = snapshot(engine)
    forget_runs(engine)
    services, run_id, _ = recorded_event(demo(1000))
    execute_shard(services, run_id, 0, worker="w", clock=lambda: NOW)
    with engine.begin() as conn:  # the process died in shard 1; shard 2 never started
        conn.execute(update(RunShard).where(RunShard.shard_no == 1).values(status="running"))

    env = {"CAMPAIGN_ENGINE_DATABASE_URL": database_url}
    result = CliRunner().invoke(main, ["resume", str(run_id), "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "completed" and report["shards"]["completed"] == 3
    assert counts(report) == counts(reference)
    assert snapshot(engine) == expected

    again = CliRunner().invoke(main, ["resume", str(run_id)], env=env)
    assert again.exit_code == 2 and "has no unfinished shard" in again.output
    missing = CliRunner().invoke(main, ["resume", "999999"], env=env)
    assert missing.exit_code != 0 and "999999" in missing.output


def test_shard_whose_workers_keep_dying_is_given_up_after_its_attempts(demo, engine):
    services, run_id, _ = recorded_event(demo(10**7))
    with engine.begin() as conn:
        conn.execute(update(RunShard).values(status="running", attempts=SHARD_ATTEMPTS))
    outcome = execute_shard(services, run_id, 0, worker="w", clock=lambda: NOW)
    assert outcome.closed["status"] == "failed"
    assert f"given up after {SHARD_ATTEMPTS} attempts" in outcome.closed["error"]


def test_worker_process_follows_a_publish_and_never_reads_the_rule_folder(database_url, engine, tmp_path,
                                                                         monkeypatch):
    import shutil

    from campaign_engine.distributed import tasks
    from campaign_engine.pipeline.publishing import Submission, submit
    from campaign_engine.settings import PROJECT_ROOT, load_settings
    from campaign_engine.vocabulary import Approval

    rules_dir, templates_dir = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "rules", rules_dir)
    shutil.copytree(PROJECT_ROOT / "templates", templates_dir)
    for key, value in {"DATABASE_URL": database_url, "RULES_DIR": str(rules_dir),
                       "TEMPLATES_DIR": str(templates_dir), "SHARD_SIZE": "1000"}.items():
        monkeypatch.setenv(f"CAMPAIGN_ENGINE_{key}", value)
    monkeypatch.setattr(tasks, "_process", {})
    load_demo_data(engine, CUSTOMERS, seed=7, today=TODAY, now=NOW)
    settings = load_settings()
    publish_rules(settings)

    runtime = tasks.runtime()
    try:
        rebuilt: list[int] = []  # the worker's reads of the live set (not of the one-row generation)
        live_versions = runtime.services.store.live_versions
        monkeypatch.setattr(runtime.services.store, "live_versions", lambda: rebuilt.append(1) or live_versions())
        first = tasks.live_services()
        assert first.rulebook.rules["rate-change-notice"].version == 1
        assert tasks.live_services() is first and rebuilt == []  # nothing published since: the same services

        rule_file, sms = rules_dir / "rate_change.yaml", templates_dir / "rate_change" / "sms.txt.j2"
        rule_file.write_text(rule_file.read_text(encoding="utf-8").replace("name: ", "name: 新版 ", 1),
                             encoding="utf-8")
        sms.write_text(sms.read_text(encoding="utf-8") + "（第二版）", encoding="utf-8")
        publish_rules(settings)
        v2 = rule_file.read_text(encoding="utf-8")
        shutil.rmtree(templates_dir)  # the folders are gone (or broken): the worker never reads them
        shutil.rmtree(rules_dir)
        rules_dir.mkdir()
        (rules_dir / "rate_change.yaml").write_text("id: [broken\n", encoding="utf-8")

        second = tasks.live_services()
        assert second is not first and tasks.runtime() is runtime and rebuilt == [1]
        assert second.rulebook.rules["rate-change-notice"].name.startswith("新版")
        assert second.rulebook.rules["rate-change-notice"].version == 2
        _, run_id, shards = recorded_event(second)  # recorded at version 2
        assert len(shards) == 3
        assert tasks.shard_task(run_id, shards[0])["closed"] is False

        author = open_services(settings.replace(approval=Approval.OFF))  # version 3, while the run is on
        try:
            templates = {**second.rulebook.template_set("rate-change-notice").texts, "rate_change/sms.txt.j2": "第三版"}
            draft = submit(author, Submission("rate_change.yaml", v2.replace("name: 新版 ", "name: 第三版 ", 1),
                                              templates, "a third version", "cli:author"), now=NOW)
            assert draft["status"] == "live", draft["problems"]
        finally:
            author.close()
        outcomes = [tasks.shard_task(run_id, shard) for shard in shards[1:]]
        assert tasks.services().rulebook.rules["rate-change-notice"].version == 3  # it followed again, once
        assert rebuilt == [1, 1]
        assert [o["closed"] for o in outcomes] == [False, True]
    finally:
        tasks._close()
    assert "runtime" not in tasks._process

    with engine.connect() as conn:
        report = runs.get_run(conn, run_id)
        sms_bodies = conn.execute(select(Message.rule_version, Message.body).where(
            Message.run_id == run_id, Message.channel == "sms")).all()
    assert report["status"] == "completed" and report["shards"]["completed"] == 3
    assert len(sms_bodies) > 50  # the run wrote real traffic, each message at the run's version 2
    assert all(version == 2 and body.endswith("（第二版）") for version, body in sms_bodies)
