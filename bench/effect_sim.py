"""Benchmark and simulation: holdout assignment cost, and how the effect statistics behave.

    .venv/bin/python bench/effect_sim.py [--ids 1000000] [--runs 10000] [--peeking-runs 2000] [--seed 1]

Prints microseconds per customer of bucket() and held_out() (best of 5 rounds over C00000001..)
and the held-out share at 5/10/15 %; then, over simulated campaigns of 25,000 eligible with a
10 % holdout: the A/A false-positive rate at 3 %, the share of planted 2 % -> 3 % lifts detected
(against detection_power), Newcombe's coverage of the true lift; and the peeking simulation of
the notes (A/A, 3,000 eligible a day, 30 daily looks, stop at the first p < 0.05). Needs numpy
(the `test` extra brings it) for the binomial draws; campaign_engine.effect itself does not.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import microseconds_per_call  # noqa: E402
from campaign_engine.effect.assignment import bucket, held_out, holdout_slots  # noqa: E402
from campaign_engine.effect.stats import (  # noqa: E402
    detection_power,
    newcombe_diff,
    required_sample,
    two_proportion_p_value,
)

SALT = "birthday-sms"


def assignment(count: int) -> None:
    ids = [f"C{i:08d}" for i in range(1, count + 1)]
    timing = ids[:100_000]
    print(f"bucket():   {microseconds_per_call(lambda c: bucket(c, SALT), timing):.2f} µs per customer")
    print(f"held_out(): {microseconds_per_call(lambda c: held_out(c, SALT, 10), timing):.2f} µs per customer")
    buckets = [bucket(c, SALT) for c in ids]
    for percent in (5, 10, 15):
        share = sum(b < holdout_slots(percent) for b in buckets) / count
        print(f"held out at {percent:>2} % over {count:,} ids: {share * 100:.3f} %")


def rate(hits: int, runs: int) -> str:
    se = (hits / runs * (1 - hits / runs) / runs) ** 0.5
    return f"{hits / runs * 100:.2f} % (± {1.96 * se * 100:.2f} pp, {runs:,} runs)"


def simulations(np: Any, runs: int, peeking_runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    treated_n, holdout_n = 22_500, 2_500

    def arms(p_treated: float, p_holdout: float) -> list[tuple[int, int]]:
        return list(zip(rng.binomial(treated_n, p_treated, runs).tolist(),
                        rng.binomial(holdout_n, p_holdout, runs).tolist()))

    def rejections(draws: list[tuple[int, int]]) -> int:
        return sum(two_proportion_p_value(t, treated_n, h, holdout_n) < 0.05 for t, h in draws)

    def covered(draws: list[tuple[int, int]], lift: float) -> int:
        intervals = (newcombe_diff(t, treated_n, h, holdout_n) for t, h in draws)
        return sum(lo <= lift <= hi for lo, hi in intervals)

    print(f"\n25,000 eligible, 10 % held out ({treated_n:,} treated, {holdout_n:,} held out):")
    aa = arms(0.03, 0.03)
    print(f"A/A at 3 %, p < 0.05 (false positives): {rate(rejections(aa), runs)}")
    planted = arms(0.03, 0.02)
    print(f"planted 2 % -> 3 %, p < 0.05 (power):    {rate(rejections(planted), runs)}; "
          f"normal approximation {detection_power(0.02, 0.03, treated_n, holdout_n) * 100:.2f} %")
    print(f"Newcombe covers the lift, planted:        {rate(covered(planted, 0.01), runs)}")
    print(f"Newcombe covers the lift, A/A:            {rate(covered(aa, 0.0), runs)}")

    days, treated_day, holdout_day = 30, 2_700, 300
    treated = rng.binomial(treated_day, 0.03, (peeking_runs, days)).cumsum(axis=1).tolist()
    holdout = rng.binomial(holdout_day, 0.03, (peeking_runs, days)).cumsum(axis=1).tolist()
    stopped = final = 0
    for t_run, h_run in zip(treated, holdout):
        p = [two_proportion_p_value(t, treated_day * d, h, holdout_day * d)
             for d, t, h in zip(range(1, days + 1), t_run, h_run)]
        stopped += any(value < 0.05 for value in p)
        final += p[-1] < 0.05
    print("\npeeking (A/A, 3,000 eligible a day, 10 % held out, 3 %, 30 days):")
    print(f"one look at day 30:            {rate(final, peeking_runs)}")
    print(f"stop at the first p < 0.05:    {rate(stopped, peeking_runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--peeking-runs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    assignment(args.ids)
    print("\nrequired total eligible (two-sided α 0.05, power 0.8):")
    for p_control, p_treated, share in ((0.02, 0.03, 0.10), (0.02, 0.03, 0.05), (0.02, 0.025, 0.10),
                                        (0.10, 0.12, 0.10)):
        print(f"  {p_control:.1%} -> {p_treated:.1%}, {share:.0%} held out: "
              f"{required_sample(p_control, p_treated, share):,}")
    try:
        import numpy
    except ImportError:
        sys.exit("the simulations need numpy: .venv/bin/python -m pip install -e '.[test]'")
    simulations(numpy, args.runs, args.peeking_runs, args.seed)


if __name__ == "__main__":
    main()
