"""Campaign windows (`active`) and how often one subject may get a rule (`once`, `every`, `campaign`):
the rule file's keys and their problems, the idempotency keys, the `repeat_window` suppression, the
window's skip in runs, events and previews, and the scheduler's next run."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from campaign_engine.effect.assignment import held_out, holdout_salt
from campaign_engine.evaluation.engine import RuleEngine
from campaign_engine.pipeline import get_report, preview
from campaign_engine.rulebook.loader import load_rulebook, parse_rule_text
from campaign_engine.scheduler import build_scheduler, fire
from campaign_engine.triggers import cron_trigger
from campaign_engine.runtime import Runtime
from campaign_engine.store import scheduler_jobs
from campaign_engine.store.models import Message
from campaign_engine.vocabulary import EventType, OnceMode
from factories import World, customer, deposit, fire_event, rule_yaml, run_day

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
GOLD = "  customer.tier: gold\n"  # every test customer matches
DAILY = '{schedule: "0 9 * * *", subject: customer}'
DEPOSITS = '{schedule: "0 9 * * *", subject: deposit}'
MATURING = "  deposit.days_to_maturity: {between: [0, 7]}\n"
BIG = "{event: large_transaction}"
LARGE = "  event.amount: {gte: 500000}\n"


def nine(day: dt.date) -> dt.datetime:
    """09:00 in Shanghai on `day` (what the scheduler's `0 9 * * *` passes a run)."""
    return dt.datetime.combine(day, dt.time(9), tzinfo=SHANGHAI).astimezone(UTC)


def live(world: World) -> Any:
    """The world's services running its rule folder as it is now.

    World.services() runs the rules published to the database; while the World in factories does not
    publish its rule folder (the publishing work is in progress), the folder is loaded here instead.
    """
    services = world.services()
    folder = load_rulebook(world.settings.rules_dir, world.settings.templates_dir)
    if {r: v.definition_hash for r, v in services.rulebook.rules.items()} != \
            {r: v.definition_hash for r, v in folder.rules.items()}:
        services.rulebook = folder
        services.engine = RuleEngine(folder.rules.values())
    return services


def day(world: World, when: dt.date, *, now: dt.datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Every enabled scheduled rule for `when`, at 09:00 there unless `now`; its one rule's counts."""
    report = run_day(live(world), today=when, now=now or nine(when), dry_run=dry_run)
    [counts] = report["rules"]
    return counts


def big(event_id: str, customer_id: str = "C1", *, at: dt.datetime) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer_id, "account_no": "6222020012345678",
            "amount": 800000, "direction": "in", "occurred_at": at.isoformat()}


def event(world: World, payload: dict[str, Any], *, now: dt.datetime, dry_run: bool = False) -> dict[str, Any]:
    report = fire_event(live(world), EventType.LARGE_TRANSACTION, payload, now=now, dry_run=dry_run)
    [counts] = report["rules"]
    return counts


def keys(world: World, **where: Any) -> list[str]:
    return [m.dedupe_key for m in world.messages(**where)]


def set_status(world: World, status: str) -> None:
    with world.engine.begin() as conn:
        conn.execute(update(Message).values(status=status))


# --------------------------------------------------------------------------- the rule file


def rule_file(extra: str, *, trigger: str = DAILY, conditions: str = GOLD) -> str:
    return rule_yaml("r", conditions, category="service", trigger=trigger, channels="[sms]", extra=extra)


def only(text: str) -> Any:
    rules, problems = parse_rule_text(text, "w.yaml")
    assert problems == [] and len(rules) == 1
    return rules[0]


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if fragment in line)


def test_defaults_keep_todays_idempotency():
    customer_rule = only(rule_file(""))
    deposit_rule = only(rule_file("", trigger=DEPOSITS, conditions=MATURING))
    event_rule = only(rule_file("", trigger=BIG, conditions=LARGE))
    assert (customer_rule.once, customer_rule.once_mode) == (None, OnceMode.PER_RUN_DATE)
    assert deposit_rule.once_mode is OnceMode.PER_OCCURRENCE
    assert event_rule.once_mode is OnceMode.PER_EVENT
    for rule in (customer_rule, deposit_rule, event_rule):
        assert (rule.active_from, rule.active_until, rule.window, rule.every_days, rule.campaign) == \
            (None, None, None, None, None)
        assert rule.campaign_id == "r" and rule.active_on(dt.date(1900, 1, 1))


def test_window_once_every_and_campaign_parse_into_the_rule():
    rule = only(rule_file("active: {from: 2026-12-01, until: 2026-12-31}\nonce: per_campaign\n"
                          "campaign: spring-2027\n"))
    assert (rule.active_from, rule.active_until) == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    assert (rule.once, rule.campaign_id, rule.window) == (OnceMode.PER_CAMPAIGN, "spring-2027",
                                                         "2026-12-01..2026-12-31")
    assert not rule.active_on(dt.date(2026, 11, 30)) and rule.active_on(dt.date(2026, 12, 1))
    assert rule.active_on(dt.date(2026, 12, 31)) and not rule.active_on(dt.date(2027, 1, 1))
    open_ended = only(rule_file("active:\n  until: '2026-12-31'\nevery: 30d\n"))
    assert (open_ended.active_from, open_ended.active_until, open_ended.window) == \
        (None, dt.date(2026, 12, 31), "..2026-12-31")
    assert (open_ended.every_days, open_ended.once) == (30, None)
    assert only(rule_file("active: {from: 2028-02-29}\nevery: 3660d\n")).window == "2028-02-29.."
    assert only(rule_file("once: per_occurrence\n", trigger=DEPOSITS, conditions=MATURING)).once \
        is OnceMode.PER_OCCURRENCE
    assert only(rule_file("once: per_campaign\n", trigger=BIG, conditions=LARGE)).campaign_id == "r"


@pytest.mark.parametrize("extra, trigger, conditions, where, field, reason", [
    ("active:\n  from: 2026-02-30\n", DAILY, GOLD, "2026-02-30", "active.from", "2026-02-30 is not a date"),
    ("active:\n  from: 2026-12-01\n  until: 2026-13-01\n", DAILY, GOLD, "2026-13-01", "active.until",
     "is not a date"),
    ("active: {from: '2026-12-1'}\n", DAILY, GOLD, "active", "active.from", "expected a date YYYY-MM-DD"),
    ("active:\n  from: 2026-12-31\n  until: 2026-12-01\n", DAILY, GOLD, "until:", "active.until",
     "until 2026-12-01 is before from 2026-12-31"),
    ("active:\n  from: 2026-12-01\n  untill: 2026-12-31\n", DAILY, GOLD, "untill", "active.untill",
     "did you mean 'until'?"),
    ("active:\n  form: 2026-12-01\n", DAILY, GOLD, "form", "active.form", "did you mean 'from'?"),
    ("active: {}\n", DAILY, GOLD, "active", "active", "give from, until or both"),
    ("every: 30\n", DAILY, GOLD, "every", "every", "a number of days, 1d to 3660d"),
    ("every: 30 days\n", DAILY, GOLD, "every", "every", "a number of days"),
    ("every: 0d\n", DAILY, GOLD, "every", "every", "a number of days"),
    ("every: 3661d\n", DAILY, GOLD, "every", "every", "a number of days"),
    ("once: per_run_date\nevery: 7d\n", DAILY, GOLD, "every", "every", "give once or every, not both"),
    ("once: daily\n", DAILY, GOLD, "once", "once", "Must be one of"),
    ("onc: per_campaign\n", DAILY, GOLD, "onc:", "onc", "did you mean 'once'?"),
    ("once: per_event\n", DAILY, GOLD, "once", "once", "per_event is for event rules"),
    ("once: per_event\n", DEPOSITS, MATURING, "once", "once", "per_event is for event rules"),
    ("once: per_occurrence\n", DAILY, GOLD, "once", "once", "it needs subject: deposit"),
    ("once: per_occurrence\n", BIG, LARGE, "once", "once", "it needs subject: deposit"),
    ("once: per_run_date\n", BIG, LARGE, "once", "once", "per_run_date is for scheduled rules"),
    ("campaign: spring-2027\n", DAILY, GOLD, "campaign:", "campaign",
     "has no once (its default: per_run_date)"),
    ("once: per_run_date\ncampaign: spring-2027\n", DAILY, GOLD, "campaign:", "campaign",
     "says once: per_run_date"),
    ("every: 7d\ncampaign: spring-2027\n", DAILY, GOLD, "campaign:", "campaign", "says every"),
    ("once: per_campaign\ncampaign: Spring 2027\n", DAILY, GOLD, "campaign:", "campaign",
     "a campaign id is lower-case"),
])
def test_each_problem_names_its_line_and_field(extra, trigger, conditions, where, field, reason):
    text = rule_file(extra, trigger=trigger, conditions=conditions)
    rules, problems = parse_rule_text(text, "w.yaml")
    assert rules == []
    [problem] = problems
    assert (problem.file, problem.rule, problem.field, problem.line) == ("w.yaml", "r", field,
                                                                         line_of(text, where))
    assert reason in problem.reason


def test_problems_of_a_window_and_a_repeat_are_all_reported_at_once():
    text = rule_file("active:\n  from: 2026-02-30\n  untill: 2026-03-01\nonce: per_event\nevery: 7d\n")
    _, problems = parse_rule_text(text, "w.yaml")
    assert sorted((p.field, p.line) for p in problems) == [
        ("active.from", line_of(text, "2026-02-30")), ("active.untill", line_of(text, "untill")),
        ("every", line_of(text, "every")), ("once", line_of(text, "once"))]


def test_a_broken_window_leaves_the_other_rules_of_the_folder_live(world):
    world.rule("a.yaml", rule_file("active: {from: 2026-12-31, until: 2026-12-01}\n"))
    world.rule("b.yaml", rule_yaml("fine", GOLD, extra="active: {from: 2026-12-01}\n"))
    book = load_rulebook(world.settings.rules_dir, world.settings.templates_dir)
    assert set(book.rules) == {"fine"} and [p.field for p in book.problems] == ["active.until"]
    assert book.rules["fine"].lines[("active", "from")] == line_of(
        (world.settings.rules_dir / "b.yaml").read_text(), "active")


# --------------------------------------------------------------------------- once


def test_once_per_run_date_sends_each_run_date_with_todays_key(world):
    world.rule("r.yaml", rule_file("once: per_run_date\n"))
    world.add("customers", customer("C1"))
    first = dt.date(2026, 3, 10)
    assert day(world, first)["queued"] == 1
    assert day(world, first)["duplicates"] == 1  # the same date again: nothing new
    assert day(world, first + dt.timedelta(days=1))["queued"] == 1
    assert keys(world) == ["r|customer|C1|date:2026-03-10", "r|customer|C1|date:2026-03-11"]


def test_once_per_campaign_sends_once_whatever_the_dates_and_a_new_campaign_again(world):
    world.rule("r.yaml", rule_file("once: per_campaign\ncampaign: spring-2027\n"))
    world.add("customers", customer("C1"), customer("C2"))
    assert day(world, dt.date(2027, 3, 1))["queued"] == 2
    later = day(world, dt.date(2027, 4, 15))
    assert (later["queued"], later["duplicates"]) == (0, 2)
    world.add("customers", customer("C3"))  # a new customer still gets the campaign once
    assert day(world, dt.date(2027, 4, 16))["queued"] == 1
    assert keys(world) == ["r|customer|C1|campaign:spring-2027", "r|customer|C2|campaign:spring-2027",
                           "r|customer|C3|campaign:spring-2027"]

    world.rule("r.yaml", rule_file("once: per_campaign\ncampaign: autumn-2027\n"))
    assert day(world, dt.date(2027, 9, 1))["queued"] == 3
    assert keys(world)[3:] == [f"r|customer|{c}|campaign:autumn-2027" for c in ("C1", "C2", "C3")]


def test_once_per_campaign_defaults_to_the_rule_id_and_holds_across_events(world):
    world.rule("r.yaml", rule_file("once: per_campaign\n", trigger=BIG, conditions=LARGE))
    world.add("customers", customer("C1"))
    at = nine(dt.date(2026, 3, 10))
    assert event(world, big("lt-1", at=at), now=at)["queued"] == 1
    assert event(world, big("lt-2", at=at), now=at + dt.timedelta(days=40))["duplicates"] == 1
    assert keys(world) == ["r|customer|C1|campaign:r"]


def test_once_per_event_is_the_event_rules_default_key(world):
    world.rule("r.yaml", rule_file("once: per_event\n", trigger=BIG, conditions=LARGE))
    world.add("customers", customer("C1"))
    at = nine(dt.date(2026, 3, 10))
    assert event(world, big("lt-1", at=at), now=at)["queued"] == 1
    assert event(world, big("lt-2", at=at), now=at)["queued"] == 1  # another event, same day: again
    assert keys(world) == ["r|customer|C1|event:large_transaction:lt-1",
                           "r|customer|C1|event:large_transaction:lt-2"]


def test_once_per_occurrence_is_once_per_deposit_maturity_and_per_run_date_each_day(world):
    world.rule("occ.yaml", rule_yaml("occ", MATURING, category="service", trigger=DEPOSITS, channels="[sms]",
                                     extra="once: per_occurrence\n"))
    world.rule("daily.yaml", rule_yaml("daily", MATURING, category="service", trigger=DEPOSITS,
                                       channels="[sms]", extra="once: per_run_date\n"))
    world.add("customers", customer("C1"))
    world.add("deposits", deposit("D1", "C1", maturity_date=dt.date(2026, 3, 15)))
    for when in (dt.date(2026, 3, 10), dt.date(2026, 3, 11)):
        run_day(live(world), today=when, now=nine(when))
    assert keys(world, rule_id="occ") == ["occ|deposit|D1|maturity:2026-03-15"]
    assert keys(world, rule_id="daily") == ["daily|deposit|D1|date:2026-03-10", "daily|deposit|D1|date:2026-03-11"]


# --------------------------------------------------------------------------- every


def test_every_suppresses_on_day_n_minus_1_and_sends_on_day_n(world):
    world.rule("r.yaml", rule_file("every: 30d\n"))
    world.add("customers", customer("C1"))
    day0 = dt.date(2026, 3, 10)
    assert day(world, day0)["queued"] == 1
    rerun = day(world, day0)
    assert (rerun["duplicates"], rerun["suppressed"]) == (1, {})  # the same day is idempotent in the database
    for n in (1, 29):
        counts = day(world, day0 + dt.timedelta(days=n))
        assert (counts["matched"], counts["queued"], counts["suppressed"]) == (1, 0, {"repeat_window": 1})
    assert day(world, day0 + dt.timedelta(days=30))["queued"] == 1
    assert keys(world) == ["r|customer|C1|date:2026-03-10", "r|customer|C1|date:2026-04-09"]
    assert day(world, day0 + dt.timedelta(days=59))["suppressed"] == {"repeat_window": 1}  # from the new one


def test_every_counts_the_leap_day(world):
    world.rule("r.yaml", rule_file("every: 30d\n"))
    world.add("customers", customer("C1"))
    assert day(world, dt.date(2028, 2, 10))["queued"] == 1
    assert day(world, dt.date(2028, 3, 10))["suppressed"] == {"repeat_window": 1}  # day 29: 29 February counts
    assert day(world, dt.date(2028, 3, 11))["queued"] == 1  # day 30


def test_every_window_is_in_local_calendar_days(world):
    world.rule("r.yaml", rule_file("every: 2d\n", conditions=GOLD).replace("[sms]", "[email]"))
    world.add("customers", customer("C1"))
    late = dt.datetime(2026, 3, 10, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC
    assert day(world, dt.date(2026, 3, 10), now=late)["queued"] == 1
    # 00:10 on the 12th in Shanghai is still the 11th in UTC: two local days later, so it sends
    early = dt.datetime(2026, 3, 12, 0, 10, tzinfo=SHANGHAI)
    assert day(world, dt.date(2026, 3, 11), now=early - dt.timedelta(days=1))["suppressed"] == {"repeat_window": 1}
    assert day(world, dt.date(2026, 3, 12), now=early)["queued"] == 1


@pytest.mark.parametrize("status, counts", [
    ("held_out", True), ("sent", True), ("delivered", True), ("sending", True), ("scheduled", True),
    ("failed", False), ("suppressed", False)])
def test_every_counts_planned_sent_and_held_out_messages_not_failed_or_suppressed(world, status, counts):
    world.rule("r.yaml", rule_file("every: 7d\n"))
    world.add("customers", customer("C1"))
    assert day(world, dt.date(2026, 3, 10))["queued"] == 1
    set_status(world, status)
    after = day(world, dt.date(2026, 3, 12))
    assert after["suppressed"] == ({"repeat_window": 1} if counts else {})
    assert after["queued"] == (0 if counts else 1)


def test_every_treats_both_arms_of_a_holdout_alike(world):
    world.rule("r.yaml", rule_file("every: 7d\nholdout: {percent: 50}\n"))
    ids = [f"C{i:03d}" for i in range(1, 21)]
    world.add("customers", *(customer(c) for c in ids))
    out = {c for c in ids if held_out(c, holdout_salt("r", None), 50)}
    assert out and out != set(ids)
    first = day(world, dt.date(2026, 3, 10))
    assert (first["held_out"], first["queued"]) == (len(out), len(ids) - len(out))
    second = day(world, dt.date(2026, 3, 11))
    assert (second["held_out"], second["queued"], second["suppressed"]) == (0, 0, {"repeat_window": len(ids)})


def test_every_is_per_deposit_for_deposit_rules(world):
    world.rule("r.yaml", rule_yaml("r", MATURING, category="service", trigger=DEPOSITS, channels="[sms]",
                                   extra="every: 7d\n"))
    world.add("customers", customer("C1"))
    world.add("deposits", deposit("D1", "C1", maturity_date=dt.date(2026, 3, 15)),
              deposit("D2", "C1", maturity_date=dt.date(2026, 3, 16)))
    assert day(world, dt.date(2026, 3, 10))["queued"] == 2
    world.add("deposits", deposit("D3", "C1", maturity_date=dt.date(2026, 3, 17)))
    counts = day(world, dt.date(2026, 3, 11))
    assert (counts["queued"], counts["suppressed"]) == (1, {"repeat_window": 2})
    assert keys(world) == ["r|deposit|D1|date:2026-03-10", "r|deposit|D2|date:2026-03-10",
                           "r|deposit|D3|date:2026-03-11"]


def test_every_on_an_event_rule_keys_per_run_date(world):
    world.rule("r.yaml", rule_file("every: 3d\n", trigger=BIG, conditions=LARGE))
    world.add("customers", customer("C1"))
    at = nine(dt.date(2026, 3, 10))
    assert event(world, big("lt-1", at=at), now=at)["queued"] == 1
    assert event(world, big("lt-2", at=at), now=at + dt.timedelta(hours=2))["duplicates"] == 1
    assert event(world, big("lt-3", at=at), now=at + dt.timedelta(days=2))["suppressed"] == {"repeat_window": 1}
    assert event(world, big("lt-4", at=at), now=at + dt.timedelta(days=3))["queued"] == 1
    assert keys(world) == ["r|customer|C1|date:2026-03-10", "r|customer|C1|date:2026-03-13"]


def test_every_suppression_shows_in_dry_runs_and_previews(world):
    world.rule("r.yaml", rule_file("every: 7d\n"))
    world.add("customers", customer("C1"), customer("C2"))
    day(world, dt.date(2026, 3, 10))
    world.add("customers", customer("C3"))
    later = dt.date(2026, 3, 12)
    dry = day(world, later, dry_run=True)
    assert (dry["queued"], dry["suppressed"]) == (1, {"repeat_window": 2})
    result = preview(live(world), "r", today=later, now=nine(later))
    assert result["counts"]["suppressed"] == {"repeat_window": 2}
    assert {s["customer_id"]: s.get("suppressed") for s in result["sample"]} == \
        {"C1": "repeat_window", "C2": "repeat_window", "C3": None}
    [one] = preview(live(world), "r", today=later, now=nine(later), customer_id="C1")["subjects"]
    assert (one["matches"], one["suppressed"]) == (True, "repeat_window")
    assert len(world.messages()) == 2  # none of it wrote anything


# --------------------------------------------------------------------------- windows


DECEMBER = "active: {from: 2026-12-01, until: 2026-12-31}\n"


def test_outside_its_window_a_rule_is_skipped_and_reads_nothing(world):
    world.rule("r.yaml", rule_file(DECEMBER))
    world.add("customers", customer("C1"))
    before = day(world, dt.date(2026, 11, 30))
    assert before["skipped"] == "2026-11-30 is outside its campaign window 2026-12-01..2026-12-31 (active)"
    assert (before["candidates"], before["matched"], before["queued"]) == (0, 0, 0)
    assert day(world, dt.date(2026, 12, 1))["queued"] == 1  # both bounds are inclusive
    assert day(world, dt.date(2026, 12, 31))["queued"] == 1
    after = day(world, dt.date(2027, 1, 1))
    assert "outside its campaign window 2026-12-01..2026-12-31" in after["skipped"] and after["candidates"] == 0
    assert keys(world) == ["r|customer|C1|date:2026-12-01", "r|customer|C1|date:2026-12-31"]
    assert "skipped" not in day(world, dt.date(2026, 12, 15))


def test_outside_its_window_a_rule_needs_no_calendar_or_product(world):
    world.rule("r.yaml", rule_file("active: {until: 2026-12-31}\nproduct: NO-SUCH\n", trigger=(
        '{schedule: "0 9 * * *", subject: customer, workdays_only: true}')))
    world.add("customers", customer("C1"))
    far = day(world, dt.date(2031, 6, 1))  # no announced calendar for 2031, an unknown product
    assert far["error"] is None and "outside its campaign window ..2026-12-31" in far["skipped"]


def test_the_windows_last_day_ends_at_midnight_in_shanghai(world):
    """The scheduler runs for the local date of its fire: 23:30 on 31 December fires, 00:10 on 1 January not."""
    world.rule("r.yaml", rule_file(DECEMBER).replace("[sms]", "[email]"))
    world.add("customers", customer("C1"), customer("C2"))
    services = live(world)
    last = dt.datetime(2026, 12, 31, 15, 30, tzinfo=UTC)  # 23:30 +08:00
    assert last.astimezone(SHANGHAI).date() == dt.date(2026, 12, 31)
    assert fire(services, "r", owner="test", now=last) is not None
    assert keys(world) == ["r|customer|C1|date:2026-12-31", "r|customer|C2|date:2026-12-31"]
    over = dt.datetime(2026, 12, 31, 16, 10, tzinfo=UTC)  # 00:10 +08:00 on 1 January
    run_id = fire(services, "r", owner="test", now=over)
    assert run_id is not None and len(world.messages()) == 2
    [counts] = get_report(services, run_id).as_dict()["rules"]
    assert counts["skipped"].startswith("2027-01-01 is outside its campaign window")


def test_event_rules_outside_the_window_do_not_fire_by_the_local_date(world):
    world.rule("r.yaml", rule_file(DECEMBER, trigger=BIG, conditions=LARGE).replace("[sms]", "[email]"))
    world.add("customers", customer("C1"))
    last = dt.datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
    over = dt.datetime(2026, 12, 31, 16, 10, tzinfo=UTC)
    assert event(world, big("lt-1", at=last), now=last)["queued"] == 1
    outside = event(world, big("lt-2", at=over), now=over)
    assert outside["skipped"].startswith("2027-01-01 is outside its campaign window 2026-12-01..2026-12-31")
    assert (outside["candidates"], outside["queued"]) == (0, 0)
    dry = event(world, big("lt-3", at=over), now=over, dry_run=True)
    assert dry["skipped"] == outside["skipped"]
    before = dt.datetime(2026, 11, 30, 15, 59, tzinfo=UTC)  # 23:59 on 30 November in Shanghai
    assert event(world, big("lt-4", at=before), now=before)["skipped"].startswith("2026-11-30 is outside")
    assert keys(world) == ["r|customer|C1|event:large_transaction:lt-1"]


def test_a_window_from_the_leap_day(world):
    world.rule("r.yaml", rule_file("active: {from: 2028-02-29, until: 2028-02-29}\n"))
    world.add("customers", customer("C1"))
    assert "outside" in day(world, dt.date(2028, 2, 28))["skipped"]
    assert day(world, dt.date(2028, 2, 29))["queued"] == 1
    assert "outside" in day(world, dt.date(2028, 3, 1))["skipped"]


def test_preview_outside_the_window_says_so_and_decides_nothing(world):
    world.rule("r.yaml", rule_file(DECEMBER))
    world.add("customers", customer("C1"))
    when = dt.date(2027, 1, 1)
    counts = preview(live(world), "r", today=when, now=nine(when))["counts"]
    assert counts["skipped"].startswith("2027-01-01 is outside") and counts["candidates"] == 0
    one = preview(live(world), "r", today=when, now=nine(when), customer_id="C1")
    assert one["skipped"] == counts["skipped"]
    [subject] = one["subjects"]
    assert subject["matches"] is True and "channel" not in subject and "suppressed" not in subject


# --------------------------------------------------------------------------- the scheduler's next run


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def test_cron_trigger_fires_only_inside_the_window_in_the_configured_time_zone():
    window = dict(active_from=dt.date(2026, 12, 1), active_until=dt.date(2026, 12, 31))
    trigger = cron_trigger("0 9 * * *", SHANGHAI, **window)
    assert trigger.get_next_fire_time(None, local(2026, 11, 15, 12)) == local(2026, 12, 1, 9)  # first on `from`
    assert trigger.get_next_fire_time(None, local(2026, 12, 10, 12)) == local(2026, 12, 11, 9)
    assert trigger.get_next_fire_time(None, local(2026, 12, 31, 8)) == local(2026, 12, 31, 9)  # the last day
    assert trigger.get_next_fire_time(None, local(2026, 12, 31, 10)) is None  # after it: no next run
    late = cron_trigger("30 23 * * *", SHANGHAI, **window)
    assert late.get_next_fire_time(None, local(2026, 12, 31, 23)) == local(2026, 12, 31, 23, 30)
    assert late.get_next_fire_time(local(2026, 12, 31, 23, 30), local(2026, 12, 31, 23, 30)) is None
    either = cron_trigger("0 9 1 * 1", SHANGHAI, **window)  # the 1st or a Monday (two triggers combined)
    assert either.get_next_fire_time(None, local(2026, 11, 2, 12)) == local(2026, 12, 1, 9)
    assert either.get_next_fire_time(None, local(2026, 12, 29, 12)) is None  # Monday 4 Jan is outside
    leap = cron_trigger("0 9 * * *", SHANGHAI, active_from=dt.date(2028, 2, 29))
    assert leap.get_next_fire_time(None, local(2027, 6, 1)) == local(2028, 2, 29, 9)
    assert repr(cron_trigger("0 9 * * *", SHANGHAI, active_from=None, active_until=None)) == \
        repr(cron_trigger("0 9 * * *", SHANGHAI))  # no window: the same job as before (kept on sync)


def test_scheduler_jobs_show_no_next_run_after_the_window_and_the_first_fire_before_it(world, engine):
    today = dt.datetime.now(SHANGHAI).date()
    ended, soon = today - dt.timedelta(days=3), today + dt.timedelta(days=10)
    world.rule("ended.yaml", rule_yaml("ended", GOLD, extra=f"active: {{from: {ended - dt.timedelta(days=30)}, "
                                                           f"until: {ended}}}\n"))
    world.rule("soon.yaml", rule_yaml("soon", GOLD, extra=f"active: {{from: {soon}}}\n"))
    world.rule("always.yaml", rule_yaml("always", GOLD))
    services = live(world)
    scheduler = build_scheduler(Runtime(services), owner="windows")
    scheduler.aps.start(paused=True)  # jobs only: nothing fires
    try:
        result = scheduler.sync(services.rulebook)
        assert set(result.added) == {"rule:ended", "rule:soon", "rule:always"}
        next_runs = scheduler.next_run_times()
        assert next_runs["ended"] is None
        assert next_runs["soon"] == local(soon.year, soon.month, soon.day, 9)
        assert next_runs["always"] is not None and next_runs["always"] < next_runs["soon"]
        with engine.connect() as conn:  # what GET /api/v1/rules shows (the shared job store)
            stored = scheduler_jobs.next_run_times(conn)
        assert stored["ended"] is None and stored["soon"] == next_runs["soon"]

        again = scheduler.sync(services.rulebook)
        assert set(again.kept) == {"rule:ended", "rule:soon", "rule:always"}
        # the window moved: the job is replaced with the new trigger
        world.rule("ended.yaml", rule_yaml("ended", GOLD, extra=f"active: {{from: {soon}, until: {soon}}}\n"))
        moved = live(world)
        result = scheduler.sync(moved.rulebook)
        assert result.replaced == ("rule:ended",) and set(result.kept) == {"rule:soon", "rule:always"}
        assert scheduler.next_run_times()["ended"] == local(soon.year, soon.month, soon.day, 9)
    finally:
        scheduler.shutdown(wait=True)


def test_validate_warns_of_an_unannounced_calendar_only_for_rules_inside_their_window():
    from campaign_engine.facts.official import load_holidays
    from campaign_engine.pipeline.validate import calendar_warnings
    from campaign_engine.rulebook.loader import Rulebook
    from campaign_engine.settings import load_settings

    workdays = '{schedule: "0 9 * * *", subject: customer, workdays_only: true}'
    rules = {r.id: r for r in (
        only(rule_yaml("ended", GOLD, trigger=workdays, extra="active: {until: 2026-12-31}\n")),
        only(rule_yaml("open", GOLD, trigger=workdays)))}
    holidays = load_holidays(load_settings(env={}).holidays_file)
    [warning] = calendar_warnings(Rulebook(rules), holidays, dt.date(2031, 6, 2))
    assert "rule(s) open need it" in warning.reason
