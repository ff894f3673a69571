"""Effect statistics: Wilson, Newcombe and the z-test against statsmodels, then simulated designs.

statsmodels (the test extra) is the oracle; numpy, which it brings, draws the simulated arms.
Simulations use fixed seeds and 1,000 runs (2,000 for peeking): a band of +-1.5 pp around 5 %
is about 2 standard errors of a 1,000-run rate, so a wrong test statistic falls outside it.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from campaign_engine.effect.stats import (
    MIN_ARM,
    Z95,
    detection_power,
    estimate,
    newcombe_diff,
    readability,
    required_sample,
    two_proportion_p_value,
    wilson,
)

TREATED_N, HOLDOUT_N = 22_500, 2_500  # 25,000 eligible, 10 % held out
RUNS = 1_000


@pytest.fixture(scope="module")
def proportion():
    return pytest.importorskip("statsmodels.stats.proportion")


@pytest.fixture(scope="module")
def np():
    return pytest.importorskip("numpy")


def _counts(rng: random.Random) -> tuple[int, int]:
    """A random (successes, n): n from 1 to 1,000,000, rates from none through low to all."""
    n = rng.choice([1, 2, rng.randint(1, 20), rng.randint(1, 2_000), rng.randint(1, 1_000_000)])
    successes = rng.choice([0, n, rng.randint(0, n), rng.randint(0, n // 20), rng.randint(0, min(n, 5))])
    return successes, n


EDGES = [(0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (0, 1_000_000), (1_000_000, 1_000_000), (1, 1_000_000)]


def _single_cases(count: int = 2_000, seed: int = 11) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return EDGES + [_counts(rng) for _ in range(count - len(EDGES))]


def _pair_cases(count: int = 2_000, seed: int = 12) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    pairs = [(*a, *b) for a in EDGES for b in EDGES]
    return pairs + [(*_counts(rng), *_counts(rng)) for _ in range(count - len(pairs))]


def test_wilson_matches_statsmodels_over_2000_cases(proportion, np):
    cases = _single_cases()
    assert sum(x == 0 for x, _ in cases) > 100 and sum(x == n for x, n in cases) > 100
    assert sum(n == 1 for _, n in cases) > 100
    x, n = np.array(cases).T
    lo, hi = proportion.proportion_confint(x, n, alpha=0.05, method="wilson")
    for (successes, size), expected in zip(cases, zip(lo.tolist(), hi.tolist())):
        assert wilson(successes, size) == pytest.approx(expected, abs=1e-9, rel=0), (successes, size)


def test_newcombe_diff_matches_statsmodels_over_2000_cases(proportion, np):
    cases = _pair_cases()
    x1, n1, x2, n2 = np.array(cases).T
    lo, hi = proportion.confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff", alpha=0.05)
    for case, expected in zip(cases, zip(lo.tolist(), hi.tolist())):
        assert newcombe_diff(*case) == pytest.approx(expected, abs=1e-9, rel=0), case


def test_two_proportion_p_value_matches_statsmodels_pooled_ztest(proportion):
    cases = [c for c in _pair_cases() if 0 < c[0] + c[2] < c[1] + c[3]]  # where z is defined
    assert len(cases) > 1_500
    for x1, n1, x2, n2 in cases:
        _, expected = proportion.proportions_ztest([x1, x2], [n1, n2], value=0, alternative="two-sided",
                                                   prop_var=False)
        assert two_proportion_p_value(x1, n1, x2, n2) == pytest.approx(float(expected), abs=1e-9, rel=0)


def test_wilson_bounds_exact_at_none_and_all():
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)  # empty: nothing known
    assert wilson(1, 1, z=0.0) == (1.0, 1.0)


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="successes <= n"):
        wilson(successes, n)


def test_newcombe_diff_empty_arm_spans_what_the_other_allows():
    lo1, hi1 = wilson(3, 10)
    assert newcombe_diff(3, 10, 0, 0) == pytest.approx((lo1 - 1.0, hi1))
    assert newcombe_diff(0, 0, 3, 10) == pytest.approx((-hi1, 1.0 - lo1))
    assert newcombe_diff(0, 0, 0, 0) == (-1.0, 1.0)


def test_newcombe_diff_lo_below_zero_iff_not_significant_at_large_n():
    # Newcombe and the z-test are different statistics, but agree on clear-cut cases.
    assert newcombe_diff(675, 22_500, 50, 2_500)[0] > 0 and two_proportion_p_value(675, 22_500, 50, 2_500) < 0.05
    assert newcombe_diff(500, 22_500, 50, 2_500)[0] < 0 < newcombe_diff(500, 22_500, 50, 2_500)[1]


@pytest.mark.parametrize("case", [(0, 100, 0, 200), (100, 100, 200, 200), (3, 10, 0, 0), (0, 0, 0, 0)])
def test_two_proportion_p_value_is_1_where_z_is_undefined(case):
    assert two_proportion_p_value(*case) == 1.0


def test_two_proportion_p_value_symmetric_and_known():
    assert two_proportion_p_value(675, 22_500, 50, 2_500) == two_proportion_p_value(50, 2_500, 675, 22_500)
    # pooled 725 / 25,000 = 2.9 %, se = sqrt(0.029 x 0.971 x (1/22,500 + 1/2,500)) = 0.0035377, z = 2.8267
    assert two_proportion_p_value(675, 22_500, 50, 2_500) == pytest.approx(0.0047028, abs=1e-7)
    assert math.erfc(Z95 / math.sqrt(2)) == pytest.approx(0.05, abs=1e-15)  # z = Z95 is p = 0.05


def test_estimate_fields():
    effect = estimate(treated=(675, 22_500), holdout=(50, 2_500))
    assert (effect.treated.n, effect.treated.conversions, effect.treated.rate) == (22_500, 675, 0.03)
    assert effect.holdout.rate == 0.02 and effect.holdout.ci == wilson(50, 2_500)
    assert effect.lift == pytest.approx(0.01) and effect.lift_ci == newcombe_diff(675, 22_500, 50, 2_500)
    assert effect.relative_lift == pytest.approx(0.5)
    assert effect.p_value == two_proportion_p_value(675, 22_500, 50, 2_500)
    assert effect.incremental == pytest.approx(225.0)  # treated n x absolute lift
    assert effect.incremental_ci == pytest.approx(tuple(22_500 * b for b in effect.lift_ci))


def test_estimate_relative_lift_none_when_holdout_never_converts():
    effect = estimate(treated=(30, 1_000), holdout=(0, 700))
    assert effect.relative_lift is None and effect.lift == 0.03


@pytest.mark.parametrize(("treated", "holdout"), [((3, 10), (0, 0)), ((0, 0), (3, 10)), ((11, 10), (3, 10))])
def test_estimate_rejects_empty_arm_or_impossible_counts(treated, holdout):
    with pytest.raises(ValueError):
        estimate(treated, holdout)


def test_readability_readable_when_windows_closed_and_arms_large():
    assert readability(22_500, 2_500, open_windows=0, last_window_closes=None) == (True, None)
    assert readability(MIN_ARM, MIN_ARM, open_windows=0, last_window_closes=None).readable


def test_readability_not_yet_while_windows_open():
    verdict = readability(22_500, 2_500, open_windows=1_204, last_window_closes=dt.date(2026, 7, 14))
    assert verdict == (False, "not yet readable: 1,204 contacts' conversion windows are still open "
                              "(the last closes on 2026-07-14)")
    assert readability(22_500, 2_500, open_windows=1, last_window_closes=dt.date(2026, 7, 14)).reason == (
        "not yet readable: 1 contact's conversion window is still open (the last closes on 2026-07-14)")


def test_readability_too_few_in_the_holdout():
    verdict = readability(22_500, 412, open_windows=0, last_window_closes=None)
    assert verdict == (False, "the holdout has only 412 customers: too few to say anything (at least 630 needed)")
    assert readability(900, 100, open_windows=0, last_window_closes=None, min_arm=50).readable


def test_readability_gives_every_reason():
    verdict = readability(300, 1, open_windows=2, last_window_closes=dt.date(2026, 7, 14))
    assert verdict.reason == (
        "not yet readable: 2 contacts' conversion windows are still open (the last closes on 2026-07-14); "
        "the holdout has only 1 customer: too few to say anything (at least 630 needed); "
        "the treated arm has only 300 customers: too few to say anything (at least 630 needed)")


def test_min_arm_is_the_holdout_that_detects_a_doubling_of_2_percent():
    # Against an unlimited treated arm, 630 held out give 80 % power for 2 % -> 4 %; 629 do not.
    assert detection_power(0.02, 0.04, 10**12, MIN_ARM) >= 0.8 > detection_power(0.02, 0.04, 10**12, MIN_ARM - 1)


@pytest.mark.parametrize(("p_control", "p_treated", "share", "notes"), [
    (0.02, 0.03, 0.10, 22_454), (0.02, 0.03, 0.05, 42_798), (0.02, 0.025, 0.10, 79_244), (0.10, 0.12, 0.10, 21_853)])
def test_required_sample_matches_the_notes(p_control, p_treated, share, notes):
    # The notes round 22,454.3 to the nearest; a required size is rounded up.
    assert 0 <= required_sample(p_control, p_treated, share) - notes <= 1


def test_required_sample_gives_the_power_asked_for():
    for p_control, p_treated, share, power in [(0.02, 0.03, 0.1, 0.8), (0.05, 0.04, 0.5, 0.9), (0.3, 0.35, 0.2, 0.8)]:
        total = required_sample(p_control, p_treated, share, power=power)
        holdout = total * share
        assert detection_power(p_control, p_treated, total - holdout, holdout) == pytest.approx(power, abs=0.002)


@pytest.mark.parametrize("args", [(0.02, 0.02, 0.1), (0.0, 0.03, 0.1), (0.02, 0.03, 1.0), (0.02, 0.03, 0.0)])
def test_required_sample_rejects_degenerate_designs(args):
    with pytest.raises(ValueError):
        required_sample(*args)


def _arms(np, seed: int, p_treated: float, p_holdout: float, runs: int = RUNS) -> list[tuple[int, int]]:
    """Conversions (treated, holdout) of `runs` simulated campaigns of TREATED_N + HOLDOUT_N."""
    rng = np.random.default_rng(seed)
    return list(zip(rng.binomial(TREATED_N, p_treated, runs).tolist(), rng.binomial(HOLDOUT_N, p_holdout, runs).tolist()))


def _rejection_rate(arms: list[tuple[int, int]]) -> float:
    return sum(two_proportion_p_value(t, TREATED_N, h, HOLDOUT_N) < 0.05 for t, h in arms) / len(arms)


def test_two_proportion_p_value_aa_false_positive_rate_near_5_percent(np):
    rate = _rejection_rate(_arms(np, seed=20260701, p_treated=0.03, p_holdout=0.03))
    assert abs(rate - 0.05) <= 0.015, rate


def test_two_proportion_p_value_detects_planted_2_to_3_percent_at_design_power(np):
    design = detection_power(0.02, 0.03, TREATED_N, HOLDOUT_N)  # 0.845: 25,000 > the 22,455 needed
    rate = _rejection_rate(_arms(np, seed=20260702, p_treated=0.03, p_holdout=0.02))
    assert rate >= 0.80, rate
    assert abs(rate - design) <= 0.035, (rate, design)  # 3 standard errors of a 1,000-run rate


@pytest.mark.parametrize(("p_treated", "p_holdout", "seed"), [(0.03, 0.02, 20260703), (0.03, 0.03, 20260704)])
def test_newcombe_diff_covers_the_true_lift_95_percent(np, p_treated, p_holdout, seed):
    arms = _arms(np, seed, p_treated, p_holdout)
    lift = p_treated - p_holdout
    covered = sum(lo <= lift <= hi for lo, hi in (newcombe_diff(t, TREATED_N, h, HOLDOUT_N) for t, h in arms))
    assert abs(covered / len(arms) - 0.95) <= 0.02, covered


def test_two_proportion_p_value_peeking_daily_inflates_false_positives(np):
    # A/A, as in the notes: 3,000 eligible a day (2,700 treated, 300 held out), 3 %, 30 daily looks.
    runs, days, treated_day, holdout_day = 2_000, 30, 2_700, 300
    rng = np.random.default_rng(20260705)
    treated = rng.binomial(treated_day, 0.03, (runs, days)).cumsum(axis=1).tolist()
    holdout = rng.binomial(holdout_day, 0.03, (runs, days)).cumsum(axis=1).tolist()
    stopped = final = 0
    for t_run, h_run in zip(treated, holdout):
        p = [two_proportion_p_value(t, treated_day * d, h, holdout_day * d)
             for d, t, h in zip(range(1, days + 1), t_run, h_run)]
        stopped += any(value < 0.05 for value in p)
        final += p[-1] < 0.05
    assert abs(final / runs - 0.05) <= 0.015, final / runs  # one look at day 30: nominal
    assert stopped / runs > 0.15, stopped / runs  # stop at the first p < 0.05: several times that
