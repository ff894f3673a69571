"""The official calendar (config/holidays.yaml, campaign_engine.facts.official): holidays, 调休
working days, business days, and no guessing for a year not announced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import chinese_calendar
import pytest

from campaign_engine.errors import ConfigError
from campaign_engine.facts.official import (CalendarNotAnnounced, format_holiday_file, load_holidays,
                                            parse_days)
from campaign_engine.facts.official_update import (NAMES, covered_years, differences, import_years,
                                                   main, notices_from_chinese_calendar)
from campaign_engine.settings import PROJECT_ROOT
from campaign_engine.vocabulary import HOLIDAY_NAMES

D = dt.date
HOLIDAYS_FILE = PROJECT_ROOT / "config" / "holidays.yaml"


@pytest.fixture(scope="module")
def official():
    return load_holidays(HOLIDAYS_FILE)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the bank's file

def test_holidays_file_agrees_with_chinese_calendar_on_every_day_it_covers(official):
    assert covered_years() == range(2004, 2027)  # chinese-calendar 1.11.0; a newer one adds years
    assert differences(official) == []
    checked = 0
    for year in covered_years():
        day = D(year, 1, 1)
        while day.year == year:
            if official.known(day):
                assert official.is_workday(day) == chinese_calendar.is_workday(day), day
                assert official.holiday(day) == NAMES.get(chinese_calendar.holidays.get(day, "")), day
                checked += 1
            day += dt.timedelta(days=1)
    assert checked == (D(2026, 12, 28) - D(2004, 1, 1)).days + 1  # all but 2026-12-29 .. 31 (2027's notice)


def test_holidays_file_is_exactly_what_chinese_calendar_generates(official):
    generated = notices_from_chinese_calendar(covered_years())
    assert dict(official.notices) == generated
    assert HOLIDAYS_FILE.read_text(encoding="utf-8") == format_holiday_file(generated)


def test_holidays_file_announces_nothing_after_2026(official):
    assert [y for y in range(2004, 2100) if official.announced(y)] == list(range(2004, 2027))


def test_holiday_names_every_day_of_the_block_2026_spring_festival(official):
    block = [D(2026, 2, 15) + dt.timedelta(days=i) for i in range(9)]
    assert [official.holiday(d) for d in block] == ["春节"] * 9
    assert [official.holiday_day(d) for d in block] == list(range(1, 10))
    assert official.holiday(D(2026, 2, 14)) is None and official.holiday(D(2026, 2, 24)) is None


@pytest.mark.parametrize("day, name, n", [
    (D(2025, 1, 28), "春节", 1),  # the old file said 01-29, the festival day
    (D(2025, 10, 6), "中秋节", 1),  # inside 国庆 2025 (chinese-calendar names that day 中秋节)
    (D(2025, 10, 7), "国庆节", 6),
    (D(2026, 4, 4), "清明节", 1),  # the old file said 04-05
    (D(2026, 9, 25), "中秋节", 1),
    (D(2019, 1, 1), "元旦", 3),  # 2018-12-30 was its first day
])
def test_holiday_day_counts_the_days_off_of_that_holiday(official, day, name, n):
    assert (official.holiday(day), official.holiday_day(day)) == (name, n)


def test_holiday_2019_new_year_starts_in_december_2018(official):
    assert [official.holiday_day(D(2018, 12, 30)), official.holiday_day(D(2018, 12, 31))] == [1, 2]
    assert official.is_workday(D(2018, 12, 29))  # Saturday worked, announced in 2019's notice


@pytest.mark.parametrize("day, works", [
    (D(2026, 2, 14), True),  # Saturday worked (调休)
    (D(2026, 2, 28), True),
    (D(2026, 2, 17), False),  # 春节
    (D(2026, 2, 23), False),  # Monday, still 春节
    (D(2026, 3, 7), False),  # an ordinary Saturday
    (D(2026, 3, 9), True),  # an ordinary Monday
    (D(2026, 10, 8), True),
    (D(2026, 10, 10), True),
    (D(2026, 9, 20), True),
])
def test_is_workday_official_2026(official, day, works):
    assert official.is_workday(day) is works


# --------------------------------------------------------------------------- not announced

@pytest.mark.parametrize("call", ["holiday", "holiday_day", "is_workday", "next_business_day"])
def test_unannounced_year_raises_calendar_not_announced(official, call):
    with pytest.raises(CalendarNotAnnounced) as err:
        getattr(official, call)(D(2027, 2, 6))
    assert err.value.year == 2027 and "2027" in str(err.value) and "holidays.yaml" in str(err.value)


def test_unannounced_last_days_of_december_wait_for_the_next_notice(official):
    assert official.is_workday(D(2026, 12, 28))
    with pytest.raises(CalendarNotAnnounced) as err:
        official.is_workday(D(2026, 12, 29))
    assert err.value.year == 2027
    assert not official.known(D(2026, 12, 31)) and official.known(D(2025, 12, 31))


def test_announced_is_about_the_notice_year(official):
    assert official.announced(2026) and not official.announced(2027) and not official.announced(2003)


# --------------------------------------------------------------------------- business days

def test_next_business_day_is_the_day_itself_when_a_workday(official):
    assert official.next_business_day(D(2026, 3, 9)) == D(2026, 3, 9)
    assert official.next_business_day(D(2026, 2, 14)) == D(2026, 2, 14)  # a Saturday worked


def test_next_business_day_rolls_over_weekends_and_holidays(official):
    assert official.next_business_day(D(2026, 3, 7)) == D(2026, 3, 9)
    assert official.next_business_day(D(2026, 2, 15)) == D(2026, 2, 24)
    assert official.next_business_day(D(2026, 10, 1)) == D(2026, 10, 8)


def test_next_business_day_rolling_into_an_unannounced_year_raises(tmp_path):
    calendar = load_holidays(_write(tmp_path, "2027:\n  holidays:\n    国庆节: 2027-12-24 .. 2027-12-28\n  workdays: []\n"))
    with pytest.raises(CalendarNotAnnounced) as err:
        calendar.next_business_day(D(2027, 12, 24))  # off to Tuesday 12-28, then 12-29 .. 31 unknown
    assert err.value.year == 2028 and err.value.day == D(2027, 12, 29)


def test_business_days_between_counts_workdays_after_a_up_to_b(official):
    assert official.business_days_between(D(2026, 3, 6), D(2026, 3, 9)) == 1  # Friday -> Monday
    assert official.business_days_between(D(2026, 3, 9), D(2026, 3, 9)) == 0
    assert official.business_days_between(D(2026, 3, 9), D(2026, 3, 6)) == -1
    # 02-13 (Fri) .. 02-28: 02-14 worked, 02-15 .. 02-23 off, 02-24 .. 02-27, 02-28 worked
    assert official.business_days_between(D(2026, 2, 13), D(2026, 2, 28)) == 6


def test_business_days_between_agrees_with_counting_day_by_day(official):
    a = D(2024, 12, 20)
    for b in (D(2025, 1, 5), D(2025, 10, 12), D(2026, 12, 28)):
        count = sum(official.is_workday(a + dt.timedelta(days=i)) for i in range(1, (b - a).days + 1))
        assert official.business_days_between(a, b) == count


def test_business_days_between_across_an_unannounced_year_raises(official):
    with pytest.raises(CalendarNotAnnounced):
        official.business_days_between(D(2026, 3, 9), D(2027, 3, 9))


# --------------------------------------------------------------------------- the file format

def test_parse_days_ranges_and_single_days():
    assert parse_days("2025-10-01 .. 2025-10-03, 2025-10-07") == [D(2025, 10, 1), D(2025, 10, 2), D(2025, 10, 3),
                                                                  D(2025, 10, 7)]
    assert parse_days(D(2026, 1, 1)) == [D(2026, 1, 1)]


GOOD = """\
2027:
  holidays:
    元旦: 2027-01-01 .. 2027-01-03
  workdays: []
"""


def test_load_holidays_reads_a_hand_written_year(tmp_path):
    calendar = load_holidays(_write(tmp_path, GOOD))
    assert calendar.announced(2027) and calendar.holiday(D(2027, 1, 3)) == "元旦"
    assert calendar.is_workday(D(2027, 1, 4))


@pytest.mark.parametrize("text, line, reason", [
    ("2027:\n  holidays:\n    元旦: 2027-01-01 .. 2027-13-03\n  workdays: []\n", 3, "not a YYYY-MM-DD date"),
    ("2027:\n  holidays:\n    元旦: 2027-01-03 .. 2027-01-01\n  workdays: []\n", 3, "ends before it starts"),
    ("2027:\n  holidays:\n    春节: 2026-02-06\n  workdays: []\n", 3, "outside the notice for 2027"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n    春节: 2027-01-01\n  workdays: []\n", 4, "listed twice (line 3)"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n  workdays: [2027-01-04]\n", 4, "is a Monday"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n  workdays:\n    - 2027-01-09\n    - 2027-01-01\n", 6, "is a Friday"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n", 1, "`workdays:` must list"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n  workdays: []\n  note: x\n", 5, "unknown key 'note'"),
    ("2027:\n  holidays: [2027-01-01]\n  workdays: []\n", 2, "`holidays:` must map"),
    ("twenty:\n  holidays: {}\n  workdays: []\n", 1, "is not a year"),
    ("2027:\n  holidays:\n    元旦: 2027-01-01\n    中秋: 2027-09-15\n  workdays: []\n", 4,
     "'中秋' is not an official holiday's name"),
    ("- 2027-01-01\n", 1, "expected a mapping"),
])
def test_load_holidays_bad_entry_is_a_config_error_naming_its_line(tmp_path, text, line, reason):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_holidays(path)
    [problem] = err.value.problems
    assert (problem.file, problem.line) == (str(path), line)
    assert reason in problem.reason


def test_load_holidays_reports_every_bad_entry_at_once(tmp_path):
    text = "2027:\n  holidays:\n    元旦: 2027-01-0x\n  workdays: [2027-01-04]\n"
    with pytest.raises(ConfigError) as err:
        load_holidays(_write(tmp_path, text))
    assert [p.line for p in err.value.problems] == [3, 4]


def test_load_holidays_yaml_syntax_error_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_holidays(_write(tmp_path, "2027: {holidays: [\n"))


def test_load_holidays_empty_file_announces_nothing(tmp_path):
    assert not load_holidays(_write(tmp_path, "# nothing yet\n")).announced(2026)


# --------------------------------------------------------------------------- updating the file

def test_import_years_refuses_a_year_chinese_calendar_lacks(tmp_path):
    path = _write(tmp_path, GOOD)
    with pytest.raises(ValueError, match="not 2099.*by hand"):
        import_years(path, [2099])  # any year past what the installed package ships
    assert path.read_text(encoding="utf-8") == GOOD


def test_import_years_adds_a_year_and_keeps_the_others(tmp_path):
    path = _write(tmp_path, GOOD)
    calendar = import_years(path, [2026])
    assert sorted(calendar.notices) == [2026, 2027]
    assert calendar.holiday(D(2026, 2, 15)) == "春节" and calendar.holiday(D(2027, 1, 2)) == "元旦"


def test_official_update_names_are_the_names_rules_may_compare():
    # chinese-calendar's English names map onto exactly the vocabulary calendar.holiday accepts
    assert sorted(NAMES.values()) == sorted(HOLIDAY_NAMES)


def test_official_update_check_passes_on_the_bank_file(capsys):
    assert main(["--file", str(HOLIDAYS_FILE), "check"]) == 0
    assert "every day agrees" in capsys.readouterr().out


def test_official_update_check_names_a_day_that_differs(tmp_path, capsys):
    text = HOLIDAYS_FILE.read_text(encoding="utf-8").replace(
        "workdays: [2026-01-04, 2026-02-14,", "workdays: [2026-01-04,")
    assert main(["--file", str(_write(tmp_path, text)), "check"]) == 1
    assert "2026-02-14: file says holiday=None workday=False" in capsys.readouterr().err
