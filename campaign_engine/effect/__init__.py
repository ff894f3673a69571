"""Pure: measuring a rule's effect against a holdout (control group) (issue #11).

Owns the deterministic holdout assignment (assignment) and the statistics of a treated arm
against its holdout (stats): Wilson intervals per arm, a Newcombe interval for the lift, the
pooled two-proportion z-test, the readability verdict and the sample size a design needs; and
the effect report built from the counts the store aggregates (report).

Pure core: the standard library only (math, hashlib, statistics, dataclasses). No database,
Flask, queue or clock: conversions, arm sizes, open windows and dates are passed in as values.
statsmodels checks these formulas in the tests and is never imported here.
"""

from .assignment import BUCKETS, bucket, held_out, holdout_slots
from .stats import (
    MIN_ARM,
    Z95,
    ArmResult,
    EffectEstimate,
    Readability,
    detection_power,
    estimate,
    newcombe_diff,
    readability,
    required_sample,
    two_proportion_p_value,
    wilson,
)

__all__ = [
    "BUCKETS", "MIN_ARM", "Z95", "ArmResult", "EffectEstimate", "Readability", "bucket",
    "detection_power", "estimate", "held_out", "holdout_slots", "newcombe_diff", "readability",
    "required_sample", "two_proportion_p_value", "wilson",
]
