"""Pure: check a 5-field crontab expression (minute hour day month weekday) field by field.

Standard crontab only: numbers, `*`, ranges `a-b`, steps `/n`, lists `a,b`, month and weekday
names (JAN, MON), weekday 0 or 7 for Sunday, `?` as `*`. Quartz extras (L, W, #) are refused:
the scheduler could not honour them.
"""

from __future__ import annotations

_NAMES = {
    3: {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                    "nov", "dec"), start=1)},
    4: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))


def _value(token: str, index: int, low: int, high: int) -> int:
    number = _NAMES.get(index, {}).get(token.lower()) if not token.isdigit() else int(token)
    if number is None or not low <= number <= high:
        raise ValueError(f"{token!r} is not a {_FIELDS[index][0]} ({low}-{high})")
    return number


def check_crontab(expr: str) -> None:
    """Raise ValueError naming the field when `expr` is not a standard 5-field crontab."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a schedule is a 5-field cron expression such as '0 9 * * *', got {len(fields)} field(s)")
    for index, (text, (name, low, high)) in enumerate(zip(fields, _FIELDS)):
        for part in text.split(","):
            base, slash, step = part.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                raise ValueError(f"{name}: step {step!r} is not a positive number")
            if base in ("*", "?"):
                continue
            start, dash, end = base.partition("-")
            first = _value(start, index, low, high)
            if dash and _value(end, index, low, high) < first:
                raise ValueError(f"{name}: range {base!r} runs backwards")
