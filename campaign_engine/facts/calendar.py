"""The holiday calendar (config/holidays.yaml) and the calendar.* namespace."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..errors import ConfigError, Problem


@dataclass(frozen=True)
class HolidayCalendar:
    """Date -> holiday name (the first day of each official holiday)."""

    days: Mapping[dt.date, str] = field(default_factory=dict)

    def holiday(self, day: dt.date) -> str | None:
        return self.days.get(day)


def load_holidays(path: Path) -> HolidayCalendar:
    """Read `YYYY-MM-DD: name` lines; a bad line is a ConfigError naming it."""
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8-sig")) or {}
    except (OSError, YAMLError) as exc:
        raise ConfigError([Problem(str(exc), file=str(path))], what="holiday calendar") from exc
    if not isinstance(data, dict):
        raise ConfigError([Problem("expected a mapping of date: name", file=str(path))],
                          what="holiday calendar")
    days: dict[dt.date, str] = {}
    problems = []
    for key, name in data.items():
        try:
            day = key if isinstance(key, dt.date) else dt.date.fromisoformat(str(key))
        except ValueError:
            problems.append(Problem(f"{key!r} is not a YYYY-MM-DD date", file=str(path)))
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(Problem(f"{day}: holiday name must be text", file=str(path)))
            continue
        days[day] = name.strip()
    if problems:
        raise ConfigError(problems, what="holiday calendar")
    return HolidayCalendar(days)


def calendar_facts(today: dt.date, holidays: HolidayCalendar) -> dict[str, Any]:
    """calendar.date, calendar.weekday (1 = Monday .. 7 = Sunday), calendar.holiday."""
    return {"date": today, "weekday": today.isoweekday(), "holiday": holidays.holiday(today)}
