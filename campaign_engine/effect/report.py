"""Pure: a rule's effect report from the counts the store aggregates (issue #11).

The store counts, for one rule's contacts in a period, each arm's contacts, converted contacts and
the amount of their first conversions (EffectCounts); this module turns them into the report:
Wilson intervals per arm, the Newcombe interval of the lift, the p-value, the incremental
conversions and amount, the bank's success rate (精准营销成功率) and the readability verdict.

Arms: treated is every message the rule wrote that was due to be sent (queued, scheduled, sending,
sent, delivered, failed, or suppressed after it was written: intention to treat); holdout is the
rule's held_out rows of the one group that serves as its control (its own holdout, else the global
control group). Both are decided after the whole contact policy and counted the same way, so what
happens to a message after the decision (a failed delivery, an opt-out before sending) lowers the
treated arm's rate honestly instead of being dropped from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .stats import Readability, estimate, readability, wilson

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ArmCounts:
    """One arm as counted: contacts, contacts with a conversion in their window, and the amount of
    those first conversions."""

    n: int = 0
    conversions: int = 0
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class EffectCounts:
    """What the store aggregates for one rule's report (store.effect.effect_counts)."""

    treated: ArmCounts
    holdout: ArmCounts
    contacted: int = 0  # treated contacts whose message reached the channel (sent or delivered)
    contacted_conversions: int = 0  # of those, how many converted in their window
    open_windows: int = 0  # contacts (both arms) whose conversion window is still open at `now`
    last_anchor: dt.datetime | None = None  # the latest send (or would-be send) time of any contact
    first_contact: dt.datetime | None = None  # when the first of them was written


@dataclass(frozen=True)
class ArmReport:
    n: int
    conversions: int
    rate: float | None  # None: an empty arm has no rate
    ci: tuple[float, float] | None
    amount: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "conversions": self.conversions, "rate": self.rate,
                "ci": list(self.ci) if self.ci else None, "amount": _money(self.amount)}


@dataclass(frozen=True)
class EffectReport:
    """A rule's effect over a period: the issue's JSON shape (as_dict) and the numbers behind it."""

    rule: str
    date_from: dt.date | None
    date_to: dt.date | None
    window_days: int
    verdict: Readability
    treated: ArmReport
    holdout: ArmReport
    lift: float | None
    lift_ci: tuple[float, float] | None
    relative_lift: float | None
    p_value: float | None
    incremental_conversions: float | None
    incremental_amount: Decimal | None
    success_rate: float | None  # converted / contacted among the treated contacts reached

    @property
    def readable(self) -> bool:
        return self.verdict.readable

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "window_days": self.window_days, "readable": self.verdict.readable, "reason": self.verdict.reason,
            "treated": self.treated.as_dict(), "holdout": self.holdout.as_dict(),
            "lift": {"absolute": self.lift, "ci": list(self.lift_ci) if self.lift_ci else None,
                     "relative": self.relative_lift, "p_value": self.p_value},
            "incremental": {"conversions": self.incremental_conversions,
                            "amount": _money(self.incremental_amount)},
            "success_rate": self.success_rate,
        }


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _arm(counts: ArmCounts) -> ArmReport:
    if counts.n == 0:
        return ArmReport(0, 0, None, None, counts.amount)
    return ArmReport(counts.n, counts.conversions, counts.conversions / counts.n,
                     wilson(counts.conversions, counts.n), counts.amount)


def build_report(rule_id: str, counts: EffectCounts, *, window_days: int, date_from: dt.date | None,
                 date_to: dt.date | None, last_window_closes: dt.date | None,
                 no_holdout: str | None = None) -> EffectReport:
    """The report of one rule's counts. `last_window_closes` is the local date the last open
    window closes (the caller knows the time zone); `no_holdout` says why the rule has no control
    arm at all, when it has none (that reason comes first)."""
    verdict = readability(counts.treated.n, counts.holdout.n, open_windows=counts.open_windows,
                          last_window_closes=last_window_closes if counts.open_windows else None)
    if no_holdout:
        verdict = Readability(False, "; ".join(r for r in (no_holdout, verdict.reason) if r))
    treated, holdout = _arm(counts.treated), _arm(counts.holdout)
    success = counts.contacted_conversions / counts.contacted if counts.contacted else None
    if not (treated.n and holdout.n):
        return EffectReport(rule_id, date_from, date_to, window_days, verdict, treated, holdout, None, None,
                            None, None, None, None, success)
    effect = estimate((treated.conversions, treated.n), (holdout.conversions, holdout.n))
    per_contact = holdout.amount / holdout.n
    return EffectReport(
        rule_id, date_from, date_to, window_days, verdict, treated, holdout,
        lift=effect.lift, lift_ci=effect.lift_ci, relative_lift=effect.relative_lift, p_value=effect.p_value,
        incremental_conversions=effect.incremental,
        incremental_amount=treated.amount - treated.n * per_contact, success_rate=success)
