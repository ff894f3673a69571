"""Suggestions for typos: the closest known spelling of a mistyped name or value ("did you mean")."""

from __future__ import annotations

import difflib
from typing import Iterable


#: difflib's similarity a suggestion needs: 0.7 keeps `fnd` -> `fund` and `tim_deposit` ->
#: `time_deposit` (0.86, 0.96) and drops look-alikes such as `BOND-01` -> `FUND-EQ01` (0.63).
CUTOFF = 0.7


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known spelling nearest to `word`, if one is close enough (CUTOFF)."""
    choices = sorted({k for k in known if k != word})
    found = difflib.get_close_matches(word, choices, n=1, cutoff=CUTOFF)
    if not found:  # a case slip (`td1y` for `TD1Y`) scores low on the ratio
        found = [k for k in choices if k.lower() == word.lower()][:1]
    return found[0] if found else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a mistyped word, or an empty string when nothing is close."""
    match = closest(word, known)
    return f" (did you mean {match!r}?)" if match else ""
