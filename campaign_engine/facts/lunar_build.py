"""Writes campaign_engine/facts/lunar_table.py from lunar-python (the `test` extra).

    python -m campaign_engine.facts.lunar_build > campaign_engine/facts/lunar_table.py

The 1901-2099 lunar calendar is astronomy, not an announcement: the table never needs a
yearly update. Regenerate it only when lunar-python corrects its ephemeris; the test
tests/test_calendar_crosscheck.py::test_lunar_table_equals_lunar_python says when the committed
table and the installed lunar-python disagree.
"""

from __future__ import annotations

import datetime as dt
import sys
from importlib import metadata

from lunar_python import LunarYear, Solar  # type: ignore[import-untyped]

FIRST_LUNAR_YEAR = 1900  # solar January 1901 lies in lunar year 1900
LAST_LUNAR_YEAR = 2099
FIRST_SOLAR_YEAR = 1901
LAST_SOLAR_YEAR = 2099

# The 24 solar terms in solar-year order: term i falls in solar month i // 2 + 1.
TERM_NAMES = (
    "小寒", "大寒", "立春", "雨水", "惊蛰", "春分", "清明", "谷雨", "立夏", "小满", "芒种", "夏至",
    "小暑", "大暑", "立秋", "处暑", "白露", "秋分", "寒露", "霜降", "立冬", "小雪", "大雪", "冬至",
)

YearRow = tuple[int, str, int, tuple[int, ...]]


def lunar_years() -> list[YearRow]:
    """(lunar year, solar date of 正月初一, leap month or 0, day counts of its months in order)."""
    rows = []
    for year in range(FIRST_LUNAR_YEAR, LAST_LUNAR_YEAR + 1):
        months = LunarYear.fromYear(year).getMonthsInYear()
        leaps = [-m.getMonth() for m in months if m.getMonth() < 0]
        assert len(leaps) <= 1 and months[0].getMonth() == 1, (year, leaps)
        first = Solar.fromJulianDay(months[0].getFirstJulianDay())
        rows.append((year, dt.date(first.getYear(), first.getMonth(), first.getDay()).isoformat(),
                     leaps[0] if leaps else 0, tuple(m.getDayCount() for m in months)))
    return rows


def solar_terms() -> list[tuple[int, tuple[int, ...]]]:
    """(solar year, day of month of each of TERM_NAMES), in Beijing time."""
    rows = []
    for year in range(FIRST_SOLAR_YEAR, LAST_SOLAR_YEAR + 1):
        # lunar year `year` computes the terms from the 大雪 before it: 小寒 .. 大雪 of solar
        # `year` are its entries 2 .. 24, and that year's 冬至 is entry 25
        julian_days = LunarYear.fromYear(year).getJieQiJulianDays()
        days = []
        for i, name in enumerate(TERM_NAMES):
            solar = Solar.fromJulianDay(julian_days[i + 2])
            assert (solar.getYear(), solar.getMonth()) == (year, i // 2 + 1), (year, name, solar.toYmd())
            days.append(solar.getDay())
        rows.append((year, tuple(days)))
    return rows


def render() -> str:
    version = metadata.version("lunar-python")
    out = [
        f'"""Chinese lunar calendar {FIRST_LUNAR_YEAR}-{LAST_LUNAR_YEAR} and the 24 solar terms '
        f'{FIRST_SOLAR_YEAR}-{LAST_SOLAR_YEAR} (Beijing time).',
        "",
        f"Generated from lunar-python {version} by `python -m campaign_engine.facts.lunar_build`: do not edit.",
        "Read through campaign_engine.facts.lunar only.",
        '"""',
        "",
        "# the 24 solar terms in solar-year order: term i falls in solar month i // 2 + 1",
        f"TERM_NAMES: tuple[str, ...] = {TERM_NAMES!r}",
        "",
        "# (lunar year, solar date of 正月初一, leap month or 0, days of each month in order,",
        "#  the leap month right after the ordinary month of its number)",
        "LUNAR_YEARS: tuple[tuple[int, str, int, tuple[int, ...]], ...] = (",
    ]
    out += [f"    ({y}, {first!r}, {leap}, {days!r})," for y, first, leap, days in lunar_years()]
    out += [
        ")",
        "",
        "# solar year -> day of month of 小寒, 大寒, 立春 .. 大雪, 冬至 (term i in solar month i // 2 + 1)",
        "SOLAR_TERMS: dict[int, tuple[int, ...]] = {",
    ]
    out += [f"    {y}: {days!r}," for y, days in solar_terms()]
    out += ["}", ""]
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
