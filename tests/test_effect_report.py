"""The effect report (issue #11): the pure report from counts, and the store's aggregate query
(attribution windows, goals, arms, periods) on the real database."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest

from campaign_engine.effect.report import ArmCounts, EffectCounts, build_report
from campaign_engine.rulebook.model import Goal
from campaign_engine.store import runs
from campaign_engine.store.conversions import insert_conversions
from campaign_engine.store.outbox import insert_messages
from campaign_engine.store.sql_store import SqlStore
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.vocabulary import ConversionType
from factories import NOW, PRODUCTS, customer

Z = 1.959963984540054
T0 = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


def wilson_by_hand(x: int, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


# --------------------------------------------------------------------------- the pure report


def test_report_numbers_from_counts_match_the_formulas():
    counts = EffectCounts(treated=ArmCounts(900, 90, Decimal("180000")), holdout=ArmCounts(100, 5, Decimal("5000")),
                          contacted=800, contacted_conversions=88)
    report = build_report("r", counts, window_days=14, date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 31),
                          last_window_closes=dt.date(2026, 4, 14))
    out = report.as_dict()
    assert list(out) == ["rule", "from", "to", "window_days", "readable", "reason", "treated", "holdout", "lift",
                         "incremental", "success_rate"]
    assert (out["rule"], out["from"], out["to"], out["window_days"]) == ("r", "2026-03-01", "2026-03-31", 14)
    assert out["treated"]["rate"] == pytest.approx(0.10) and out["holdout"]["rate"] == pytest.approx(0.05)
    assert out["treated"]["ci"] == pytest.approx(list(wilson_by_hand(90, 900)), abs=1e-12)
    assert out["holdout"]["ci"] == pytest.approx(list(wilson_by_hand(5, 100)), abs=1e-12)
    (l1, u1), (l2, u2) = wilson_by_hand(90, 900), wilson_by_hand(5, 100)
    d = 0.05
    assert out["lift"]["absolute"] == pytest.approx(d)
    assert out["lift"]["ci"] == pytest.approx([d - math.sqrt((0.1 - l1) ** 2 + (u2 - 0.05) ** 2),
                                               d + math.sqrt((u1 - 0.1) ** 2 + (0.05 - l2) ** 2)], abs=1e-12)
    assert out["lift"]["relative"] == pytest.approx(1.0)
    pooled = 95 / 1000
    z = d / math.sqrt(pooled * (1 - pooled) * (1 / 900 + 1 / 100))
    assert out["lift"]["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert out["incremental"] == {"conversions": pytest.approx(45.0), "amount": 180000 - 900 * 50.0}
    assert out["success_rate"] == pytest.approx(88 / 800)
    assert out["treated"]["amount"] == 180000.0 and out["holdout"]["amount"] == 5000.0
    # 100 in the holdout is too few to say anything
    assert out["readable"] is False and out["reason"].startswith("the holdout has only 100 customers")


def test_report_open_windows_and_missing_holdout_make_it_unreadable_with_every_reason():
    counts = EffectCounts(treated=ArmCounts(5000, 50), holdout=ArmCounts(0, 0), open_windows=120)
    report = build_report("r", counts, window_days=14, date_from=None, date_to=dt.date(2026, 3, 31),
                          last_window_closes=dt.date(2026, 4, 14), no_holdout="the rule has no holdout")
    out = report.as_dict()
    assert out["readable"] is False
    assert out["reason"].split("; ") == [
        "the rule has no holdout",
        "not yet readable: 120 contacts' conversion windows are still open (the last closes on 2026-04-14)",
        "the holdout has only 0 customers: too few to say anything (at least 630 needed)"]
    assert out["holdout"] == {"n": 0, "conversions": 0, "rate": None, "ci": None, "amount": 0.0}
    assert out["lift"] == {"absolute": None, "ci": None, "relative": None, "p_value": None}
    assert out["incremental"] == {"conversions": None, "amount": None}
    assert out["success_rate"] is None and out["from"] is None


def test_report_readable_when_windows_closed_and_arms_large_enough():
    counts = EffectCounts(treated=ArmCounts(6300, 189), holdout=ArmCounts(700, 14), contacted=6300,
                          contacted_conversions=189)
    out = build_report("r", counts, window_days=14, date_from=None, date_to=None,
                       last_window_closes=None).as_dict()
    assert (out["readable"], out["reason"]) == (True, None)
    assert out["success_rate"] == out["treated"]["rate"] == pytest.approx(0.03)


# --------------------------------------------------------------------------- the aggregate query


class Outbox:
    """Contacts written straight into the outbox, and conversions beside them."""

    def __init__(self, engine):
        self.engine = engine
        self.store = SqlStore(engine)
        self.n = 0
        with engine.begin() as conn:
            upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
            self.run_id = runs.insert_run(conn, kind="scheduled", run_date=T0.date(), dry_run=False, now=T0)

    def contact(self, customer_id: str, *, status: str = "sent", due: dt.datetime = T0,
                sent: dt.datetime | None = None, held_out_by: str | None = None, rule: str = "r",
                created: dt.datetime | None = None, run_id: int | None = None) -> None:
        self.n += 1
        with self.engine.begin() as conn:
            upsert_rows(conn, "customers", [customer(customer_id)], now=NOW, source="test")
            if run_id is None:
                run_id = self.run_id
            insert_messages(conn, [dict(
                dedupe_key=f"{rule}|{customer_id}|{self.n}", run_id=run_id, rule_id=rule, category="marketing",
                priority=50, customer_id=customer_id, subject_type="customer", subject_id=customer_id,
                channel="sms", recipient=None, status=status, body=None if status == "held_out" else "x",
                created_at=created or due, due_at=due, held_out_by=held_out_by)])
            if sent is not None or status in ("sent", "delivered"):
                from sqlalchemy import update

                from campaign_engine.store.models import Message
                conn.execute(update(Message).where(Message.dedupe_key == f"{rule}|{customer_id}|{self.n}")
                             .values(sent_at=sent or due))

    def convert(self, customer_id: str, at: dt.datetime, *, type: str = "deposit_open", amount: str | None = "100",
                product_code: str | None = "TD1Y", cid: str | None = None) -> None:
        with self.engine.begin() as conn:
            insert_conversions(conn, [{"conversion_id": cid or f"{customer_id}@{at.isoformat()}",
                                       "customer_id": customer_id, "type": type, "product_code": product_code,
                                       "amount": Decimal(amount) if amount else None, "occurred_at": at}],
                               source="test", now=NOW)

    def counts(self, goal: Goal, *, group: str = "rule", since: dt.datetime | None = None,
               until: dt.datetime | None = None, run_id: int | None = None,
               now: dt.datetime = T0 + 60 * DAY, rule: str = "r") -> EffectCounts:
        return self.store.effect_counts(rule_id=rule, goal=goal, holdout_group=group, since=since, until=until,
                                        run_id=run_id, now=now)


@pytest.fixture
def outbox(engine) -> Any:
    box = Outbox(engine)
    yield box
    box.store.close()


GOAL = Goal(ConversionType.DEPOSIT_OPEN, within_days=14)


def test_effect_counts_a_conversion_only_after_the_send_and_within_the_window(outbox):
    for name, offset in (("before", -SECOND), ("at", dt.timedelta(0)), ("just-after", SECOND),
                         ("last", 14 * DAY), ("too-late", 14 * DAY + SECOND)):
        outbox.contact(name)
        outbox.convert(name, T0 + offset)
    counts = outbox.counts(GOAL)
    assert counts.treated == ArmCounts(5, 2, Decimal("200"))  # just-after and last
    assert counts.contacted == 5 and counts.contacted_conversions == 2


def test_effect_counts_each_contact_once_with_its_first_conversions_amount(outbox):
    outbox.contact("C1")
    outbox.convert("C1", T0 + 2 * DAY, amount="500")
    outbox.convert("C1", T0 + DAY, amount="300")  # the first: counted
    outbox.convert("C1", T0 + 3 * DAY, amount="900")
    assert outbox.counts(GOAL).treated == ArmCounts(1, 1, Decimal("300"))


def test_effect_counts_only_conversions_matching_the_goal(outbox):
    for c in ("type", "code", "ptype", "small", "null-amount", "good"):
        outbox.contact(c)
    at = T0 + DAY
    outbox.convert("type", at, type="deposit_renewal", product_code="FUND-EQ01")
    outbox.convert("code", at, type="product_purchase", product_code="TD1Y")
    outbox.convert("ptype", at, type="product_purchase", product_code=None)
    outbox.convert("small", at, type="product_purchase", product_code="FUND-EQ01", amount="999.99")
    outbox.convert("null-amount", at, type="product_purchase", product_code="FUND-EQ01", amount=None)
    outbox.convert("good", at, type="product_purchase", product_code="FUND-EQ01", amount="1000")
    by_code = Goal(ConversionType.PRODUCT_PURCHASE, 14, product_code="FUND-EQ01", min_amount=Decimal("1000"))
    by_type = Goal(ConversionType.PRODUCT_PURCHASE, 14, product_type="fund", min_amount=Decimal("1000"))
    assert outbox.counts(by_code).treated.conversions == 1
    assert outbox.counts(by_type).treated.conversions == 1
    assert outbox.counts(Goal(ConversionType.PRODUCT_PURCHASE, 14)).treated.conversions == 5
    assert outbox.counts(Goal(ConversionType.PRODUCT_PURCHASE, 14, product_type="time_deposit")).treated \
        .conversions == 1  # "code": TD1Y is a time deposit


def test_effect_counts_arms_and_their_anchors(outbox):
    # treated: the window opens when it was sent; held out: when it would have been (due_at)
    outbox.contact("T1", status="sent", due=T0, sent=T0 + dt.timedelta(hours=2))
    outbox.convert("T1", T0 + dt.timedelta(hours=1))  # before it was sent: not counted
    outbox.contact("T2", status="queued", due=T0)  # not sent (yet): from its due time
    outbox.convert("T2", T0 + dt.timedelta(hours=1))
    outbox.contact("T3", status="suppressed", due=T0)  # suppressed after it was written: still treated
    outbox.contact("T4", status="failed", due=T0)
    outbox.contact("H1", status="held_out", due=T0, held_out_by="rule")
    outbox.convert("H1", T0 + dt.timedelta(hours=1))
    outbox.contact("H2", status="held_out", due=T0, held_out_by="rule")
    outbox.contact("G1", status="held_out", due=T0, held_out_by="control_group")  # another group: neither arm
    outbox.convert("G1", T0 + dt.timedelta(hours=1))
    outbox.contact("X1", status="held_out", due=T0, held_out_by=None)  # no group (a retry): neither arm
    counts = outbox.counts(GOAL)
    assert counts.treated == ArmCounts(4, 1, Decimal("100"))
    assert counts.holdout == ArmCounts(2, 1, Decimal("100"))
    assert (counts.contacted, counts.contacted_conversions) == (1, 0)  # only T1 was sent
    control = outbox.counts(GOAL, group="control_group")
    assert control.holdout == ArmCounts(1, 1, Decimal("100")) and control.treated == counts.treated


def test_effect_counts_the_period_by_when_contacts_were_written_and_one_run(outbox):
    outbox.contact("A", due=T0)
    outbox.contact("B", due=T0 + 5 * DAY)
    with outbox.engine.begin() as conn:
        other_run = runs.insert_run(conn, kind="scheduled", run_date=T0.date(), dry_run=False, now=T0)
    outbox.contact("C", due=T0 + 5 * DAY, run_id=other_run)
    outbox.contact("D", due=T0, rule="other")
    assert outbox.counts(GOAL, since=T0 + DAY).treated.n == 2
    assert outbox.counts(GOAL, until=T0 + DAY).treated.n == 1
    assert outbox.counts(GOAL, run_id=other_run).treated.n == 1
    counts = outbox.counts(GOAL)
    assert counts.treated.n == 3 and counts.first_contact == T0 and counts.last_anchor == T0 + 5 * DAY


def test_effect_counts_open_windows(outbox):
    outbox.contact("A", due=T0)
    outbox.contact("B", due=T0 + 5 * DAY)
    outbox.contact("H", status="held_out", due=T0 + 10 * DAY, held_out_by="rule")
    assert outbox.counts(GOAL, now=T0 + 14 * DAY).open_windows == 2  # A's closed exactly then
    assert outbox.counts(GOAL, now=T0 + 19 * DAY + SECOND).open_windows == 1
    assert outbox.counts(GOAL, now=T0 + 30 * DAY).open_windows == 0
