"""Read-only view of the scheduler's job store, for processes that do not run the scheduler."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select

from .models import ScheduleFire, apscheduler_jobs

JOB_PREFIX = "rule:"


def next_run_times(conn: Connection) -> dict[str, dt.datetime | None]:
    """rule id -> next fire time, from APScheduler's persisted jobs (ids `rule:<rule id>`)."""
    rows = conn.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
                        .where(apscheduler_jobs.c.id.like(JOB_PREFIX + "%")))
    return {job_id[len(JOB_PREFIX):]: (dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts is not None else None)
            for job_id, ts in rows}


def last_fire(conn: Connection) -> dt.datetime | None:
    """When any process last fired a scheduled rule."""
    return conn.execute(select(func.max(ScheduleFire.fired_at))).scalar_one()
