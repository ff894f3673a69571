"""The effect of a rule, treated arm against holdout: rates, lift, p-value, verdict, sample size.

Both arms must be counted the same way: customers who passed the whole contact policy and were
then assigned (treated: the message was due, whether or not it was delivered; holdout: it would
have been), each converting or not within the same window after that decision. Counts are
(conversions, n) pairs; a lift is treated rate minus holdout rate.

- Each arm's rate: a 95 % Wilson score interval.
- The lift: Newcombe's hybrid score interval (his "method 10": the two Wilson intervals combined
  by squares), which keeps near-nominal coverage at rates of a few percent where Wald does not.
- The p-value: the two-sided pooled two-proportion z-test, tail from math.erfc (exact normal).
- Sample sizes and power: the normal approximation of that same test (pooled variance under
  the null, unpooled under the alternative, no continuity correction).

statsmodels (a test-only dependency) agrees with wilson, newcombe_diff and the p-value to 1e-9
(tests/test_effect_stats.py). A p-value is valid for one look at the end of the design: checking
daily and stopping at the first p < 0.05 makes false positives several times likelier.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

Z95 = 1.959963984540054
"""The two-sided 95 % normal quantile as scipy gives it (NormalDist's is 1.9599639845400536)."""

MIN_ARM = 630
"""The fewest customers an arm may have for a verdict: a power floor, not a guarantee.

630 = ceil((z_0.975 sqrt(0.04 x 0.96) + z_0.8 sqrt(0.02 x 0.98))**2 / 0.02**2) = ceil(629.76):
the holdout that, even against an infinitely large treated arm, gives 80 % power (two-sided
alpha 0.05) to detect a doubling of a 2 % conversion rate (2 % -> 4 %). A doubling is about the
largest effect a message plausibly has on a rate of a few percent, so with fewer customers in an
arm no plausible effect can be told from noise. With a finite treated arm it takes more (690 at a
10 % holdout); required_sample gives what a particular design needs.
"""

Interval = tuple[float, float]


class Readability(NamedTuple):
    """Whether an effect can be read yet, and if not, why (for people)."""

    readable: bool
    reason: str | None


@dataclass(frozen=True)
class ArmResult:
    """One arm: customers, conversions, conversion rate and its Wilson interval."""

    n: int
    conversions: int
    rate: float
    ci: Interval


@dataclass(frozen=True)
class EffectEstimate:
    """A treated arm against its holdout.

    lift is the absolute difference in conversion rate (treated - holdout) with its Newcombe
    interval; relative_lift is lift / holdout rate, None when the holdout rate is 0. incremental
    is the conversions the rule caused: treated n x lift (and its interval, treated n x lift_ci).
    """

    treated: ArmResult
    holdout: ArmResult
    lift: float
    lift_ci: Interval
    relative_lift: float | None
    p_value: float
    incremental: float
    incremental_ci: Interval


def _check_counts(successes: int, n: int) -> None:
    if not 0 <= successes <= n:
        raise ValueError(f"counts must satisfy 0 <= successes <= n, not {successes} of {n}")


def _check_rate(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, not {value!r}")


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval (lo, hi) for a proportion successes / n.

    n == 0 gives (0.0, 1.0): the formula's limit, and the honest "nothing known". 0 successes
    give a lower bound of exactly 0.0 and n successes an upper bound of exactly 1.0, as in
    exact arithmetic; other bounds are clamped to [0, 1] against rounding.
    """
    _check_counts(successes, n)
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    lo = 0.0 if successes == 0 else max(0.0, centre - half_width)
    hi = 1.0 if successes == n else min(1.0, centre + half_width)
    return (lo, hi)


def newcombe_diff(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval (lo, hi) for p1 - p2 (treated minus holdout).

    lo = d - sqrt((p1 - l1)**2 + (u2 - p2)**2), hi = d + sqrt((u1 - p1)**2 + (p2 - l2)**2),
    with (l, u) each arm's Wilson interval. An empty arm (n == 0) has no rate; the interval is
    then every difference both Wilson intervals allow, (l1 - u2, u1 - l2): (-1.0, 1.0) when
    both are empty.
    """
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    if n1 == 0 or n2 == 0:
        return (l1 - u2, u1 - l2)
    p1, p2 = x1 / n1, x2 / n2
    difference = p1 - p2
    lo = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """The two-sided p-value of the pooled two-proportion z-test of p1 == p2.

    z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2)) with p the pooled rate; p-value = erfc(|z|/sqrt 2).
    Where z is 0/0 (an empty arm, or a pooled rate of 0 or 1: no conversions anywhere, or
    all converted) the data hold no evidence of a difference and the p-value is 1.0
    (statsmodels gives NaN there).
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if n1 == 0 or n2 == 0 or x1 + x2 in (0, n1 + n2):
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / standard_error
    return math.erfc(abs(z) / math.sqrt(2))


def _arm(conversions: int, n: int) -> ArmResult:
    if n == 0:
        raise ValueError("an effect needs customers in both arms (readability says so first)")
    return ArmResult(n=n, conversions=conversions, rate=conversions / n, ci=wilson(conversions, n))


def estimate(treated: tuple[int, int], holdout: tuple[int, int]) -> EffectEstimate:
    """The effect of the treated arm over the holdout, each given as (conversions, n).

    An empty arm is a ValueError: there is no rate to compare. It is not a verdict either:
    readability() says whether the numbers, defined from one customer per arm, mean anything.
    """
    (x1, n1), (x2, n2) = treated, holdout
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    treated_arm, holdout_arm = _arm(x1, n1), _arm(x2, n2)
    lift = treated_arm.rate - holdout_arm.rate
    lo, hi = newcombe_diff(x1, n1, x2, n2)
    return EffectEstimate(
        treated=treated_arm,
        holdout=holdout_arm,
        lift=lift,
        lift_ci=(lo, hi),
        relative_lift=lift / holdout_arm.rate if holdout_arm.rate > 0 else None,
        p_value=two_proportion_p_value(x1, n1, x2, n2),
        incremental=n1 * lift,
        incremental_ci=(n1 * lo, n1 * hi),
    )


def _customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


def readability(treated_n: int, holdout_n: int, *, open_windows: int,
                last_window_closes: dt.date | None, min_arm: int = MIN_ARM) -> Readability:
    """Whether a rule's effect can be read: every conversion window closed, both arms >= min_arm.

    open_windows counts the measured contacts whose conversion window is still open on the
    caller's today, last_window_closes is the date the last of them closes (None omits it
    from the reason). Every reason that applies is given, joined by "; ".
    """
    if min(treated_n, holdout_n, open_windows) < 0:
        raise ValueError("arm sizes and open windows cannot be negative")
    reasons = []
    if open_windows:
        contacts = ("1 contact's conversion window is" if open_windows == 1
                    else f"{open_windows:,} contacts' conversion windows are")
        closes = f" (the last closes on {last_window_closes.isoformat()})" if last_window_closes else ""
        reasons.append(f"not yet readable: {contacts} still open{closes}")
    for arm, n in (("the holdout", holdout_n), ("the treated arm", treated_n)):
        if n < min_arm:
            reasons.append(f"{arm} has only {_customers(n)}: too few to say anything "
                           f"(at least {min_arm:,} needed)")
    return Readability(readable=not reasons, reason="; ".join(reasons) or None)


def _z(probability: float) -> float:
    return NormalDist().inv_cdf(probability)


def detection_power(p_control: float, p_treated: float, treated_n: int, holdout_n: int,
                    alpha: float = 0.05) -> float:
    """The probability that the two-sided pooled z-test at `alpha` rejects, given true rates.

    Normal approximation: Phi((d - z sigma0) / sigma1) + Phi((-d - z sigma0) / sigma1), sigma0
    the null's pooled standard error, sigma1 the alternative's unpooled one.
    """
    _check_rate("p_control", p_control)
    _check_rate("p_treated", p_treated)
    _check_rate("alpha", alpha)
    if treated_n < 1 or holdout_n < 1:
        raise ValueError("both arms need at least one customer")
    pooled = (treated_n * p_treated + holdout_n * p_control) / (treated_n + holdout_n)
    sigma0 = math.sqrt(pooled * (1 - pooled) * (1 / treated_n + 1 / holdout_n))
    sigma1 = math.sqrt(p_treated * (1 - p_treated) / treated_n + p_control * (1 - p_control) / holdout_n)
    difference, z = abs(p_treated - p_control), _z(1 - alpha / 2)
    normal = NormalDist()
    return normal.cdf((difference - z * sigma0) / sigma1) + normal.cdf((-difference - z * sigma0) / sigma1)


def required_sample(p_control: float, p_treated: float, holdout_share: float,
                    alpha: float = 0.05, power: float = 0.8) -> int:
    """Total eligible customers (both arms) for the z-test to detect p_control -> p_treated.

    N = ((z_(1-alpha/2) sigma0 + z_power sigma1) / |p_treated - p_control|)**2, rounded up, with
    h the holdout share, sigma0 = sqrt(p (1 - p) (1/h + 1/(1-h))) for p = h p_control +
    (1-h) p_treated (the null's pooled rate), sigma1 = sqrt(p_control (1 - p_control) / h +
    p_treated (1 - p_treated) / (1-h)). No continuity correction (Fleiss's adds about 5 %).
    2 % -> 3 % at a 10 % holdout: 22,455; 2 % -> 2.5 %: 79,245; 10 % -> 12 %: 21,853.
    """
    _check_rate("p_control", p_control)
    _check_rate("p_treated", p_treated)
    _check_rate("holdout_share", holdout_share)
    _check_rate("alpha", alpha)
    _check_rate("power", power)
    if p_control == p_treated:
        raise ValueError("no sample detects a lift of zero: p_treated must differ from p_control")
    h = holdout_share
    pooled = h * p_control + (1 - h) * p_treated
    sigma0 = math.sqrt(pooled * (1 - pooled) * (1 / h + 1 / (1 - h)))
    sigma1 = math.sqrt(p_control * (1 - p_control) / h + p_treated * (1 - p_treated) / (1 - h))
    n = ((_z(1 - alpha / 2) * sigma0 + _z(power) * sigma1) / abs(p_treated - p_control)) ** 2
    return math.ceil(n)
