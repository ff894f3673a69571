"""The run commands (run, event, resume, report) as a user sees them, in --json and in text, on
each executor: in this process; a broker whose tasks nobody executes (--no-wait returns a
`running` run); real `campaign-engine worker` processes on the local Redis."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

import test_distributed
from campaign_engine.bootstrap import open_services
from campaign_engine.cli import main
from campaign_engine.demo.loader import load_demo_data
from campaign_engine.distributed.executor import SHARD_TASK
from campaign_engine.pipeline.shards import execute_shard
from campaign_engine.store import runs
from campaign_engine.store.models import CampaignRun, Message
from factories import NOW, TODAY, publish_rules
from test_distributed import REDIS_URL, cluster  # noqa: F401  (cluster: a fixture, found by its name here)
from test_shards import RATE_CHANGE, recorded_event

CUSTOMERS = 400
DATE = TODAY.isoformat()  # NOW is 09:00 on TODAY in Shanghai
SCHEDULED = ["td-maturity-reminder", "td-maturity-visit", "birthday-greeting", "lunar-birthday-greeting",
             "holiday-greeting"]  # in priority order
class _TableHeader:
    """Equal to the table's header line, whatever width the rules' names give its first column."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(
            r"rule +candidates +matched +queued +sched +dup +failed  suppressed", other) is not None

    def __repr__(self) -> str:
        return "<the table header>"


TABLE_HEADER = _TableHeader()
ROW = re.compile(r"(?P<rule>\S+)(?: (?P<name>.*?))? +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)  (?P<suppressed>.*)")


def visible(output: str) -> list[str]:
    """The text output's lines without the `started ... finished ...` line (its times are the clock's)."""
    return [line for line in output.splitlines() if not line.startswith("started ")]
needs_redis = test_distributed.pytestmark  # skipped, with the reason shown, when Redis does not answer


def running_lines(run_id: int, completed: int, total: int) -> list[str]:
    """What the text mode prints for a run still on the workers."""
    return [f"run {run_id} {DATE} running ({completed}/{total} shards completed)",
            f"run {run_id} is running: `campaign-engine report {run_id}` shows where it stands"]


def table(output: str) -> dict[str, tuple[Any, ...]]:
    """The text report's rows: rule -> (candidates, matched, queued, sched, dup, failed, suppressed)."""
    lines = output.splitlines()
    start = lines.index(TABLE_HEADER) + 1  # type: ignore[arg-type]
    rows = {}
    for line in lines[start:]:
        if line.startswith("  "):  # a rule's error or delivery line
            continue
        if line.startswith("candidates: "):  # the legend after the table
            break
        row = ROW.fullmatch(line)
        assert row is not None, line
        rows[row["rule"]] = (*(int(n) for n in row.groups()[2:8]), row["suppressed"])
    return rows


def table_of(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """A --json report's rules as the text table shows them."""
    return {r["rule"]: (r["candidates"], r["matched"], r["queued"], r["scheduled"], r["duplicates"], r["failed"],
                        ", ".join(f"{k}={v}" for k, v in sorted(r["suppressed"].items())) or "-")
            for r in report["rules"]}


def without_delivery(report: dict[str, Any]) -> dict[str, Any]:
    """A report without where its messages stand now (delivery moves on between two reads)."""
    return {**report, "rules": [{k: v for k, v in r.items() if k != "delivery"} for r in report["rules"]]}


def run_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(CampaignRun.id).order_by(CampaignRun.id)).scalars())


def messages_of(engine, run_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Message).where(Message.run_id == run_id)).scalar_one()


@pytest.fixture
def demo(engine, settings):
    """The demo bank with the project's starter pack published (after its products: publishing checks them)."""
    load_demo_data(engine, CUSTOMERS, seed=7, today=TODAY, now=NOW)
    assert {draft["status"] for draft in publish_rules(settings)} == {"live"}


@pytest.fixture
def cli(database_url, demo, monkeypatch):
    """The CLI in this process at NOW on the demo bank; `broker=` sets a Celery broker (none: in-process)."""
    monkeypatch.setattr("campaign_engine.cli._now", lambda: NOW)
    runner = CliRunner()

    def invoke(*args: str, broker: str = "", queue: str = "campaign_engine") -> Result:
        env = {"CAMPAIGN_ENGINE_DATABASE_URL": database_url, "CAMPAIGN_ENGINE_CELERY_BROKER_URL": broker,
               "CAMPAIGN_ENGINE_CELERY_QUEUE": queue}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


@pytest.fixture
def broker(cli, monkeypatch):
    """The CLI with a memory:// broker on a queue of this test's own: tasks are queued in this
    process and nothing executes them. Yields (invoke, queued) where queued() lists the queued
    shard tasks' (task name, run id, shard number)."""
    from kombu.transport.memory import Channel

    queue = f"ce-test-{uuid.uuid4().hex[:12]}"

    def invoke(*args: str) -> Result:
        return cli(*args, broker="memory://", queue=queue)

    def queued() -> list[tuple[str, int, int]]:
        messages = list(Channel.queues[queue].queue) if queue in Channel.queues else []
        return [(m["headers"]["task"], *json.loads(base64.b64decode(m["body"]))[0]) for m in messages]
    yield invoke, queued
    Channel.queues.pop(queue, None)


@pytest.fixture
def unfinished(settings, engine, demo):
    """A rate-change run recorded in 3 shards, shard 0 executed, shards 1 and 2 never started
    (the process that ran it died): its run id."""
    services = open_services(settings.replace(shard_size=150))
    try:
        held, run_id, shards = recorded_event(services)
        assert shards == [0, 1, 2]
        execute_shard(held, run_id, 0, worker="lost", clock=lambda: NOW)
    finally:
        services.close()
    with engine.connect() as conn:
        assert runs.get_run(conn, run_id)["shards"]["completed"] == 1
    return run_id


# -- in-process ---------------------------------------------------------------------------------

def test_run_json_in_process_prints_the_completed_run_with_counts_per_rule(cli, engine):
    result = cli("run", "--all", "--date", DATE, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert isinstance(report["run_id"], int) and run_ids(engine) == [report["run_id"]]
    assert (report["kind"], report["date"], report["status"], report["dry_run"], report["error"]) == (
        "scheduled", DATE, "completed", False, None)
    assert report["rule_ids"] == SCHEDULED and [r["rule"] for r in report["rules"]] == SCHEDULED
    assert report["shards"] == {"total": 1, "pending": 0, "running": 0, "completed": 1, "failed": 0}
    td = report["rules"][0]
    assert td["candidates"] >= td["matched"] >= td["queued"] > 0
    written = sum(r["queued"] + r["scheduled"] for r in report["rules"])
    assert messages_of(engine, report["run_id"]) == written


def test_run_text_in_process_prints_the_header_and_a_row_per_rule(cli, engine):
    result = cli("run", "--all", "--date", DATE)
    assert result.exit_code == 0, result.output
    [run_id] = run_ids(engine)
    lines = visible(result.output)
    assert lines[:2] == [f"run {run_id} {DATE} completed", TABLE_HEADER]
    assert "KeyError" not in result.output
    with engine.connect() as conn:
        stored = runs.get_run(conn, run_id)
    assert list(table(result.output)) == SCHEDULED
    assert table(result.output) == table_of(stored)
    assert table(result.output)["td-maturity-reminder"][2] > 0  # queued


def test_event_json_in_process_prints_the_completed_run_and_its_replay(cli, engine):
    data = json.dumps(RATE_CHANGE)
    result = cli("event", "rate_change", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)
    assert (first["kind"], first["date"], first["status"], first["replayed"]) == ("event", DATE, "completed", False)
    assert first["event_key"] == "rate_change:rc-1"
    assert first["rule_ids"] == ["rate-change-notice"] and [r["rule"] for r in first["rules"]] == ["rate-change-notice"]
    notice = first["rules"][0]
    assert notice["matched"] >= notice["queued"] > 0
    assert messages_of(engine, first["run_id"]) == notice["queued"] + notice["scheduled"]

    again = cli("event", "rate-change", "--data", data, "--json")
    assert again.exit_code == 0, again.output
    replay = json.loads(again.output)
    assert replay["replayed"] is True and replay["run_id"] == first["run_id"]
    assert without_delivery(replay) == without_delivery(first) | {"replayed": True}
    assert run_ids(engine) == [first["run_id"]]  # nothing recorded or written again
    assert messages_of(engine, first["run_id"]) == notice["queued"] + notice["scheduled"]


def test_event_text_in_process_prints_the_table_and_marks_a_replay(cli, engine):
    data = json.dumps(RATE_CHANGE)
    result = cli("event", "rate_change", "--data", data)
    assert result.exit_code == 0, result.output
    [run_id] = run_ids(engine)
    assert visible(result.output)[:2] == [f"run {run_id} {DATE} completed", TABLE_HEADER]
    rows = table(result.output)
    assert list(rows) == ["rate-change-notice"] and rows["rate-change-notice"][2] > 0

    again = cli("event", "rate_change", "--data", data)
    assert again.exit_code == 0, again.output
    assert visible(again.output)[:2] == [
        f"run {run_id} {DATE} completed (event already handled: this is its first run)", TABLE_HEADER]
    assert table(again.output) == rows
    assert run_ids(engine) == [run_id]


def test_resume_json_in_process_completes_a_run_whose_shards_are_unfinished(cli, engine, unfinished):
    result = cli("resume", str(unfinished), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["run_id"], report["kind"], report["status"], report["error"]) == (
        unfinished, "event", "completed", None)
    assert report["shards"] == {"total": 3, "pending": 0, "running": 0, "completed": 3, "failed": 0}
    [notice] = report["rules"]
    assert notice["rule"] == "rate-change-notice" and notice["queued"] > 0
    assert messages_of(engine, unfinished) == notice["queued"] + notice["scheduled"]


def test_resume_text_in_process_completes_and_refuses_a_finished_run(cli, engine, unfinished):
    result = cli("resume", str(unfinished))
    assert result.exit_code == 0, result.output
    assert visible(result.output)[:2] == [f"run {unfinished} {DATE} completed (3/3 shards completed)",
                                              TABLE_HEADER]
    assert list(table(result.output)) == ["rate-change-notice"]

    for args in (("resume", str(unfinished)), ("resume", str(unfinished), "--json")):
        again = cli(*args)
        assert again.exit_code == 2
        assert f"run {unfinished} has no unfinished shard" in again.output
        assert "Traceback" not in again.output


def test_report_json_equals_what_run_json_printed(cli):
    ran = json.loads(cli("run", "--all", "--date", DATE, "--json").output)
    result = cli("report", str(ran["run_id"]), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert without_delivery(report) == without_delivery(ran)
    assert report["rules"][0]["delivery"] == {"queued": ran["rules"][0]["queued"]}  # nothing sent yet


def test_report_text_in_process_shows_the_table_and_where_messages_stand(cli):
    ran = json.loads(cli("run", "--all", "--date", DATE, "--json").output)
    result = cli("report", str(ran["run_id"]))
    assert result.exit_code == 0, result.output
    lines = visible(result.output)
    assert lines[:2] == [f"run {ran['run_id']} {DATE} completed", TABLE_HEADER]
    assert table(result.output) == table_of(ran)
    queued = ran["rules"][0]["queued"]
    assert lines[2].startswith("td-maturity-reminder") and lines[3] == f"  now: queued={queued}"
    missing = cli("report", "999999")
    assert missing.exit_code == 2 and "999999" in missing.output


# -- a broker, no worker: --no-wait returns once the shards are queued ---------------------------

def test_run_json_no_wait_on_a_broker_prints_running_with_queued_shards(broker, engine):
    invoke, queued = broker
    result = invoke("run", "--all", "--date", DATE, "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert run_ids(engine) == [report["run_id"]]
    assert (report["status"], report["date"], report["finished_at"], report["rules"]) == (
        "running", DATE, None, [])
    assert report["rule_ids"] == SCHEDULED
    assert report["shards"] == {"total": 1, "pending": 1, "running": 0, "completed": 0, "failed": 0}
    assert queued() == [(SHARD_TASK, report["run_id"], 0)]
    assert messages_of(engine, report["run_id"]) == 0  # nothing executed here


def test_run_text_no_wait_on_a_broker_prints_running_and_the_report_hint(broker, engine):
    invoke, queued = broker
    result = invoke("run", "--all", "--date", DATE, "--no-wait")
    assert result.exit_code == 0, result.output
    [run_id] = run_ids(engine)
    assert visible(result.output) == running_lines(run_id, 0, 1)
    assert "KeyError" not in result.output and "Traceback" not in result.output
    assert queued() == [(SHARD_TASK, run_id, 0)]


def test_event_json_no_wait_on_a_broker_prints_running_and_a_replay_queues_nothing(broker, engine):
    invoke, queued = broker
    data = json.dumps(RATE_CHANGE)
    result = invoke("event", "rate_change", "--data", data, "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["kind"], report["status"], report["rules"], report["rule_ids"]) == (
        "event", "running", [], ["rate-change-notice"])
    assert report["shards"]["total"] >= 1 and report["shards"]["pending"] == report["shards"]["total"]
    assert queued() == [(SHARD_TASK, report["run_id"], n) for n in range(report["shards"]["total"])]

    replay = json.loads(invoke("event", "rate_change", "--data", data, "--no-wait", "--json").output)
    assert (replay["run_id"], replay["replayed"], replay["status"]) == (report["run_id"], True, "running")
    assert len(queued()) == report["shards"]["total"]  # the replay queued nothing more
    assert run_ids(engine) == [report["run_id"]]


def test_event_text_no_wait_on_a_broker_prints_running_and_the_report_hint(broker, engine):
    invoke, queued = broker
    result = invoke("event", "rate_change", "--data", json.dumps(RATE_CHANGE), "--no-wait")
    assert result.exit_code == 0, result.output
    [run_id] = run_ids(engine)
    assert visible(result.output) == running_lines(run_id, 0, 1)
    assert "KeyError" not in result.output and "Traceback" not in result.output
    assert queued() == [(SHARD_TASK, run_id, 0)]


def test_resume_json_no_wait_on_a_broker_queues_only_the_unfinished_shards(broker, engine, unfinished):
    invoke, queued = broker
    result = invoke("resume", str(unfinished), "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["run_id"], report["status"], report["rules"]) == (unfinished, "running", [])
    assert report["shards"] == {"total": 3, "pending": 2, "running": 0, "completed": 1, "failed": 0}
    assert queued() == [(SHARD_TASK, unfinished, 1), (SHARD_TASK, unfinished, 2)]


def test_resume_text_no_wait_on_a_broker_prints_running_and_the_report_hint(broker, unfinished):
    invoke, queued = broker
    result = invoke("resume", str(unfinished), "--no-wait")
    assert result.exit_code == 0, result.output
    assert visible(result.output) == running_lines(unfinished, 1, 3)
    assert "KeyError" not in result.output and "Traceback" not in result.output
    assert queued() == [(SHARD_TASK, unfinished, 1), (SHARD_TASK, unfinished, 2)]


def test_report_json_of_a_run_queued_on_a_broker_shows_it_running(broker):
    invoke, _ = broker
    accepted = json.loads(invoke("run", "--all", "--date", DATE, "--no-wait", "--json").output)
    result = invoke("report", str(accepted["run_id"]), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report == accepted
    assert report["status"] == "running" and report["shards"]["pending"] == 1


def test_report_text_of_a_run_queued_on_a_broker_shows_it_running(broker):
    invoke, _ = broker
    accepted = json.loads(invoke("run", "--all", "--date", DATE, "--no-wait", "--json").output)
    result = invoke("report", str(accepted["run_id"]))
    assert result.exit_code == 0, result.output
    assert visible(result.output) == running_lines(accepted["run_id"], 0, 1)


# -- real workers ------------------------------------------------------------------------------

@needs_redis
def test_run_commands_on_celery_workers_wait_report_and_resume(cluster, engine):  # noqa: F811
    import redis

    cluster_settings, start, _ = cluster
    load_demo_data(engine, CUSTOMERS, seed=7, today=TODAY, now=NOW)
    env = {**os.environ,
           "CAMPAIGN_ENGINE_DATABASE_URL": cluster_settings.database_url,
           "CAMPAIGN_ENGINE_CELERY_BROKER_URL": cluster_settings.celery_broker_url,
           "CAMPAIGN_ENGINE_CELERY_QUEUE": cluster_settings.celery_queue,
           "CAMPAIGN_ENGINE_CELERY_VISIBILITY_TIMEOUT": str(cluster_settings.celery_visibility_timeout),
           "CAMPAIGN_ENGINE_CHANNELS": json.dumps(cluster_settings.channels),
           "CAMPAIGN_ENGINE_QUIET_HOURS": "{}", "CAMPAIGN_ENGINE_SEND_RATES": "{}"}

    def cli(*args: str, status: int = 0) -> str:
        done = subprocess.run([sys.executable, "-m", "campaign_engine.cli", *args], env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == status, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    # a run whose tasks are lost before any worker took them, then resumed on a worker
    lost = json.loads(cli("run", "--all", "--date", "2026-03-09", "--no-wait", "--json"))
    assert (lost["status"], lost["rules"]) == ("running", [])
    assert lost["shards"] == {"total": 1, "pending": 1, "running": 0, "completed": 0, "failed": 0}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.llen(cluster_settings.celery_queue) == 1  # the shard's task, on the broker
        assert client.delete(cluster_settings.celery_queue) == 1  # ... lost
    finally:
        client.close()
    start(concurrency=1)
    still = json.loads(cli("report", str(lost["run_id"]), "--json"))
    assert (still["status"], still["shards"]["pending"]) == ("running", 1)  # nobody has its task
    resumed = json.loads(cli("resume", str(lost["run_id"]), "--json"))
    assert (resumed["run_id"], resumed["status"], resumed["date"]) == (lost["run_id"], "completed", "2026-03-09")
    assert resumed["shards"] == {"total": 1, "pending": 0, "running": 0, "completed": 1, "failed": 0}
    assert [r["rule"] for r in resumed["rules"]] == SCHEDULED

    # waiting runs, executed by the worker
    day = json.loads(cli("run", "--all", "--date", DATE, "--json"))
    assert (day["status"], day["date"], day["shards"]["completed"]) == ("completed", DATE, 1)
    assert [r["rule"] for r in day["rules"]] == SCHEDULED
    written = sum(r["queued"] + r["scheduled"] for r in day["rules"])
    assert written > 0 and messages_of(engine, day["run_id"]) == written
    text = cli("run", "--all", "--date", DATE)
    assert visible(text)[:2] == [f"run {day['run_id'] + 1} {DATE} completed", TABLE_HEADER]
    assert list(table(text)) == SCHEDULED

    event = json.loads(cli("event", "rate_change", "--data", json.dumps(RATE_CHANGE), "--json"))
    assert (event["kind"], event["status"], event["replayed"]) == ("event", "completed", False)
    [notice] = event["rules"]
    assert notice["rule"] == "rate-change-notice" and notice["queued"] > 0
    assert messages_of(engine, event["run_id"]) == notice["queued"] + notice["scheduled"]
    second = cli("event", "rate_change", "--data", json.dumps({**RATE_CHANGE, "event_id": "rc-2"}))
    head = re.fullmatch(r"run (\d+) (\d{4}-\d\d-\d\d) completed", second.splitlines()[0])
    assert head is not None, second
    assert (int(head[1]), head[2]) == (event["run_id"] + 1, event["date"])
    assert list(table(second)) == ["rate-change-notice"]

    # reports of what the workers did
    report = json.loads(cli("report", str(day["run_id"]), "--json"))
    assert without_delivery(report) == without_delivery(day)
    shown = cli("report", str(event["run_id"]))
    assert visible(shown)[:2] == [f"run {event['run_id']} {event['date']} completed", TABLE_HEADER]
    assert table(shown) == table_of(event)
    assert run_ids(engine) == [lost["run_id"], day["run_id"], day["run_id"] + 1, event["run_id"],
                               event["run_id"] + 1]

