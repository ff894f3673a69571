"""Business days: payout dates, business days to maturity (selected through the maturity index),
and schedules that run on official working days only (workdays_only)."""

from __future__ import annotations

import datetime as dt

import pytest
from factories import customer, deposit, rule_yaml, run_day, world_cli

from campaign_engine.facts.derived import business_days_to_maturity, business_maturity_window, payout_date
from campaign_engine.facts.official import CalendarNotAnnounced, load_holidays
from campaign_engine.pipeline.calendar_checks import workday_skip
from campaign_engine.pipeline.validate import calendar_warnings
from campaign_engine.rulebook import parse_rule_text
from campaign_engine.selection.plan import plan_candidates
from campaign_engine.settings import PROJECT_ROOT

D = dt.date
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def official():
    return load_holidays(PROJECT_ROOT / "config" / "holidays.yaml")


def morning(day: dt.date) -> dt.datetime:
    """10:00 in Shanghai on `day`: inside the SMS window, so messages are queued."""
    return dt.datetime.combine(day, dt.time(2, 0), tzinfo=UTC)


def parse(text: str):
    rules, problems = parse_rule_text(text, "r.yaml")
    assert problems == [], problems
    return rules[0]


DEPOSIT_TRIGGER = '{schedule: "0 9 * * *", subject: deposit}'
BUSINESS = "  deposit.business_days_to_maturity: {between: [0, 3]}\n"


# --------------------------------------------------------------------------- payout dates

def test_payout_date_of_a_deposit_maturing_on_national_day_2026_is_october_8(official):
    assert payout_date(D(2026, 10, 3), official) == D(2026, 10, 8)
    assert business_days_to_maturity(D(2026, 10, 3), D(2026, 9, 30), official) == 1  # 10-08 is the next one


def test_sunday_2026_09_20_is_a_working_day_and_pays_out_itself(official):
    assert D(2026, 9, 20).isoweekday() == 7
    assert official.is_workday(D(2026, 9, 20))
    assert payout_date(D(2026, 9, 20), official) == D(2026, 9, 20)


@pytest.mark.parametrize("today", [D(2025, 1, 1) + dt.timedelta(days=n) for n in range(0, 665, 4)])
@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (0, 3), (1, 5), (-2, 2), (0, 10)])
def test_business_maturity_window_is_exactly_the_matching_maturities(official, today, lo, hi):
    first, last = business_maturity_window(today, lo, hi, official)
    days = [today + dt.timedelta(days=n) for n in range(-30, 45)]
    matching = [m for m in days if lo <= business_days_to_maturity(m, today, official) <= hi]
    assert matching == [m for m in days if first <= m <= last]


def test_business_maturity_window_open_sides(official):
    first, last = business_maturity_window(D(2026, 9, 28), None, 3, official)
    assert first is None and last == D(2026, 10, 8)  # 09-29, 09-30, then 10-08 (10-01..07 off)
    first, last = business_maturity_window(D(2026, 9, 28), 2, None, official)
    assert first == D(2026, 9, 30) and last is None


def test_business_maturity_window_reaching_an_unannounced_year_raises(official):
    with pytest.raises(CalendarNotAnnounced) as caught:
        business_maturity_window(D(2026, 12, 24), 0, 3, official)  # 12-29 waits for the 2027 notice
    assert caught.value.year == 2027


def test_plan_candidates_business_days_narrow_the_maturity_dates_read(official):
    rule = parse(rule_yaml("r", BUSINESS, trigger=DEPOSIT_TRIGGER))
    plan = plan_candidates(rule, D(2026, 9, 28), {"calendar": {}}, official)
    assert (plan.maturity_from, plan.maturity_to) == (D(2026, 9, 25), D(2026, 10, 8))
    both = parse(rule_yaml("r", "  all:\n    - deposit.business_days_to_maturity: {between: [0, 3]}\n"
                                "    - deposit.days_to_maturity: {lte: 5}\n", trigger=DEPOSIT_TRIGGER))
    plan = plan_candidates(both, D(2026, 9, 28), {"calendar": {}}, official)
    assert (plan.maturity_from, plan.maturity_to) == (D(2026, 9, 25), D(2026, 10, 3))


# --------------------------------------------------------------------------- a run

def test_business_days_rule_reminds_of_deposits_paid_out_within_three_working_days(world, official):
    world.rule("r.yaml", rule_yaml("bd", BUSINESS, category="service", trigger=DEPOSIT_TRIGGER))
    world.add("customers", customer("C1"))
    maturities = {"D1": D(2026, 10, 3), "D2": D(2026, 10, 10), "D3": D(2026, 10, 11), "D4": D(2026, 9, 29)}
    world.add("deposits", *(deposit(d, "C1", maturity_date=m) for d, m in maturities.items()))
    report = run_day(world.services(), today=D(2026, 9, 30), now=morning(D(2026, 9, 30)))
    [stats] = report["rules"]
    # D1: paid 10-08 (1 working day); D2: Saturday 10-10, worked (3: 10-08, 10-09, 10-10); D3, a
    # Sunday: paid 10-12 (4); D4 was paid out yesterday (-1). The maturity index read 09-30 .. 10-10.
    assert (stats["error"], stats["candidates"], stats["matched"]) == (None, 2, 2)
    assert sorted(m.subject_id for m in world.messages()) == ["D1", "D2"]


def test_td_maturity_reminder_says_when_the_money_is_paid_out(world):
    import shutil

    shutil.copy(PROJECT_ROOT / "rules" / "td_maturity.yaml", world.settings.rules_dir)
    shutil.copytree(PROJECT_ROOT / "templates" / "td_maturity", world.settings.templates_dir / "td_maturity")
    world.add("customers", customer("C1", email=None))
    world.add("deposits", deposit("D1", "C1", maturity_date=D(2026, 10, 3)),
              deposit("D2", "C1", maturity_date=D(2026, 9, 29)))
    run_day(world.services(), today=D(2026, 9, 28), now=morning(D(2026, 9, 28)))
    bodies = {m.subject_id: m.body for m in world.messages()}
    assert "2026年10月3日到期（遇节假日，本息10月8日到账）" in bodies["D1"]
    assert "到账" not in bodies["D2"]  # a working day: paid out on its maturity date


def test_business_days_rule_over_a_window_into_an_unannounced_year_is_reported(world):
    world.rule("r.yaml", rule_yaml("bd", BUSINESS, category="service", trigger=DEPOSIT_TRIGGER))
    world.rule("b.yaml", rule_yaml("birthday", "  customer.days_to_birthday: 0\n"))
    world.add("customers", customer("C1", birth_date=D(1980, 12, 24)))
    world.add("deposits", deposit("D1", "C1", maturity_date=D(2026, 12, 28)))
    report = run_day(world.services(), today=D(2026, 12, 24), now=morning(D(2026, 12, 24)))
    stats = {r["rule"]: r for r in report["rules"]}
    assert report["status"] == "completed_with_errors"
    assert stats["bd"]["error"].startswith("the official calendar for 2027 is not announced yet: "
                                           "deposit.business_days_to_maturity on 2026-12-29 is unknown")
    assert stats["birthday"]["error"] is None and stats["birthday"]["queued"] == 1  # the others run


# --------------------------------------------------------------------------- workdays_only

WORKDAYS = '{schedule: "0 9 * * *", subject: customer, workdays_only: true}'


@pytest.mark.parametrize(("day", "why"), [
    (D(2026, 10, 1), "2026-10-01 is not an official working day (国庆节, day 1 of the holiday)"),
    (D(2026, 3, 14), "2026-03-14 is not an official working day (a Saturday)"),
])
def test_workdays_only_rule_is_skipped_on_a_day_off_and_the_report_says_why(world, day, why):
    world.rule("r.yaml", rule_yaml("wd", "  customer.tier: gold\n", trigger=WORKDAYS))
    world.add("customers", customer("C1"))
    report = run_day(world.services(), today=day, now=morning(day))
    [stats] = report["rules"]
    assert report["status"] == "completed" and stats["error"] is None
    assert stats["skipped"].startswith(why) and "workdays_only" in stats["skipped"]
    assert (stats["candidates"], world.messages()) == (0, [])


@pytest.mark.parametrize("day", [D(2026, 9, 20), D(2026, 3, 10)])  # a Sunday worked (调休), a Tuesday
def test_workdays_only_rule_runs_on_a_working_day(world, day):
    world.rule("r.yaml", rule_yaml("wd", "  customer.tier: gold\n", trigger=WORKDAYS))
    world.add("customers", customer("C1"))
    [stats] = run_day(world.services(), today=day, now=morning(day))["rules"]
    assert "skipped" not in stats and stats["queued"] == 1


def test_workdays_only_rule_in_an_unannounced_year_is_reported_not_guessed(world):
    world.rule("r.yaml", rule_yaml("wd", "  customer.tier: gold\n", trigger=WORKDAYS))
    world.add("customers", customer("C1"))
    [stats] = run_day(world.services(), today=D(2027, 1, 5), now=morning(D(2027, 1, 5)))["rules"]
    assert stats["error"].startswith("the official calendar for 2027 is not announced yet: whether it is an "
                                     "official working day (the rule has workdays_only) on 2027-01-05 is unknown")


def test_workdays_only_text_report_says_why_it_was_skipped(world):
    world.rule("r.yaml", rule_yaml("wd", "  customer.tier: gold\n", trigger=WORKDAYS))
    result = world_cli(world)("run", "--all", "--date", "2026-10-02", "--dry-run")  # the rule, published
    assert result.exit_code == 0, result.output
    assert "  skipped: 2026-10-02 is not an official working day (国庆节, day 2 of the holiday)" in result.output


def test_workday_skip_none_for_a_rule_without_workdays_only(official):
    rule = parse(rule_yaml("r", "  customer.tier: gold\n"))
    assert workday_skip(rule, D(2026, 10, 1), official) is None


@pytest.mark.parametrize(("trigger", "reason"), [
    ('{event: rate_change, subject: customer, workdays_only: true}', "workdays_only is for schedules"),
    ('{schedule: "0 9 * * *", subject: customer, workdays_only: "yes"}', "Not a valid boolean."),
])
def test_workdays_only_refused_on_events_and_when_not_a_boolean(trigger, reason):
    _, problems = parse_rule_text(rule_yaml("r", "  customer.tier: gold\n", trigger=trigger), "r.yaml")
    assert [p.field for p in problems] == ["trigger.workdays_only"]
    assert reason in problems[0].reason


# --------------------------------------------------------------------------- said plainly

def test_calendar_warnings_name_the_year_and_the_rules_it_stops(official):
    from campaign_engine.rulebook.loader import Rulebook

    rules = {r.id: r for r in (
        parse(rule_yaml("wd", "  customer.tier: gold\n", trigger=WORKDAYS)),
        parse(rule_yaml("hol", "  calendar.is_workday: false\n")),
        parse(rule_yaml("own", "  any:\n    - calendar.announced: false\n    - calendar.is_workday: true\n")),
        parse(rule_yaml("festival", "  calendar.festival: 春节\n")))}
    book = Rulebook(rules)
    assert calendar_warnings(book, official, D(2026, 3, 10)) == []
    [warning] = calendar_warnings(book, official, D(2027, 2, 6))
    assert warning.reason.startswith("the official calendar for 2027 is not announced yet")
    assert "rule(s) hol, wd need it" in warning.reason and warning.file == official.source


def test_rules_validate_warns_of_an_unannounced_run_date(world):
    from click.testing import CliRunner

    from campaign_engine.cli import main

    world.rule("r.yaml", rule_yaml("hol", "  calendar.holiday: 春节\n"))
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir)}
    result = CliRunner().invoke(main, ["rules", "validate", "--date", "2027-02-06"], env=env)
    assert result.exit_code == 0, result.output
    assert "holidays.yaml: the official calendar for 2027 is not announced yet" in result.output
    assert "rule(s) hol need it" in result.output
    quiet = CliRunner().invoke(main, ["rules", "validate", "--date", "2026-02-06"], env=env)
    assert "not announced" not in quiet.output


def test_holiday_rule_on_an_unannounced_date_is_an_error_not_a_silent_false(world):
    world.rule("r.yaml", rule_yaml("hol", "  calendar.holiday: 春节\n"))
    world.rule("f.yaml", rule_yaml("festival", "  calendar.festival: 春节\n"))
    world.add("customers", customer("C1"))
    report = run_day(world.services(), today=D(2027, 2, 6), now=morning(D(2027, 2, 6)))
    stats = {r["rule"]: r for r in report["rules"]}
    assert stats["hol"]["error"].startswith("the official calendar for 2027 is not announced yet: "
                                            "calendar.holiday on 2027-02-06 is unknown")
    assert stats["festival"]["error"] is None and stats["festival"]["queued"] == 1  # 春节 2027, from the moon


def test_readyz_says_whether_todays_official_calendar_is_announced(world):
    from campaign_engine.api import create_app

    world.rule("r.yaml", rule_yaml("hol", "  calendar.holiday: 春节\n"))
    for day, expected in ((D(2026, 3, 10), "announced for 2026-03-10"),
                          (D(2027, 3, 10), "the official calendar for 2027 is not announced yet")):
        world.publish()
        app = create_app(world.settings, clock=lambda day=day: morning(day))
        try:
            resp = app.test_client().get("/readyz")
        finally:
            app.extensions["campaign"].runtime.close()
        assert resp.status_code == 200 and resp.get_json()["calendar"].startswith(expected), resp.get_json()
    assert "rule(s) hol need it" in resp.get_json()["calendar"]
