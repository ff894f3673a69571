"""Keeps config/holidays.yaml in step with the chinese-calendar package (the `test` extra).

    python -m campaign_engine.facts.official_update check [--file config/holidays.yaml]
    python -m campaign_engine.facts.official_update import 2027 [2028 ..] [--file ..]

`check` loads the file (every bad entry named by line) and compares each day of every year
both cover; `import` (re)writes those years' entries from chinese-calendar, leaving the
others as they are, and fails loudly for a year it does not ship yet. chinese-calendar
publishes a new year a few days after the State Council's notice (usually November): until
then, type the year in by hand from the notice and run `check`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Iterable, Sequence

import chinese_calendar  # type: ignore[import-untyped]

from ..errors import ConfigError
from .official import HolidayCalendar, Notice, SPILL_FROM, format_holiday_file, load_holidays

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "holidays.yaml"  # the source tree's

# chinese-calendar's holiday names -> the names rules and templates use (calendar.holiday)
NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",  # 2015-09-03 .. 09-04 (and Saturday 09-05)
}


def covered_years() -> range:
    """The years the installed chinese-calendar has data for."""
    years = [d.year for d in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def _notice_year(day: dt.date) -> int:
    """The notice a chinese-calendar day belongs to: late December days go with the next year."""
    return day.year + 1 if (day.month, day.day) >= SPILL_FROM else day.year


def notices_from_chinese_calendar(years: Iterable[int]) -> dict[int, Notice]:
    """The notices for `years`, from chinese-calendar; ValueError for a year it does not cover."""
    wanted = sorted(set(years))
    covered = covered_years()
    missing = [y for y in wanted if y not in covered]
    if missing:
        version = getattr(chinese_calendar, "__version__", "?")
        raise ValueError(f"chinese-calendar {version} covers {covered.start}-{covered.stop - 1}, not "
                         f"{', '.join(map(str, missing))}: upgrade it (pip install -U chinese-calendar) or "
                         "enter the State Council's notice by hand")
    holidays: dict[int, dict[str, list[dt.date]]] = {y: {} for y in wanted}
    workdays: dict[int, list[dt.date]] = {y: [] for y in wanted}
    for day, name in sorted(chinese_calendar.holidays.items()):
        if _notice_year(day) in holidays:
            holidays[_notice_year(day)].setdefault(NAMES[name], []).append(day)
    for day in sorted(chinese_calendar.workdays):
        if _notice_year(day) in workdays:
            workdays[_notice_year(day)].append(day)
    return {y: Notice(y, {name: tuple(days) for name, days in holidays[y].items()}, tuple(workdays[y]))
            for y in wanted}


def differences(calendar: HolidayCalendar, years: Iterable[int] | None = None) -> list[str]:
    """Each day of `years` (default: all chinese-calendar covers) where the file and chinese-calendar disagree."""
    out = []
    for year in years if years is not None else covered_years():
        if not calendar.announced(year):
            out.append(f"{year}: not in the file")
            continue
        day = dt.date(year, 1, 1)
        while day.year == year:
            if calendar.known(day):
                ours = (calendar.holiday(day), calendar.is_workday(day))
                theirs = (NAMES.get(chinese_calendar.holidays.get(day, "")), chinese_calendar.is_workday(day))
                if ours != theirs:
                    out.append(f"{day}: file says holiday={ours[0]} workday={ours[1]}, "
                               f"chinese-calendar holiday={theirs[0]} workday={theirs[1]}")
            day += dt.timedelta(days=1)
    return out


def import_years(path: Path, years: Sequence[int]) -> HolidayCalendar:
    """Rewrite `path` with `years` taken from chinese-calendar and its other years kept."""
    notices = dict(load_holidays(path).notices) if path.exists() else {}
    notices.update(notices_from_chinese_calendar(years))
    path.write_text(format_holiday_file(notices), encoding="utf-8")
    return load_holidays(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m campaign_engine.facts.official_update",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the holiday file (%(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate the file and compare it with chinese-calendar")
    imp = commands.add_parser("import", help="(re)write years from chinese-calendar")
    imp.add_argument("years", type=int, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            calendar = import_years(args.file, args.years)
            print(f"{args.file}: wrote {', '.join(map(str, args.years))} from chinese-calendar")
        else:
            calendar = load_holidays(args.file)
    except (ValueError, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return 1
    years = sorted(calendar.notices)
    print(f"{args.file}: announced {years[0]}-{years[-1]}" if years else f"{args.file}: no year announced")
    problems = differences(calendar, [y for y in covered_years() if calendar.announced(y)])
    for line in problems:
        print(line, file=sys.stderr)
    print(f"chinese-calendar {covered_years().start}-{covered_years().stop - 1}: "
          + (f"{len(problems)} day(s) differ" if problems else "every day agrees"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
