"""Holdout assignment: a salted SHA-256 into 10,000 fixed slots, the same in every process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from campaign_engine.effect.assignment import BUCKETS, bucket, held_out, holdout_salt, holdout_slots

IDS = [f"C{i:08d}" for i in range(1, 100_001)]  # C00000001..C00100000
SALT = holdout_salt("birthday-sms")  # a rule without a salt of its own: its id


@pytest.fixture(scope="module")
def buckets() -> list[int]:
    return [bucket(customer_id, SALT) for customer_id in IDS]


@pytest.fixture(scope="module")
def holdouts() -> dict[float, set[str]]:
    """The customers held out under SALT at 5, 10 and 15 %."""
    return {percent: {c for c in IDS if held_out(c, SALT, percent)} for percent in (5, 10, 15)}


def test_bucket_follows_the_documented_recipe():
    # Changing the recipe would reshuffle every holdout in production: it is pinned, with values.
    for customer_id in IDS[:500] + ["", "客户-0001", "C:00:1"]:
        digest = hashlib.sha256(SALT.encode() + b"\0" + customer_id.encode()).digest()
        assert bucket(customer_id, SALT) == int.from_bytes(digest[:8], "big") % 10_000
    assert [bucket(c, SALT) for c in IDS[:5]] == [0, 1820, 6740, 9162, 1371]
    assert bucket("C00000001", "deposit-maturity") != 0  # the salt takes part


@pytest.mark.parametrize("percent", [5, 10, 12.5, 20])
def test_held_out_share_within_0_3_pp_at_100k_ids(buckets, percent):
    slots = holdout_slots(percent)
    share = sum(b < slots for b in buckets) / len(buckets)
    assert abs(share - percent / 100) <= 0.003, share
    assert sum(held_out(c, SALT, percent) for c in IDS[:2000]) == sum(b < slots for b in buckets[:2000])


def test_bucket_spreads_ids_evenly_over_10000_buckets(buckets):
    counts = [0] * BUCKETS
    for b in buckets:
        counts[b] += 1
    expected = len(buckets) / BUCKETS
    chi_square = sum((c - expected) ** 2 / expected for c in counts)
    degrees = BUCKETS - 1
    assert abs(chi_square - degrees) < 5 * (2 * degrees) ** 0.5, chi_square  # mean 9,999, sd 141


def test_held_out_lowering_10_to_5_percent_releases_only_holdout_members(holdouts):
    at_10, at_5 = holdouts[10], holdouts[5]
    assert at_5 < at_10  # nobody treated at 10 % is held out at 5 %
    assert abs(len(at_10 - at_5) / len(IDS) - 0.05) <= 0.003  # the released half of the holdout


def test_held_out_raising_10_to_15_percent_only_adds_customers(holdouts):
    assert holdouts[10] < holdouts[15]


def test_held_out_different_salts_are_independent(holdouts):
    # Two rules' 10 % holdouts (or a rule's and the global control's) overlap in about 1 %.
    rule = holdouts[10]
    other = {c for c in IDS if held_out(c, holdout_salt("deposit-maturity"), 10)}
    control = {c for c in IDS if held_out(c, "global-control-2026", 10)}
    for a, b in ((rule, other), (rule, control), (other, control)):
        assert abs(len(a & b) / len(IDS) - 0.01) <= 0.002


def test_held_out_same_in_another_process():
    # Python randomises str hashes per process: a fresh interpreter with another PYTHONHASHSEED
    # must still put every customer in the same bucket.
    sample = IDS[::97]
    code = ("import json, sys\n"
            "from campaign_engine.effect.assignment import bucket, held_out\n"
            "ids = json.load(sys.stdin)\n"
            f"print(json.dumps([[bucket(c, {SALT!r}), held_out(c, {SALT!r}, 10)] for c in ids]))\n")
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code], input=json.dumps(sample), capture_output=True,
                              text=True, check=True, timeout=60, env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(done.stdout) == [[bucket(c, SALT), held_out(c, SALT, 10)] for c in sample]


def test_held_out_none_at_0_percent_everyone_at_100():
    assert not any(held_out(c, SALT, 0) for c in IDS[:1000])
    assert all(held_out(c, SALT, 100) for c in IDS[:1000])


@pytest.mark.parametrize(("percent", "slots"), [(0, 0), (0.01, 1), (10, 1000), (12.5, 1250), (14.3, 1430),
                                                 (100, 10_000)])
def test_holdout_slots_one_bucket_per_0_01_percent(percent, slots):
    assert holdout_slots(percent) == slots


@pytest.mark.parametrize("percent", [-1, 100.01, 12.345, float("nan"), float("inf")])
def test_holdout_slots_rejects_off_grid_or_out_of_range(percent):
    with pytest.raises(ValueError, match="steps of 0.01"):
        holdout_slots(percent)


def test_bucket_rejects_nul_in_salt():
    with pytest.raises(ValueError, match="NUL"):
        bucket("C00000001", "a\0b")


def test_holdout_salt_prefers_the_rules_own_salt():
    assert holdout_salt("birthday-sms", "birthday-2025") == "birthday-2025"
    assert holdout_salt("birthday-sms", None) == "birthday-sms"
    assert holdout_salt("birthday-sms", "") == "birthday-sms"
