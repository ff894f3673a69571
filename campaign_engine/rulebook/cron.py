"""Pure: parse a 5-field crontab expression (minute hour day month weekday) into a Crontab.

The one crontab parser: the loader refuses a schedule it cannot parse, and the
scheduler builds its APScheduler trigger from the parsed value.

Standard crontab only: numbers, `*`, ranges `a-b`, steps `/n`, lists `a,b`, month and weekday
names (JAN, MON), weekday 0 or 7 for Sunday, `?` as `*`. Quartz extras (L, W, #) are refused:
the scheduler could not honour them.
"""

from __future__ import annotations

from dataclasses import dataclass

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) is Sunday


@dataclass(frozen=True)
class _Spec:
    name: str
    low: int
    high: int
    names: dict[str, int]
    every_high: int  # where `*` ends: 6 for weekdays, whose 7 is only another way to write Sunday


_MINUTE = _Spec("minute", 0, 59, {}, 59)
_HOUR = _Spec("hour", 0, 23, {}, 23)
_DAY = _Spec("day of month", 1, 31, {}, 31)
_MONTH = _Spec("month", 1, 12, {m: i for i, m in enumerate(_MONTHS, start=1)}, 12)
_WEEKDAY = _Spec("day of week", 0, 7, {d: i for i, d in enumerate(WEEKDAYS)}, 6)


@dataclass(frozen=True)
class CronField:
    """One field of a crontab: the values it allows, and whether it was written as a restriction.

    `restricted` is crontab's own test (the field does not start with `*` or `?`), not
    "fewer than all values" (`every`): it decides how day of month and day of week combine.
    """

    values: frozenset[int]
    restricted: bool
    every: bool  # the values are the whole field (`*`, `0-59`, `1-7`)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab expression; weekdays are 0 = Sunday .. 6 = Saturday (7 is read as 0)."""

    minute: CronField
    hour: CronField
    day: CronField
    month: CronField
    weekday: CronField

    @property
    def either_day(self) -> bool:
        """True when both day of month and day of week are restricted: crontab fires when either matches."""
        return self.day.restricted and self.weekday.restricted


def _value(token: str, spec: _Spec) -> int:
    number = int(token) if token.isascii() and token.isdigit() else spec.names.get(token.lower())
    if number is None or not spec.low <= number <= spec.high:
        raise ValueError(f"{token!r} is not a {spec.name} ({spec.low}-{spec.high})")
    return number


def _field(text: str, spec: _Spec) -> CronField:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isascii() and step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{spec.name}: step {step_text!r} is not a positive number")
        if base in ("*", "?"):
            low, high = spec.low, spec.every_high
        else:
            start, dash, end = base.partition("-")
            low = _value(start, spec)
            # `a/n` without an end runs to the end of the field ("1/2": from Monday on)
            high = _value(end, spec) if dash else spec.high if slash else low
            if high < low:
                raise ValueError(f"{spec.name}: range {base!r} runs backwards")
        values.update(range(low, high + 1, int(step_text) if slash else 1))
    if spec is _WEEKDAY:
        values = {v % 7 for v in values}
    return CronField(frozenset(values), restricted=not text.startswith(("*", "?")),
                     every=values == set(range(spec.low, spec.every_high + 1)))


def parse_crontab(expr: str) -> Crontab:
    """The parsed expression; ValueError naming the field when `expr` is not a standard 5-field crontab."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a schedule is a 5-field cron expression such as '0 9 * * *', got {len(fields)} field(s)")
    minute, hour, day, month, weekday = (_field(text, spec) for text, spec in
                                         zip(fields, (_MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)))
    return Crontab(minute, hour, day, month, weekday)
