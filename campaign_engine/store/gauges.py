"""The database's state as the operators' metrics read it at scrape time (campaign_engine.metrics):
indexed, bounded aggregates only (the unsent statuses use ix_messages_status_due)."""

from __future__ import annotations

import datetime as dt
from typing import Iterator

from sqlalchemy import Connection, func, select

from .models import CampaignRun, Message, ScheduleFire

UNSENT = ("queued", "scheduled", "sending")


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def outbox_depth(conn: Connection) -> Iterator[tuple[str, str, int]]:
    """(status, channel, messages) for the statuses not yet sent."""
    for status, channel, n in conn.execute(select(Message.status, Message.channel, func.count())
                                           .where(Message.status.in_(UNSENT)).group_by(Message.status, Message.channel)):
        yield status, channel, int(n)


def oldest_due(conn: Connection, now: dt.datetime) -> Iterator[tuple[str, dt.datetime]]:
    """(channel, due_at) of the oldest queued message that is due."""
    for channel, due in conn.execute(select(Message.channel, func.min(Message.due_at))
                                     .where(Message.status == "queued", Message.due_at <= now)
                                     .group_by(Message.channel)):
        if due is not None:
            yield channel, _aware(due)


def runs_by_kind_and_status(conn: Connection) -> Iterator[tuple[str, str, int]]:
    for kind, status, n in conn.execute(select(CampaignRun.kind, CampaignRun.status, func.count())
                                        .group_by(CampaignRun.kind, CampaignRun.status)):
        yield kind, status, int(n)


def last_fires(conn: Connection) -> Iterator[tuple[str, dt.datetime]]:
    """(rule, when the scheduler last fired it)."""
    for rule, at in conn.execute(select(ScheduleFire.rule_id, func.max(ScheduleFire.fired_at))
                                 .group_by(ScheduleFire.rule_id)):
        if at is not None:
            yield rule, _aware(at)


def due_now(conn: Connection, now: dt.datetime) -> int:
    """Queued messages due by `now` (what one `send --once` has before it)."""
    return int(conn.execute(select(func.count()).select_from(Message)
                            .where(Message.status == "queued", Message.due_at <= now)).scalar_one())
