"""The scheduler: every enabled scheduled rule runs on its cron, once per date, by one process.

APScheduler (3.x, BackgroundScheduler) keeps one job per enabled scheduled rule
in the `apscheduler_jobs` table of our own database, so a job's next run time
survives restarts and several service processes share one job list.

- Job ids come from the job definition (`rule:<rule id>`), so rescheduling a
  rule replaces its job and never adds a second one.
- Misfires: jobs coalesce and have no misfire grace limit
  (misfire_grace_time=None). A process that starts after being down finds the
  job's persisted next run time in the past and runs it once (all the missed
  times collapse into one run), however long it was down. A finite grace time
  would instead drop runs missed by more than that, i.e. exactly the runs
  missed while the service was down.
- One process per date: the job function first claims (rule, date) in
  `schedule_fires` (unique key). Whoever loses the claim - another process
  firing the same due job, a misfire replay for a date that already ran, a
  cron that fires twice a day - logs and does nothing. The date is today in
  the configured time zone at the moment the job fires.
- A change of the published rule set reschedules (`Runtime.on_change`: the
  scheduler checks the generation every second); a job whose rule and cron are
  unchanged is kept as stored, with its persisted next run time, so a run that
  is due is not pushed into the future by a restart or a publish. The jobs are
  shared, so a process may be asked to fire a rule it has not seen published yet
  (another process saw it first): it follows the published set before deciding.

A rule's trigger (its crontab within its campaign window) comes from triggers.py,
which the console's "next runs" read too.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger

from .clock import utc_now
from .pipeline import ScheduledRunRequest, Services, start_run
from .pipeline.calendar_checks import unannounced_year, workday_skip
from .rulebook.loader import Rulebook
from .triggers import rule_trigger
from .rulebook.model import Rule
from .runtime import Runtime
from .store import fires
from .store.scheduler_jobs import JOB_PREFIX, CampaignJobStore

log = logging.getLogger(__name__)

FIRE_RULE_REF = f"{__name__}:fire_rule"
# None: a run missed while the service was down still runs (once, coalesced) on start.
MISFIRE_GRACE_TIME: int | None = None
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1,
                                "misfire_grace_time": MISFIRE_GRACE_TIME}
DEFAULT_MAX_WORKERS = 4

Clock = Callable[[], dt.datetime]


def default_owner() -> str:
    """Who fires: host and process id, recorded on each schedule fire."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_id(rule: Rule) -> str:
    """The job of a rule: one per rule id, so rescheduling replaces it."""
    return f"{JOB_PREFIX}{rule.id}"


def not_live(rulebook: Rulebook, rule_id: str) -> str | None:
    """Why a rule is not an enabled scheduled rule of this rulebook, or None when it is."""
    rule = rulebook.get(rule_id)
    if rule is None:
        return "removed"
    if not rule.enabled:
        return "disabled"
    if rule.trigger.schedule is None:
        return "now an event rule"
    return None


def fire(services: Services, rule_id: str, *, owner: str, now: dt.datetime) -> int | None:
    """Run one scheduled rule for today (in the configured time zone) unless that date is claimed.

    Returns the run id, or None when the rule is no longer live or the date was
    already claimed (by another process, or an earlier fire of this one).
    """
    why = not_live(services.rulebook, rule_id)
    if why is not None:
        log.info("scheduled rule %s not run: %s", rule_id, why)
        return None
    today = now.astimezone(services.settings.tz).date()
    with services.db.begin() as conn:
        fire_id = fires.claim_fire(conn, rule_id=rule_id, run_date=today, owner=owner, now=now)
    if fire_id is None:
        with services.db.connect() as conn:
            first = fires.get_fire(conn, rule_id, today)
        log.info("scheduled rule %s already fired for %s by %s (run %s): not run again", rule_id, today,
                 first and first["owner"], first and first["run_id"])
        return None
    recorded: list[int] = []

    def fired(run_id: int) -> None:  # before the run executes: the fire names its run even if it dies
        recorded.append(run_id)
        with services.db.begin() as conn:
            fires.record_fire_run(conn, fire_id, run_id)

    try:
        report = start_run(services, ScheduledRunRequest(today, (rule_id,)), now=now, wait=False,
                           on_recorded=fired)
    except Exception:
        if not recorded:
            log.error("scheduled rule %s for %s: fire %s claimed but its run could not start; "
                      "run it by hand", rule_id, today, fire_id)
        raise
    log.info("scheduled rule %s for %s: run %s %s", rule_id, today, report.run_id, report.status.value)
    rule = services.rulebook.rules[rule_id]
    if rule.trigger.workdays_only and unannounced_year(today, services.holidays) is None:
        skipped = workday_skip(rule, today, services.holidays)
        if skipped:  # the cron fires every day it names; the run records the rule as skipped
            log.info("scheduled rule %s for %s: skipped, %s", rule_id, today, skipped)
    return report.run_id


# APScheduler pickles jobs into the shared job store, so a job can carry only a
# reference to a module-level function and picklable arguments (the rule id),
# never the Runtime. fire_rule finds its process's scheduler here: registered by
# CampaignScheduler.start under its owner, and each worker thread of a
# scheduler's executor is bound to that owner when the thread starts (so two
# schedulers in one process, as in tests, each fire with their own Runtime).
_registry: dict[str, "CampaignScheduler"] = {}
_registry_lock = threading.Lock()
_thread = threading.local()


def _bind_thread(owner: str) -> None:
    _thread.owner = owner


def _current() -> "CampaignScheduler | None":
    owner = getattr(_thread, "owner", None)
    with _registry_lock:
        if owner is not None:
            return _registry.get(owner)
        if len(_registry) == 1:  # called outside an executor thread, e.g. by hand
            return next(iter(_registry.values()))
        return None


def fire_rule(rule_id: str) -> None:
    """The job APScheduler calls: fire one rule now; every failure is logged here, not raised."""
    try:
        scheduler = _current()
        if scheduler is None:
            log.error("scheduled rule %s not run: no scheduler registered for this thread", rule_id)
            return
        runtime = scheduler.runtime
        # The jobs are shared: another process may have seen a publish (or a disable) this one has
        # not yet. Follow the published set before deciding (this also reschedules).
        runtime.refresh()
        fire(runtime.services, rule_id, owner=scheduler.owner, now=scheduler.clock())
    except Exception:
        log.exception("scheduled rule %s failed", rule_id)


# --------------------------------------------------------------------------- scheduler

@dataclass(frozen=True)
class SyncResult:
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unschedulable: tuple[str, ...] = ()  # rules whose cron APScheduler cannot run


def _definition(func_ref: str, args: Sequence[Any], trigger: BaseTrigger, coalesce: bool,
                max_instances: int, misfire_grace_time: int | None) -> tuple[Any, ...]:
    return (func_ref, tuple(args), repr(trigger), coalesce, max_instances, misfire_grace_time)


def _job_definition(job: Job) -> tuple[Any, ...]:
    return _definition(job.func_ref, job.args, job.trigger, job.coalesce, job.max_instances,
                       job.misfire_grace_time)


class CampaignScheduler:
    """A BackgroundScheduler over the shared job store, bound to one Runtime and owner."""

    def __init__(self, runtime: Runtime, *, owner: str, clock: Clock | None = None,
                 max_workers: int = DEFAULT_MAX_WORKERS):
        self.runtime = runtime
        self.owner = owner
        self.clock: Clock = clock or utc_now
        services: Services = runtime.services
        self.tz = services.settings.tz
        executor = ThreadPoolExecutor(max_workers, pool_kwargs={"initializer": _bind_thread,
                                                                "initargs": (owner,)})
        self.aps = BackgroundScheduler(jobstores={"default": CampaignJobStore(services.db)},
                                       executors={"default": executor}, job_defaults=JOB_DEFAULTS,
                                       timezone=self.tz)
        self._sync_lock = threading.Lock()
        self._listening = False

    # lifecycle

    def start(self, *, paused: bool = False) -> None:
        """Start, bring the jobs in line with the live rules, then begin firing due jobs.

        With paused, nothing fires until `self.aps.resume()`.
        """
        with _registry_lock:
            if self.owner in _registry:
                raise RuntimeError(f"a scheduler with owner {self.owner!r} is already running here")
            _registry[self.owner] = self
        try:
            self.aps.start(paused=True)  # no job fires before the jobs match the rules
            self.sync(self.runtime.services.rulebook)
            if not self._listening:
                self.runtime.on_change(self._on_change)
                self._listening = True
            if not paused:
                self.aps.resume()
        except BaseException:
            if self.aps.state != STATE_STOPPED:
                self.aps.shutdown(wait=False)
            self._unregister()
            raise
        log.info("scheduler %s started: %s scheduled rule job(s)", self.owner, len(self.next_run_times()))

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing; with wait, let running jobs finish first."""
        if self.aps.state != STATE_STOPPED:
            self.aps.shutdown(wait=wait)
            log.info("scheduler %s stopped", self.owner)
        self._unregister()

    def _unregister(self) -> None:
        with _registry_lock:
            if _registry.get(self.owner) is self:
                del _registry[self.owner]

    def state_name(self) -> str:
        return {STATE_RUNNING: "running", STATE_PAUSED: "paused", STATE_STOPPED: "stopped"}[self.aps.state]

    # jobs

    def sync(self, rulebook: Rulebook) -> SyncResult:
        """One job per enabled scheduled rule: add new ones, replace changed ones, remove the rest.

        An unchanged job is left as stored, keeping its persisted next run time.
        """
        wanted: dict[str, tuple[Rule, BaseTrigger]] = {}
        unschedulable = []
        for rule in rulebook.enabled():
            if rule.trigger.schedule is None:
                continue
            try:
                wanted[job_id(rule)] = (rule, rule_trigger(rule, self.tz))
            except ValueError as exc:
                unschedulable.append(rule.id)
                log.error("rule %s: schedule %r cannot be scheduled: %s", rule.id, rule.trigger.schedule, exc)
        added, replaced, kept, removed = [], [], [], []
        with self._sync_lock:
            existing = {job.id: job for job in self.aps.get_jobs() if job.id.startswith(JOB_PREFIX)}
            for jid in sorted(set(existing) - set(wanted)):
                try:
                    self.aps.remove_job(jid)
                except JobLookupError:  # another process removed it first
                    pass
                removed.append(jid)
            for jid, (rule, trigger) in sorted(wanted.items()):
                job = existing.get(jid)
                if job is not None and _job_definition(job) == _definition(
                        FIRE_RULE_REF, (rule.id,), trigger, JOB_DEFAULTS["coalesce"],
                        JOB_DEFAULTS["max_instances"], JOB_DEFAULTS["misfire_grace_time"]):
                    kept.append(jid)
                    continue
                definition = dict(func=FIRE_RULE_REF, trigger=trigger, args=(rule.id,),
                                  name=f"{rule.id} [{rule.trigger.schedule}]", **JOB_DEFAULTS)
                if job is not None:
                    try:  # an UPDATE in place: add_job(replace_existing) would try an INSERT first
                        self.aps.modify_job(jid, kwargs={}, next_run_time=trigger.get_next_fire_time(
                            None, dt.datetime.now(self.tz)), **definition)
                        replaced.append(jid)
                        continue
                    except JobLookupError:  # another process removed it meanwhile
                        pass
                self.aps.add_job(id=jid, replace_existing=True, **definition)
                added.append(jid)
        result = SyncResult(tuple(added), tuple(replaced), tuple(kept), tuple(removed), tuple(unschedulable))
        log.info("scheduler %s jobs: %s added, %s replaced, %s kept, %s removed, %s unschedulable",
                 self.owner, len(added), len(replaced), len(kept), len(removed), len(unschedulable))
        return result

    def _on_change(self, services: Services) -> None:
        if self.aps.state == STATE_STOPPED:
            return
        try:
            self.sync(services.rulebook)
        except Exception:
            log.exception("scheduler %s: rescheduling after a publish failed", self.owner)

    def next_run_times(self) -> dict[str, dt.datetime | None]:
        """Rule id -> its job's next run time (None: paused), for the API's rule list."""
        return {job.id[len(JOB_PREFIX):]: job.next_run_time
                for job in self.aps.get_jobs() if job.id.startswith(JOB_PREFIX)}


def build_scheduler(runtime: Runtime, *, owner: str, clock: Clock | None = None,
                    max_workers: int = DEFAULT_MAX_WORKERS) -> CampaignScheduler:
    """A scheduler for this process, not started."""
    return CampaignScheduler(runtime, owner=owner, clock=clock, max_workers=max_workers)


def start_scheduler(runtime: Runtime, *, owner: str, clock: Clock | None = None) -> CampaignScheduler:
    """Build and start the scheduler (background threads); changes of `runtime`'s rules reschedule."""
    scheduler = build_scheduler(runtime, owner=owner, clock=clock)
    scheduler.start()
    return scheduler


DELIVERY_SWEEP = 15.0  # seconds between delivery kicks when workers deliver (scheduled messages, retries)


def _sweep_delivery(services: Services) -> None:
    """Hand due messages (scheduled ones whose window opened, retries) to the executor's delivery
    workers, where it has them (Celery with Redis); an in-process service delivers with `send`."""
    try:
        services.executor.sweep_delivery(services)
    except Exception:  # the broker or Redis is down: the next sweep tries again
        log.exception("delivery sweep failed")


TASK_SWEEP = 60.0  # seconds between task sweeps: overdue flags, expiry, the managers' daily digest


def _sweep_tasks(services: Services, clock: Clock | None) -> None:
    """Relationship-manager tasks (pipeline.tasks.sweep): logged when it fails, never stops the loop."""
    from .pipeline.tasks import sweep

    try:
        sweep(services, (clock or utc_now)())
    except Exception:  # the database is down: the next sweep tries again
        log.exception("task sweep failed")


def run_scheduler_forever(runtime: Runtime, *, owner: str, clock: Clock | None = None,
                          stop: threading.Event | None = None) -> None:
    """`campaign-engine scheduler`: run until SIGTERM or SIGINT (or `stop` is set), then stop cleanly.

    Every second it follows the published rule set (a publish, disable or enable reschedules).
    There is nothing to reload: SIGHUP only says so. Signal handlers are installed only when
    called from the main thread.
    """
    stop = stop or threading.Event()
    wake = threading.Event()

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("scheduler %s: %s received, stopping", owner, signal.Signals(signum).name)
        stop.set()
        wake.set()

    def on_hangup(_signum: int, _frame: Any) -> None:
        log.warning("scheduler %s: SIGHUP ignored: rules are published (`campaign-engine rules publish`), "
                    "and this scheduler follows the published set within a second", owner)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_stop)
        if hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    scheduler = start_scheduler(runtime, owner=owner, clock=clock)
    last_sweep = last_task_sweep = 0.0
    try:
        while not stop.is_set():
            wake.wait(1.0)
            wake.clear()
            if time.monotonic() - last_sweep >= DELIVERY_SWEEP:
                last_sweep = time.monotonic()
                _sweep_delivery(runtime.services)
            if time.monotonic() - last_task_sweep >= TASK_SWEEP:
                last_task_sweep = time.monotonic()
                _sweep_tasks(runtime.services, clock)
            runtime.refresh()
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
