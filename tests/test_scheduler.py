"""The scheduler on real APScheduler and a real database: jobs per rule, misfires, one fire per date."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED,
                                JobEvent)
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from campaign_engine.errors import ConfigError
from campaign_engine.pipeline.publishing import disable
from campaign_engine.runtime import Runtime
from campaign_engine.scheduler import (CampaignScheduler, build_scheduler, fire, fire_rule, job_id,
                                       run_scheduler_forever, start_scheduler)
from campaign_engine.triggers import cron_trigger
from campaign_engine.store import fires
from campaign_engine.store.scheduler_jobs import CampaignJobStore
from campaign_engine.store.db import make_engine
from campaign_engine.store.models import CampaignRun, ScheduleFire, apscheduler_jobs
from factories import BIRTHDAY, NOW, TODAY, World, customer, rule_yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
WAIT = 30.0  # seconds: an upper bound for a job to run, never a sleep
QUIET = 2.5  # seconds the scheduler loop (refreshing every second) is watched for doing nothing


def clock() -> dt.datetime:
    return NOW  # 09:00 in Shanghai on TODAY


class Events:
    """APScheduler job events of one scheduler, to wait on instead of sleeping."""

    MASK = EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED

    def __init__(self, scheduler: CampaignScheduler, done: threading.Event | None = None):
        self.seen: list[JobEvent] = []
        self.done = done or threading.Event()
        scheduler.aps.add_listener(self._on_event, self.MASK)

    def _on_event(self, event: JobEvent) -> None:
        self.seen.append(event)
        if event.code != EVENT_JOB_SUBMITTED:
            self.done.set()

    def of(self, code: int) -> list[JobEvent]:
        return [e for e in self.seen if e.code == code]


class Processes:
    """Schedulers standing for service processes: each its own Runtime, Services and owner."""

    def __init__(self, world: World):
        self.world = world
        self.schedulers: list[CampaignScheduler] = []

    def runtime(self) -> Runtime:
        return Runtime(self.world.services())

    def build(self, owner: str, runtime: Runtime | None = None) -> CampaignScheduler:
        scheduler = build_scheduler(runtime or self.runtime(), owner=owner, clock=clock)
        self.schedulers.append(scheduler)
        return scheduler

    def start(self, owner: str, runtime: Runtime | None = None, *, paused: bool = False) -> CampaignScheduler:
        scheduler = self.build(owner, runtime)
        scheduler.start(paused=paused)
        return scheduler

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.shutdown(wait=True)


@pytest.fixture
def processes(world):
    processes = Processes(world)
    yield processes
    processes.close()


def birthday_world(world: World) -> None:
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)),
              customer("C2", birth_date=dt.date(1970, 3, 11)))


def make_due(scheduler: CampaignScheduler, rule_id: str, *, days_ago: float) -> None:
    """Set a job's persisted next run time in the past: the service was down when it was due."""
    past = dt.datetime.now(SHANGHAI) - dt.timedelta(days=days_ago)
    scheduler.aps.modify_job(f"rule:{rule_id}", next_run_time=past)


def stored_jobs(engine) -> dict[str, float | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)).all())


def list_fires(conn, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Schedule fires newest first (of one rule, with rule_id)."""
    query = select(*ScheduleFire.__table__.c).order_by(ScheduleFire.id.desc())
    if rule_id is not None:
        query = query.where(ScheduleFire.rule_id == rule_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def count(engine, entity) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(entity))


# --------------------------------------------------------------------------- cron


def test_cron_trigger_numbers_weekdays_like_crontab():
    tuesday = dt.datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)
    assert cron_trigger("0 9 * * 1", SHANGHAI).get_next_fire_time(None, tuesday) == \
        dt.datetime(2026, 3, 16, 9, 0, tzinfo=SHANGHAI)  # Monday, not Tuesday as APScheduler 3 reads "1"
    for sunday in ("0", "7", "sun"):
        assert cron_trigger(f"0 9 * * {sunday}", SHANGHAI).get_next_fire_time(None, tuesday).date() == \
            dt.date(2026, 3, 15)
    weekdays = cron_trigger("30 8 * * 1-5", SHANGHAI)
    fire_times = [weekdays.get_next_fire_time(None, tuesday + dt.timedelta(days=d)).date() for d in range(5)]
    assert dt.date(2026, 3, 14) not in fire_times and dt.date(2026, 3, 15) not in fire_times


def test_cron_trigger_day_of_month_or_day_of_week_like_crontab():
    trigger = cron_trigger("0 9 1 * 1", SHANGHAI)  # the 1st, and every Monday
    after_monday = dt.datetime(2026, 3, 30, 12, 0, tzinfo=SHANGHAI)
    assert trigger.get_next_fire_time(None, after_monday) == dt.datetime(2026, 4, 1, 9, 0, tzinfo=SHANGHAI)


def test_cron_trigger_is_in_the_configured_time_zone():
    trigger = cron_trigger("0 9 * * *", SHANGHAI)
    utc_midnight = dt.datetime(2026, 3, 10, 0, 0, tzinfo=dt.timezone.utc)  # 08:00 in Shanghai
    assert trigger.get_next_fire_time(None, utc_midnight) == dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)


def test_cron_trigger_refuses_what_apscheduler_cannot_schedule():
    for expr in ("0 9 * * 1#2", "0 9 L * *", "0 9 * * 5-1"):
        with pytest.raises(ValueError):
            cron_trigger(expr, SHANGHAI)


# --------------------------------------------------------------------------- job store


def test_job_store_never_creates_its_table(tmp_path):
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        store = CampaignJobStore(empty)
        with pytest.raises(ConfigError, match="db upgrade"):
            store.start(BackgroundScheduler(timezone=SHANGHAI), "default")
        assert not inspect(empty).has_table("apscheduler_jobs")
        store.shutdown()
        with empty.connect():  # the engine is the caller's: shutdown left it usable
            pass
    finally:
        empty.dispose()


# --------------------------------------------------------------------------- jobs per rule


def test_sync_jobs_one_stable_job_per_enabled_scheduled_rule(world, processes, engine):
    world.rule("a.yaml", rule_yaml("daily", BIRTHDAY))
    world.rule("d.yaml", rule_yaml("off", BIRTHDAY, extra="enabled: false\n"))
    world.rule("e.yaml", rule_yaml("big", "  event.amount: {gte: 500000}\n", category="service",
                                   trigger="{event: large_transaction}", channels="[sms]"))
    scheduler = processes.start("a")
    assert set(stored_jobs(engine)) == {"rule:daily"}
    assert job_id(scheduler.runtime.services.rulebook.rules["daily"]) == "rule:daily"
    next_runs = scheduler.next_run_times()
    assert list(next_runs) == ["daily"]
    assert next_runs["daily"].utcoffset() == dt.timedelta(hours=8) and next_runs["daily"].hour == 9
    assert scheduler.state_name() == "running"

    again = scheduler.sync(scheduler.runtime.services.rulebook)
    assert (again.kept, again.added, again.replaced, again.removed) == (("rule:daily",), (), (), ())
    assert set(stored_jobs(engine)) == {"rule:daily"}


def test_sync_jobs_a_publish_replaces_a_changed_cron_and_a_disable_removes_the_job(world, processes, engine):
    world.rule("a.yaml", rule_yaml("daily", BIRTHDAY))
    world.rule("b.yaml", rule_yaml("morning", BIRTHDAY, trigger='{schedule: "0 8 * * *", subject: customer}'))
    world.rule("c.yaml", rule_yaml("later-off", BIRTHDAY))
    world.rule("d.yaml", rule_yaml("later-event", BIRTHDAY))
    runtime = processes.runtime()
    scheduler = processes.start("a", runtime)
    assert set(scheduler.next_run_times()) == {"daily", "morning", "later-off", "later-event"}
    morning_before = scheduler.aps.get_job("rule:morning").next_run_time

    world.rule("a.yaml", rule_yaml("daily", BIRTHDAY, trigger='{schedule: "30 10 * * *", subject: customer}'))
    world.rule("c.yaml", rule_yaml("later-off", BIRTHDAY, extra="enabled: false\n"))
    world.rule("d.yaml", rule_yaml("later-event", "  event.amount: {gte: 500000}\n", category="service",
                                   trigger="{event: large_transaction}", channels="[sms]"))
    assert runtime.refresh() is False  # edited files are not what runs: nothing moved yet
    assert set(stored_jobs(engine)) == {"rule:daily", "rule:morning", "rule:later-off", "rule:later-event"}
    world.publish()
    assert runtime.refresh() is True  # the scheduler listens: following the publish reschedules

    assert set(stored_jobs(engine)) == {"rule:daily", "rule:morning"}  # still one job per rule
    daily = scheduler.next_run_times()["daily"]
    assert (daily.hour, daily.minute) == (10, 30)
    assert scheduler.aps.get_job("rule:morning").next_run_time == morning_before  # unchanged: kept

    (world.settings.rules_dir / "a.yaml").unlink()  # a file gone from the folder: its rule stays live
    world.publish()
    assert runtime.refresh() is False and set(stored_jobs(engine)) == {"rule:daily", "rule:morning"}
    disable(world.services(publish=False), "daily", actor="cli:ops", reason="wrong audience", now=NOW)
    assert runtime.refresh() is True
    assert set(stored_jobs(engine)) == {"rule:morning"}


def test_sync_jobs_keeps_the_persisted_next_run_time_of_an_unchanged_job(world, processes, engine):
    birthday_world(world)
    scheduler = processes.start("a", paused=True)
    make_due(scheduler, "birthday", days_ago=2)
    due = stored_jobs(engine)["rule:birthday"]
    result = scheduler.sync(scheduler.runtime.services.rulebook)
    assert result.kept == ("rule:birthday",)
    assert stored_jobs(engine)["rule:birthday"] == due < time.time()


# --------------------------------------------------------------------------- misfires


def test_scheduler_runs_a_job_missed_while_down_once_on_start(world, processes, engine):
    birthday_world(world)
    before = processes.start("a", paused=True)  # paused: it must not fire the job we make due
    make_due(before, "birthday", days_ago=3)  # three 09:00 runs missed
    before.shutdown()
    assert stored_jobs(engine)["rule:birthday"] < time.time()  # shutting down did not move it on

    after = processes.build("a-restarted")
    events = Events(after)
    after.start()
    assert events.done.wait(WAIT)
    after.shutdown(wait=True)

    [submitted] = events.of(EVENT_JOB_SUBMITTED)
    assert len(submitted.scheduled_run_times) == 1  # coalesced
    assert len(events.of(EVENT_JOB_EXECUTED)) == 1 and not events.of(EVENT_JOB_MISSED)
    with engine.connect() as conn:
        [fired] = list_fires(conn)
    assert (fired["rule_id"], fired["run_date"], fired["owner"]) == ("birthday", TODAY, "a-restarted")
    with Session(engine) as session:
        [run] = session.scalars(select(CampaignRun))
    assert (run.id, run.kind, run.run_date, run.status) == (fired["run_id"], "scheduled", TODAY, "completed")
    [message] = world.messages()
    assert (message.customer_id, message.run_id, message.rule_id) == ("C1", run.id, "birthday")
    assert stored_jobs(engine)["rule:birthday"] > time.time()  # next run is in the future again


# --------------------------------------------------------------------------- once per date


def test_fire_same_rule_twice_on_one_date_runs_once(world, engine):
    birthday_world(world)
    services = world.services()
    first = fire(services, "birthday", owner="a", now=NOW)
    assert first is not None
    assert fire(services, "birthday", owner="b", now=NOW + dt.timedelta(hours=3)) is None
    assert count(engine, ScheduleFire) == 1 and count(engine, CampaignRun) == 1
    assert [m.customer_id for m in world.messages()] == ["C1"]

    next_day = fire(services, "birthday", owner="a", now=NOW + dt.timedelta(days=1))
    assert next_day not in (None, first)  # the claim is per date
    with engine.connect() as conn:
        assert [f["run_date"] for f in list_fires(conn, rule_id="birthday")] == \
            [TODAY + dt.timedelta(days=1), TODAY]


def test_fire_date_is_today_in_the_configured_time_zone(world, engine):
    birthday_world(world)
    services = world.services()
    late_utc = dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.timezone.utc)  # 00:30 on 03-10 in Shanghai
    fire(services, "birthday", owner="a", now=late_utc)
    with engine.connect() as conn:
        assert fires.get_fire(conn, "birthday", TODAY)["owner"] == "a"


def test_claim_fire_keeps_the_connection_usable_after_a_lost_claim(engine):
    with engine.begin() as conn:
        first = fires.claim_fire(conn, rule_id="r", run_date=TODAY, owner="a", now=NOW)
        assert fires.claim_fire(conn, rule_id="r", run_date=TODAY, owner="b", now=NOW) is None
        assert fires.get_fire(conn, "r", TODAY)["id"] == first  # same transaction, still usable


def test_scheduler_two_processes_fire_a_due_job_once(world, processes, engine):
    birthday_world(world)
    a, b = processes.build("a"), processes.build("b")
    some_job_done = threading.Event()
    events = {"a": Events(a, some_job_done), "b": Events(b, some_job_done)}
    a.start(paused=True)
    b.start(paused=True)  # same job id and definition: b keeps a's job
    assert set(stored_jobs(engine)) == {"rule:birthday"}
    make_due(a, "birthday", days_ago=1)

    a.aps.resume()  # both find the job due; each that reads it before the other moves it on fires it
    b.aps.resume()
    assert some_job_done.wait(WAIT)
    a.shutdown(wait=True)  # waits for a fire in progress
    b.shutdown(wait=True)

    assert not events["a"].of(EVENT_JOB_ERROR) and not events["b"].of(EVENT_JOB_ERROR)
    with engine.connect() as conn:
        [fired] = list_fires(conn)
    assert fired["owner"] in ("a", "b") and fired["run_date"] == TODAY
    assert count(engine, CampaignRun) == 1
    assert [m.customer_id for m in world.messages()] == ["C1"]


def test_scheduler_second_process_does_not_run_a_date_the_first_ran(world, processes, engine, caplog):
    birthday_world(world)
    a, b = processes.build("a"), processes.build("b")
    events = {"a": Events(a), "b": Events(b)}
    a.start(paused=True)
    b.start(paused=True)
    make_due(a, "birthday", days_ago=1)
    a.aps.resume()  # a fires now
    assert events["a"].done.wait(WAIT)

    caplog.set_level(logging.INFO, logger="campaign_engine.scheduler")
    make_due(b, "birthday", days_ago=1)  # b read the job as due before a moved it on
    b.aps.resume()
    assert events["b"].done.wait(WAIT)
    assert events["b"].of(EVENT_JOB_EXECUTED) and not events["b"].of(EVENT_JOB_ERROR)
    assert "scheduled rule birthday already fired for 2026-03-10 by a" in caplog.text
    with engine.connect() as conn:
        [fired] = list_fires(conn)
    with Session(engine) as session:
        [run] = session.scalars(select(CampaignRun))
    assert (fired["owner"], fired["run_id"]) == ("a", run.id)
    assert [(m.customer_id, m.run_id) for m in world.messages()] == [("C1", run.id)]


def test_fire_two_processes_at_once_run_once(world, engine):
    birthday_world(world)
    services = {"a": world.services(), "b": world.services()}
    ready = threading.Barrier(2)
    results: dict[str, int | None] = {}

    def process(owner: str) -> None:
        ready.wait()
        results[owner] = fire(services[owner], "birthday", owner=owner, now=NOW)

    threads = [threading.Thread(target=process, args=(owner,)) for owner in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["a", "b"]
    [run_id] = [r for r in results.values() if r is not None]
    assert count(engine, ScheduleFire) == 1 and count(engine, CampaignRun) == 1
    assert [(m.customer_id, m.run_id) for m in world.messages()] == [("C1", run_id)]


def test_fire_rule_in_a_process_that_has_not_seen_a_new_publish_follows_the_published_set_and_runs_it(
        world, processes, engine):
    birthday_world(world)
    a, b = processes.build("a"), processes.build("b")
    events = Events(b)
    a.start(paused=True)
    b.start(paused=True)
    world.rule("n.yaml", rule_yaml("newcomer", BIRTHDAY, category="service"))
    world.publish()
    assert a.runtime.refresh()  # a adds the new rule's job to the shared store; b has not refreshed
    assert "newcomer" not in b.runtime.services.rulebook.rules
    assert "rule:newcomer" in stored_jobs(engine)
    make_due(b, "newcomer", days_ago=1)
    b.aps.resume()
    assert events.done.wait(WAIT)

    assert "newcomer" in b.runtime.services.rulebook.rules
    with engine.connect() as conn:
        assert fires.get_fire(conn, "newcomer", TODAY)["owner"] == "b"
    assert [(m.rule_id, m.customer_id) for m in world.messages()] == [("newcomer", "C1")]


# --------------------------------------------------------------------------- rules that are gone


def test_fire_rule_on_an_unknown_a_stopped_or_a_disabled_rule_logs_and_does_nothing(world, processes, engine,
                                                                                     caplog):
    birthday_world(world)
    world.rule("o.yaml", rule_yaml("other", BIRTHDAY, category="service"))
    runtime = processes.runtime()
    processes.start("a", runtime)
    assert set(stored_jobs(engine)) == {"rule:birthday", "rule:other"}
    caplog.set_level(logging.INFO, logger="campaign_engine.scheduler")

    fire_rule("no-such-rule")  # the job function itself, as APScheduler calls it
    assert "scheduled rule no-such-rule not run: removed" in caplog.text

    # the emergency stop, from another process: this one has not seen it when its job fires
    disable(world.services(publish=False), "birthday", actor="cli:ops", reason="wrong audience", now=NOW)
    assert runtime.services.rulebook.rules["birthday"].enabled
    fire_rule("birthday")
    assert "scheduled rule birthday not run: disabled" in caplog.text
    assert not runtime.services.rulebook.rules["birthday"].enabled  # the fire followed the published set

    world.rule("o.yaml", rule_yaml("other", BIRTHDAY, category="service", extra="enabled: false\n"))
    world.publish()  # a new version that says enabled: false
    assert runtime.services.rulebook.rules["other"].enabled
    fire_rule("other")
    assert "scheduled rule other not run: disabled" in caplog.text
    assert runtime.services.rulebook.rules["other"].version == 2

    assert count(engine, ScheduleFire) == 0 and count(engine, CampaignRun) == 0
    assert world.messages() == []
    assert stored_jobs(engine) == {}  # following the published set also removed their jobs


def test_fire_rule_logs_failures_instead_of_raising(world, processes, engine, caplog, monkeypatch):
    birthday_world(world)
    processes.start("a")

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(fires, "claim_fire", broken)
    fire_rule("birthday")
    assert "scheduled rule birthday failed" in caplog.text and "database on fire" in caplog.text


# --------------------------------------------------------------------------- entry points


def test_start_scheduler_refuses_a_second_scheduler_with_the_same_owner(world, processes):
    birthday_world(world)
    processes.start("a")
    with pytest.raises(RuntimeError, match="already running"):
        start_scheduler(processes.runtime(), owner="a", clock=clock)


def test_run_scheduler_forever_ignores_sighup_follows_a_publish_within_seconds_and_stops_on_sigterm(
        world, engine, caplog):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    birthday_world(world)
    runtime = Runtime(world.services())
    generation = runtime.services.rulebook.generation
    original = signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []
    caplog.set_level(logging.INFO, logger="campaign_engine.scheduler")

    def wait_for(condition: Any) -> bool:
        deadline = time.monotonic() + WAIT
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(condition())

    def operator() -> None:  # what `kill -HUP` and `kill` would do
        seen.append(wait_for(lambda: signal.getsignal(signal.SIGTERM) is not original
                             and stored_jobs(engine)))
        if not seen[0]:  # no handlers: a signal would end the test process, stop it another way
            stop.set()
            return
        first = stored_jobs(engine)["rule:birthday"]
        world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY, trigger='{schedule: "0 7 * * *", subject: customer}'))
        os.kill(os.getpid(), signal.SIGHUP)  # no reload: the edited file is not published
        seen.append(wait_for(lambda: "SIGHUP ignored" in caplog.text))
        time.sleep(QUIET)  # a few of the loop's refreshes: nothing published, nothing moves
        seen.append((stored_jobs(engine).get("rule:birthday") == first,
                     runtime.services.rulebook.generation == generation))
        world.publish()
        published = time.monotonic()
        seen.append(wait_for(lambda: stored_jobs(engine).get("rule:birthday") not in (None, first)))
        seen.append(time.monotonic() - published)
        os.kill(os.getpid(), signal.SIGTERM)

    stop = threading.Event()
    thread = threading.Thread(target=operator)
    thread.start()
    run_scheduler_forever(runtime, owner="solo", clock=clock, stop=stop)
    thread.join()
    assert seen[:4] == [True, True, (True, True), True]  # started; SIGHUP changed nothing; the publish did
    assert seen[4] < 3.0  # the loop follows the generation every second
    assert runtime.services.rulebook.generation > generation
    assert signal.getsignal(signal.SIGTERM) is original  # handlers restored
    next_run = dt.datetime.fromtimestamp(stored_jobs(engine)["rule:birthday"], SHANGHAI)
    assert (next_run.hour, next_run.minute) == (7, 0)  # the job stays for the next start
