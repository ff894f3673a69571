"""The effect report's one aggregate query: a rule's contacts in a period, per arm, joined to their
customers' conversions within the goal's window (issue #11).

Everything is counted in the database: the report reads a handful of rows however many contacts
and conversions there are (1M contacts and 200k conversions in about a second on PostgreSQL:
bench/effect_report.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, literal_column, or_, select, union_all

from ..effect.report import ArmCounts, EffectCounts
from ..rulebook.model import Goal
from ..vocabulary import MessageStatus
from .models import Conversion, Message, Product, Task, UtcDateTime, table_of

_MESSAGES = table_of(Message)
_CONVERSIONS = table_of(Conversion)
_PRODUCTS = table_of(Product)
REACHED = (MessageStatus.SENT.value, MessageStatus.DELIVERED.value)  # the treated contacts the success rate counts as contacted


def _plus_days_at_least(conn: Connection, later: Any, start: Any, days: int) -> Any:
    """`later <= start + days` for timestamps: interval arithmetic on PostgreSQL; on SQLite, which
    stores them as text, Julian day numbers (exact to about a millisecond)."""
    if conn.dialect.name == "postgresql":
        return later <= start + literal_column(f"INTERVAL '{int(days)} days'")
    return func.julianday(later) <= func.julianday(start) + int(days)


def _still_open(conn: Connection, start: Any, days: int, now: dt.datetime) -> Any:
    """`start + days > now`: the contact's conversion window has not closed yet."""
    moment = literal(now, UtcDateTime())
    if conn.dialect.name == "postgresql":
        return start + literal_column(f"INTERVAL '{int(days)} days'") > moment
    return func.julianday(start) + int(days) > func.julianday(moment)


# A task outcome that means the manager spoke with the customer: the success rate's "contacted".
TASK_REACHED = ("reached", "interested", "declined", "refused", "converted")


def _task_contacts(rule_id: str, since: dt.datetime | None, until: dt.datetime | None,
                   run_id: int | None) -> Any:
    """A task rule's treated contacts: every task it planned (assigned to treatment, whatever became of
    it), reached when closed with an outcome that means the manager spoke with the customer; its
    window opens when the task was planned, as a held-out match's does (batch: a held-out task match
    is due when it is decided), so a conversion the call itself records counts. Task ids are negated
    so they never collide with message ids in the contacts."""
    t = table_of(Task)
    where = [t.c.rule_id == rule_id]
    if since is not None:
        where.append(t.c.created_at >= since)
    if until is not None:
        where.append(t.c.created_at < until)
    if run_id is not None:
        where.append(t.c.run_id == run_id)
    return select((-t.c.id).label("id"), t.c.customer_id, t.c.created_at, literal(False).label("held"),
                  t.c.outcome.in_(TASK_REACHED).label("reached"),
                  t.c.created_at.label("t")).where(*where)


def effect_counts(conn: Connection, *, rule_id: str, goal: Goal, holdout_group: str,
                  since: dt.datetime | None, until: dt.datetime | None, run_id: int | None,
                  now: dt.datetime, with_tasks: bool = False) -> EffectCounts:
    """A rule's contacts written in [since, until) (or by one run), counted per arm, each converted
    at most once: by its customer's first conversion matching the goal within the window.

    Contacts: the rule's messages through ix_messages_rule_created (rule_id, created_at; on
    PostgreSQL it carries the columns read here, so the scan need not visit the outbox's wide
    rows), or ix_messages_run_id for one run. Treated is every message that is not held out,
    holdout the held_out rows of `holdout_group` only (held-out rows of another group are neither
    arm). A contact's window opens when its message was sent (sent_at), or was due (due_at: not sent
    yet, never sent, or held out: when it would have been sent), and lasts goal.within_days.
    Conversions: a hash join of the goal's type on customer_id, or ix_conversions_customer_occurred
    (customer_id, occurred_at) when the contacts are few; the first conversion in a contact's window
    (by time, then id) is the one counted, with its amount.

    Two aggregates over the same contacts (on PostgreSQL the CTE is inlined, never written to a
    temporary file): the arms' sizes and open windows, then the converted contacts per arm; no row
    per contact leaves the database, nor is joined back to every contact. Reads only.
    """
    m, v = _MESSAGES, _CONVERSIONS
    where = [m.c.rule_id == rule_id, or_(m.c.status != MessageStatus.HELD_OUT.value, m.c.held_out_by == holdout_group)]
    if since is not None:
        where.append(m.c.created_at >= since)
    if until is not None:
        where.append(m.c.created_at < until)
    if run_id is not None:
        where.append(m.c.run_id == run_id)
    anchor = func.coalesce(m.c.sent_at, m.c.due_at, m.c.created_at)
    messages = select(m.c.id, m.c.customer_id, m.c.created_at, (m.c.status == MessageStatus.HELD_OUT.value).label("held"),
                      m.c.status.in_(REACHED).label("reached"), anchor.label("t")).where(*where)
    # a rule that plans manager tasks: its calls and visits are treated contacts too (its held-out
    # customers, and its SMS fallbacks, are message rows)
    contacts = (union_all(messages, _task_contacts(rule_id, since, until, run_id)) if with_tasks
                else messages).cte("contacts")
    if conn.dialect.name == "postgresql":  # scanned twice through the index, never written to a temp file
        contacts = contacts.prefix_with("NOT MATERIALIZED")
    days = goal.within_days
    totals = (select(contacts.c.held, contacts.c.reached, func.count().label("n"),
                     func.sum(case((_still_open(conn, contacts.c.t, days, now), 1), else_=0)).label("open"),
                     func.max(contacts.c.t).label("last"), func.min(contacts.c.created_at).label("first"))
              .group_by(contacts.c.held, contacts.c.reached))
    matches = [v.c.customer_id == contacts.c.customer_id, v.c.type == goal.type.value,
               v.c.occurred_at > contacts.c.t, _plus_days_at_least(conn, v.c.occurred_at, contacts.c.t, days)]
    if goal.product_code:
        matches.append(v.c.product_code == goal.product_code)
    if goal.min_amount is not None:
        matches.append(v.c.amount >= goal.min_amount)
    joined = contacts.join(v, and_(*matches))
    if goal.product_type:
        joined = joined.join(_PRODUCTS, and_(_PRODUCTS.c.product_code == v.c.product_code,
                                             _PRODUCTS.c.type == goal.product_type))
    ranked = (select(contacts.c.held, contacts.c.reached, v.c.amount,
                     func.row_number().over(partition_by=contacts.c.id,
                                            order_by=(v.c.occurred_at, v.c.conversion_id)).label("rank"))
              .select_from(joined).subquery("ranked"))
    converted = (select(ranked.c.held, ranked.c.reached, func.count().label("converted"),
                        func.sum(ranked.c.amount).label("amount"))
                 .where(ranked.c.rank == 1).group_by(ranked.c.held, ranked.c.reached))
    arms: dict[bool, list[int | Decimal]] = {True: [0, 0, Decimal(0)], False: [0, 0, Decimal(0)]}
    contacted = contacted_conversions = open_windows = 0
    last: dt.datetime | None = None
    first: dt.datetime | None = None
    for row in conn.execute(totals):
        arms[bool(row.held)][0] += row.n
        if not row.held and row.reached:
            contacted += row.n
        open_windows += int(row.open or 0)
        last = row.last if last is None or (row.last is not None and row.last > last) else last
        first = row.first if first is None or (row.first is not None and row.first < first) else first
    for row in conn.execute(converted):
        arms[bool(row.held)][1] += row.converted
        arms[bool(row.held)][2] += Decimal(row.amount or 0)
        if not row.held and row.reached:
            contacted_conversions += row.converted

    def counted(arm: list[int | Decimal]) -> ArmCounts:
        return ArmCounts(n=int(arm[0]), conversions=int(arm[1]), amount=Decimal(arm[2]))

    return EffectCounts(treated=counted(arms[False]), holdout=counted(arms[True]), contacted=contacted,
                        contacted_conversions=contacted_conversions, open_windows=open_windows,
                        last_anchor=last, first_contact=first)
