"""The scheduler's APScheduler job store on our own migrated table, and a read-only view of it
for processes that do not run the scheduler."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Connection, Engine, inspect, select

from ..errors import ConfigError, Problem
from .models import apscheduler_jobs

JOB_PREFIX = "rule:"  # a scheduled rule's job id is `rule:<rule id>` (scheduler.job_id)


def next_run_times(conn: Connection) -> dict[str, dt.datetime | None]:
    """rule id -> next fire time, from APScheduler's persisted jobs (ids `rule:<rule id>`)."""
    rows = conn.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
                        .where(apscheduler_jobs.c.id.like(JOB_PREFIX + "%")))
    return {job_id[len(JOB_PREFIX):]: (dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts is not None else None)
            for job_id, ts in rows}


class CampaignJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the migrated `apscheduler_jobs` table.

    It uses the table object of store.models (same columns APScheduler declares)
    and never creates it: SQLAlchemyJobStore.start would `CREATE TABLE` when the
    table is missing (checkfirst), bypassing the migrations, so start only checks
    that the table exists. The engine belongs to the Services, so shutdown does
    not dispose it.

    A closed store has no due jobs and persists no job updates: APScheduler 3's
    loop runs one more round after shutdown(), in which a due job cannot be
    submitted (the executors are down) but would still be moved on to its next
    run time, losing the run. Left as stored, it stays due and runs (once) on
    the next start.
    """

    def __init__(self, engine: Engine):
        super().__init__(engine=engine)
        self.jobs_t = apscheduler_jobs
        self._closed = True

    def start(self, scheduler: Any, alias: str) -> None:
        BaseJobStore.start(self, scheduler, alias)  # not SQLAlchemyJobStore.start: no CREATE TABLE
        if not inspect(self.engine).has_table(self.jobs_t.name):
            raise ConfigError([Problem(f"the database has no {self.jobs_t.name} table: "
                                       "run `campaign-engine db upgrade`", field="database_url")],
                              what="database")
        self._closed = False

    def get_due_jobs(self, now: dt.datetime) -> list[Job]:
        return [] if self._closed else super().get_due_jobs(now)

    def update_job(self, job: Job) -> None:
        if not self._closed:
            super().update_job(job)

    def shutdown(self) -> None:
        """Close; the engine is the Services', they dispose it."""
        self._closed = True
