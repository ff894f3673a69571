"""Deterministic holdout assignment: a salted SHA-256 of the customer id into 10,000 buckets.

A customer's bucket is a function of (salt, customer id) alone, recomputed wherever it is needed
(no stored list, no process state, not Python's randomised `hash()`), so the same customer is in
the same arm in every run, process and machine, and an analyst can reproduce it outside:

    int.from_bytes(sha256(salt.encode() + b"\\0" + customer_id.encode()).digest()[:8], "big") % 10000

(UTF-8; NUL separates the two because a rule file cannot hold NUL, so no salt ends inside an id.
2**64 mod 10000 leaves a modulo bias of about 1e-15 per bucket.)

Fixed slots: a holdout of p % is the buckets [0, 100 p). Raising 10 % to 15 % only adds
customers to the holdout and lowering it only releases them; no treated customer is ever moved
into the holdout by a resize, and nobody is reshuffled.

Salts: a rule's holdout is salted with the rule's own `salt` when it sets one (so a renamed rule
can keep its holdout), else with its rule id (holdout_salt). Different salts give independent
holdouts: two 10 % holdouts overlap in about 1 % of customers. A global control group has a salt
of its own, which must not equal any rule id or rule salt.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def holdout_salt(rule_id: str, salt: str | None = None) -> str:
    """The salt of a rule's holdout: the rule's own `salt` if it sets one, else its id."""
    return salt if salt else rule_id


def bucket(customer_id: str, salt: str) -> int:
    """The customer's bucket 0..9999 under `salt`: the first 8 bytes of SHA-256, modulo 10,000."""
    if "\0" in salt:
        raise ValueError("a holdout salt cannot contain NUL (it separates the salt from the id)")
    digest = hashlib.sha256(f"{salt}\0{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def holdout_slots(percent: float) -> int:
    """How many of the 10,000 buckets a holdout of `percent` % takes: 100 * percent.

    The holdout's resolution is one bucket, 0.01 %: a percent off that grid (12.345) is an
    error rather than silently rounded, and so is one outside 0..100 (NaN included).
    """
    scaled = percent * 100
    if not 0 <= scaled <= BUCKETS or abs(scaled - round(scaled)) > 1e-6:  # NaN fails the first test
        raise ValueError(f"holdout percent must be 0..100 in steps of 0.01, not {percent!r}")
    return round(scaled)


def held_out(customer_id: str, salt: str, percent: float) -> bool:
    """Whether the customer is in the holdout of `percent` % salted with `salt`: bucket < 100 p."""
    return bucket(customer_id, salt) < holdout_slots(percent)
