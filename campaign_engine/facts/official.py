"""Pure: the official calendar of mainland China, read from config/holidays.yaml.

Public holidays and adjusted working days (调休) exist only once the State Council has
announced them (its notice for a year usually comes out in November of the year before),
so the calendar knows the years its file lists and refuses to guess any other:
holiday() and is_workday() raise CalendarNotAnnounced for a day it cannot know.

The file has one entry per notice, keyed by the year the notice is for:

    2026:
      holidays:
        元旦: 2026-01-01 .. 2026-01-03
        春节: 2026-02-15 .. 2026-02-23
      workdays: [2026-01-04, 2026-02-14, 2026-02-28]

`holidays` names every day off of each holiday (`A .. B` is every day from A to B; parts are
separated by commas); `workdays` lists the weekend days worked instead. A notice may reach
back into the last days of the year before (2019's 元旦 was 2018-12-30 .. 2019-01-01, with
Saturday 2018-12-29 worked), so those December days are known only once the next year is in.

Updating the file each year: `python -m campaign_engine.facts.official_update` (see there).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from ..errors import CampaignEngineError, ConfigError, Problem
from ..vocabulary import HOLIDAY_NAMES

# A notice for year Y may also cover December 29..31 of year Y - 1 (a 元旦 block and its
# Saturday worked): those days stay unknown until the notice for Y is in the file.
SPILL_FROM = (12, 29)
FIRST_YEAR, LAST_YEAR = 1949, 2199  # sanity bounds for a year key


class CalendarNotAnnounced(CampaignEngineError):
    """The official calendar of `year` is not in the holiday file: nothing about the day is guessed."""

    def __init__(self, year: int, day: dt.date | None = None, source: str | None = None):
        self.year = year
        self.day = day
        self.source = source
        about = f" (needed for {day})" if day is not None else ""
        where = source or "the holiday calendar"
        super().__init__(
            f"{where} has no official holidays and working days for {year}{about}: add the State "
            f"Council's notice for {year} (python -m campaign_engine.facts.official_update)")


@dataclass(frozen=True)
class Notice:
    """One year's announced calendar: the days off of each holiday and the weekend days worked."""

    year: int
    holidays: Mapping[str, tuple[dt.date, ...]]  # name -> its days off, sorted
    workdays: tuple[dt.date, ...] = ()  # sorted


def _spills(day: dt.date) -> bool:
    """Whether the next year's notice may change `day` (its last days of December)."""
    return (day.month, day.day) >= SPILL_FROM


@dataclass(frozen=True)
class HolidayCalendar:
    """The announced official calendar: holidays by day, working days, business-day arithmetic."""

    notices: Mapping[int, Notice] = field(default_factory=dict)
    source: str | None = None  # the file it was read from, for messages
    _holidays: dict[dt.date, tuple[str, int]] = field(init=False, repr=False, compare=False)
    _workdays: frozenset[dt.date] = field(init=False, repr=False, compare=False)
    _count: dict[int, tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        holidays: dict[dt.date, tuple[str, int]] = {}
        for notice in self.notices.values():
            for name, days in notice.holidays.items():
                holidays.update((day, (name, n)) for n, day in enumerate(days, start=1))
        workdays = frozenset(d for notice in self.notices.values() for d in notice.workdays)
        object.__setattr__(self, "_holidays", holidays)
        object.__setattr__(self, "_workdays", workdays)
        # ordinal -> (run, working days of the run up to and including that day), over the known
        # days; `run` numbers each stretch of consecutive known days
        count: dict[int, tuple[int, int]] = {}
        run = total = 0
        previous = None
        for year in sorted(self.notices):
            day = dt.date(year, 1, 1)
            while day.year == year:
                if not self.known(day):
                    break
                if previous is None or day.toordinal() != previous + 1:
                    run, total = run + 1, 0
                total += self._works(day)
                count[day.toordinal()] = (run, total)
                previous = day.toordinal()
                day += dt.timedelta(days=1)
        object.__setattr__(self, "_count", count)

    # ------------------------------------------------------------------ what is known

    def announced(self, year: int) -> bool:
        """Whether the file holds the State Council's calendar for `year`."""
        return year in self.notices

    def known(self, day: dt.date) -> bool:
        """Whether the calendar can tell about `day`: its year announced, and for its last days
        of December the next year too."""
        return day.year in self.notices and (not _spills(day) or day.year + 1 in self.notices)

    def _check(self, day: dt.date) -> None:
        if day.year not in self.notices:
            raise CalendarNotAnnounced(day.year, day, self.source)
        if _spills(day) and day.year + 1 not in self.notices:
            raise CalendarNotAnnounced(day.year + 1, day, self.source)

    # ------------------------------------------------------------------ one day

    def holiday(self, day: dt.date) -> str | None:
        """The holiday `day` is a day off of (every day of it, not only the first), else None."""
        self._check(day)
        entry = self._holidays.get(day)
        return entry[0] if entry else None

    def holiday_day(self, day: dt.date) -> int | None:
        """1 on the first day off of a holiday, 2 on the next ..; None on a day that is not one."""
        self._check(day)
        entry = self._holidays.get(day)
        return entry[1] if entry else None

    def _works(self, day: dt.date) -> bool:
        if day in self._holidays:
            return False
        return day.isoweekday() < 6 or day in self._workdays

    def is_workday(self, day: dt.date) -> bool:
        """Official working day: Monday to Friday unless a holiday, a weekend day only when worked (调休)."""
        self._check(day)
        return self._works(day)

    # ------------------------------------------------------------------ business days

    def next_business_day(self, day: dt.date) -> dt.date:
        """`day` itself when a working day, else the first working day after it."""
        while not self.is_workday(day):
            day += dt.timedelta(days=1)
        return day

    def business_days_between(self, a: dt.date, b: dt.date) -> int:
        """Working days d with a < d <= b (so 1 from a Friday to the Monday after); negative when b < a."""
        if b < a:
            return -self.business_days_between(b, a)
        start, end = self._count.get(a.toordinal()), self._count.get(b.toordinal())
        if start is None or end is None or start[0] != end[0]:
            gap = next(d for d in _days(a, b) if not self.known(d))
            self._check(gap)
        assert start is not None and end is not None
        return end[1] - start[1]


def _days(a: dt.date, b: dt.date) -> Iterator[dt.date]:
    while a <= b:
        yield a
        a += dt.timedelta(days=1)


# --------------------------------------------------------------------------- the file

def _line(node: Any, key: Any = None, index: int | None = None) -> int | None:
    """1-based line of a mapping key or sequence item in the round-trip tree, when known."""
    try:
        if index is not None:
            return int(node.lc.item(index)[0]) + 1
        if key is not None:
            return int(node.lc.key(key)[0]) + 1
        return int(node.lc.line) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value} has a time: write the date only")
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def parse_days(value: Any) -> list[dt.date]:
    """`2026-02-15 .. 2026-02-23, 2026-02-25` -> every day it names, in order of writing."""
    if isinstance(value, dt.date):
        return [_date(value)]
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a date, a range `A .. B`, or several separated by commas")
    days: list[dt.date] = []
    for part in value.split(","):
        first, sep, last = part.partition("..")
        try:
            start = _date(first)
            end = _date(last) if sep else start
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a YYYY-MM-DD date or a range `A .. B`") from None
        if end < start:
            raise ValueError(f"{part.strip()!r}: the range ends before it starts")
        days.extend(_days(start, end))
    return days


def _notice_days(year: int) -> tuple[dt.date, dt.date]:
    """The days a notice for `year` may name."""
    return dt.date(year - 1, *SPILL_FROM), dt.date(year, 12, 31)


def parse_holidays(data: Any, source: str) -> HolidayCalendar:
    """The holiday file's loaded tree -> HolidayCalendar; every problem a ConfigError naming its line."""
    problems: list[Problem] = []

    def problem(reason: str, line: int | None) -> None:
        problems.append(Problem(reason, file=source, line=line))

    if data is None:
        data = CommentedMap()
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("expected a mapping of year: {holidays: .., workdays: [..]}",
                                   file=source, line=_line(data))], what="holiday calendar")
    notices: dict[int, Notice] = {}
    seen: dict[dt.date, tuple[int, int | None]] = {}  # day -> (notice year, line): each day once
    for key, entry in data.items():
        line = _line(data, key)
        if isinstance(key, bool) or not isinstance(key, int) or not FIRST_YEAR <= key <= LAST_YEAR:
            problem(f"{key!r} is not a year (the year of the State Council's notice, e.g. 2026)", line)
            continue
        year = key
        if not isinstance(entry, Mapping):
            problem(f"{year}: expected `holidays:` and `workdays:`", line)
            continue
        for extra in sorted(set(map(str, entry)) - {"holidays", "workdays"}):
            problem(f"{year}: unknown key {extra!r} (expected holidays, workdays)", _line(entry, extra))
        low, high = _notice_days(year)

        def take(day: dt.date, where: int | None, what: str) -> bool:
            if not low <= day <= high:
                problem(f"{year}: {what} {day} is outside the notice for {year} ({low} .. {high})", where)
                return False
            if day in seen:
                first_year, first_line = seen[day]
                at = f" (line {first_line})" if first_line else ""
                problem(f"{year}: {day} is listed twice{at}", where)
                return False
            seen[day] = (year, where)
            return True

        holidays: dict[str, tuple[dt.date, ...]] = {}
        named = entry.get("holidays")
        if not isinstance(named, Mapping):
            problem(f"{year}: `holidays:` must map each holiday's name to its days off", _line(entry, "holidays") or line)
            named = {}
        for name, value in named.items():
            where = _line(named, name)
            if not isinstance(name, str) or name.strip() not in HOLIDAY_NAMES:
                problem(f"{year}: {name!r} is not an official holiday's name (the notices name "
                        f"{', '.join(HOLIDAY_NAMES)}; rules compare calendar.holiday with these)", where)
                continue
            try:
                days = parse_days(value)
            except ValueError as exc:
                problem(f"{year} {name}: {exc}", where)
                continue
            kept = [d for d in days if take(d, where, name)]
            holidays[name.strip()] = tuple(sorted(kept))
        workdays: list[dt.date] = []
        listed = entry.get("workdays")
        if not isinstance(listed, list):
            problem(f"{year}: `workdays:` must list the weekend days worked (调休), [] when none",
                    _line(entry, "workdays") or line)
            listed = []
        for i, value in enumerate(listed):
            where = _line(listed, index=i) if isinstance(listed, CommentedSeq) else None
            where = where or _line(entry, "workdays")
            try:
                day = _date(value)
            except ValueError:
                problem(f"{year} workdays: {value!r} is not a YYYY-MM-DD date", where)
                continue
            if day.isoweekday() < 6:
                problem(f"{year} workdays: {day} is a {day:%A}; list only the Saturdays and Sundays worked", where)
                continue
            if take(day, where, "workday"):
                workdays.append(day)
        notices[year] = Notice(year, dict(sorted(holidays.items(), key=lambda kv: kv[1][:1])),
                               tuple(sorted(workdays)))
    if problems:
        raise ConfigError(problems, what="holiday calendar")
    return HolidayCalendar(dict(sorted(notices.items())), source=source)


def load_holidays(path: Path) -> HolidayCalendar:
    """Read config/holidays.yaml; every bad entry is a ConfigError naming its line (the calendar of
    one text is read once per process: it is immutable)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError([Problem(str(exc), file=str(path))], what="holiday calendar") from exc
    return _calendar_of(text, str(path))


@functools.lru_cache(maxsize=8)
def _calendar_of(text: str, source: str) -> HolidayCalendar:
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError([Problem(str(exc), file=source)], what="holiday calendar") from exc
    return parse_holidays(data, source)


def _ranges(days: tuple[dt.date, ...]) -> str:
    """Sorted days -> `A .. B, C`: consecutive days as one range."""
    runs: list[list[dt.date]] = []
    for day in days:
        if runs and day == runs[-1][-1] + dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)


def format_notices(notices: Mapping[int, Notice]) -> str:
    """The YAML body of a holiday file for `notices`, one block per year (what load_holidays reads)."""
    blocks = []
    for year in sorted(notices):
        notice = notices[year]
        lines = [f"{year}:", "  holidays:"]
        lines += [f"    {name}: {_ranges(days)}" for name, days in notice.holidays.items() if days]
        lines.append(f"  workdays: [{', '.join(map(str, notice.workdays))}]")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


FILE_HEADER = """\
# Official public holidays and adjusted working days (调休) of mainland China: the bank's copy.
#
# One entry per State Council notice (国务院办公厅关于<年>部分节假日安排的通知), keyed by its year:
#   holidays: every day off of each holiday, by name. `A .. B` is every day from A to B; parts are
#             separated by commas. 元旦 days in the last days of December belong to the next
#             year's notice (2019's 元旦 was 2018-12-30 .. 2019-01-01).
#   workdays: the Saturdays and Sundays worked instead (调休), [] when none.
# A year absent here is not announced: calendar.holiday, calendar.holiday_day and
# calendar.is_workday are null that year and the run report says so. Nothing is guessed.
#
# 2004-2026 are generated from the chinese-calendar package and checked against it day by day
# (tests/test_calendar_official.py). Each November, when the notice for the next year is out:
#   pip install -U chinese-calendar      (once it ships the year; else type the entry in by hand)
#   python -m campaign_engine.facts.official_update import 2027
#   python -m campaign_engine.facts.official_update check
# then compare the new entry with the notice itself before committing.

"""


def format_holiday_file(notices: Mapping[int, Notice]) -> str:
    """The whole holiday file: FILE_HEADER, then one block per year."""
    return FILE_HEADER + format_notices(notices)
