"""Schedule fire claims: which process ran a scheduled rule for which date.

A scheduled rule runs at most once per date, whichever process (or misfire
replay) fires it: the unique key (rule_id, run_date) decides, not a lock held
in memory.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import ScheduleFire


def claim_fire(conn: Connection, *, rule_id: str, run_date: dt.date, owner: str,
               now: dt.datetime) -> int | None:
    """Claim (rule_id, run_date) for `owner`: the new fire's id, or None when already claimed.

    Relies on the unique constraint uq_schedule_fires_rule_date (rule_id, run_date):
    INSERT ... ON CONFLICT DO NOTHING RETURNING id, so a lost race is an empty
    result, never an error, and the caller's connection stays usable. On
    PostgreSQL a concurrent claim of the same key waits for the first one to
    commit and then returns nothing; SQLite serialises writers. Writes one
    schedule_fires row. Commit before running, so other processes see the claim.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(ScheduleFire)
            .values(rule_id=rule_id, run_date=run_date, owner=owner, fired_at=now)
            .on_conflict_do_nothing(index_elements=["rule_id", "run_date"])
            .returning(ScheduleFire.id))
    fire_id = conn.execute(stmt).scalar()
    return None if fire_id is None else int(fire_id)


def record_fire_run(conn: Connection, fire_id: int, run_id: int) -> None:
    """Link a fire to the campaign run it started (primary key lookup); writes schedule_fires.run_id."""
    conn.execute(update(ScheduleFire).where(ScheduleFire.id == fire_id).values(run_id=run_id))


def get_fire(conn: Connection, rule_id: str, run_date: dt.date) -> dict[str, Any] | None:
    """The fire of one rule on one date (unique constraint uq_schedule_fires_rule_date); reads only."""
    row = conn.execute(select(*ScheduleFire.__table__.c).where(
        ScheduleFire.rule_id == rule_id, ScheduleFire.run_date == run_date)).mappings().first()
    return None if row is None else dict(row)


def last_fire(conn: Connection) -> dt.datetime | None:
    """When any process last fired a scheduled rule (a max over schedule_fires.fired_at); reads only."""
    return conn.execute(select(func.max(ScheduleFire.fired_at))).scalar_one()
