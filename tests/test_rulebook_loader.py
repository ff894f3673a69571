"""Rule files -> Rule objects; every bad input is a Problem naming file, line, rule and field.

A broken rule is reported and left out; the good rules of the same file and of
the rest of the folder still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_engine.errors import Problem
from campaign_engine.rulebook import (All, AnyOf, Not, Predicate, Trigger, load_rulebook,
                                      parse_rule_text)
from campaign_engine.rulebook.model import FieldRef
from campaign_engine.vocabulary import Category, Channel, EventType, SubjectType

FILE = "rules/test.yaml"

ISSUE_EXAMPLE = """\
# Service reminder for time deposits maturing within a week.
id: td-maturity-reminder
name: 定期存款到期提醒
category: service
priority: 80
trigger:
  schedule: "0 9 * * *"
  subject: deposit
conditions:
  all:
    - deposit.days_to_maturity: {between: [0, 7]}
    - any:
        - deposit.auto_renew: false
        - deposit.amount: {gte: 500000}
    - not:
        deposit.product.type: wealth
channels: [sms, email]
template: td_maturity
"""


def rule_text(conditions: str = "  customer.age: {gte: 60}", *,
              trigger: str = '  schedule: "0 9 * * *"\n  subject: customer',
              channels: str = "[sms, email]", rule_id: str = "my-rule", extra: str = "") -> str:
    """A complete customer rule; pieces replaced by the test."""
    return (f"id: {rule_id}\n"
            "name: 测试规则\n"
            "category: marketing\n"
            f"trigger:\n{trigger}\n"
            f"conditions:\n{conditions}\n"
            f"channels: {channels}\n"
            "template: birthday\n"
            f"{extra}")


def without(text: str, key: str) -> str:
    """The rule text with one top-level key (and its indented block) removed."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def line_of(text: str, fragment: str) -> int:
    """1-based number of the first line containing `fragment`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in text")


def problems_of(text: str) -> list[Problem]:
    rules, problems = parse_rule_text(text, FILE)
    assert rules == []
    assert problems
    return problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def assert_located(problem: Problem, *, line: int, field: str, rule: str | None = "my-rule",
                   reason: str = "") -> None:
    assert problem.file == FILE
    assert problem.line == line
    assert problem.rule == rule
    assert problem.field is not None and field in problem.field, problem
    assert reason.lower() in problem.reason.lower(), problem


# --------------------------------------------------------------------------- good rules

def test_parse_rule_text_issue_example_builds_expected_tree():
    rules, problems = parse_rule_text(ISSUE_EXAMPLE, "td_maturity.yaml")
    assert problems == []
    [rule] = rules
    assert rule.conditions == All((
        Predicate("deposit.days_to_maturity", "between", (0, 7)),
        AnyOf((
            Predicate("deposit.auto_renew", "eq", False),
            Predicate("deposit.amount", "gte", 500000.0),
        )),
        Not(Predicate("deposit.product.type", "eq", "wealth")),
    ))
    assert rule.id == "td-maturity-reminder"
    assert rule.name == "定期存款到期提醒"
    assert rule.category is Category.SERVICE
    assert rule.priority == 80
    assert rule.trigger == Trigger(subject=SubjectType.DEPOSIT, schedule="0 9 * * *")
    assert rule.channels == (Channel.SMS, Channel.EMAIL)
    assert rule.template == "td_maturity"
    assert rule.enabled is True
    assert rule.product is None
    assert (rule.file, rule.line) == ("td_maturity.yaml", 2)


def test_parse_rule_text_defaults_subject_priority_and_enabled():
    text = without(rule_text(trigger='  schedule: "0 9 * * *"'), "priority")
    [rule], problems = parse_rule_text(text, FILE)
    assert problems == []
    assert rule.trigger.subject is SubjectType.CUSTOMER
    assert rule.priority == 50
    assert rule.enabled is True


def test_parse_rule_text_chinese_tier_name_is_accepted_as_gold():
    [rule], problems = parse_rule_text(rule_text("  customer.tier: 金"), FILE)
    assert problems == []
    assert rule.conditions == Predicate("customer.tier", "eq", "gold")


def test_parse_rule_text_chinese_tier_names_in_a_list():
    [rule], problems = parse_rule_text(rule_text("  customer.tier: {in: [钻石, 白金, 金]}"), FILE)
    assert problems == []
    assert rule.conditions == Predicate("customer.tier", "in", ("diamond", "platinum", "gold"))


def test_parse_rule_text_dates_become_iso_text():
    [rule], _ = parse_rule_text(rule_text("  customer.birth_date: {lt: 1990-01-01}"), FILE)
    assert rule.conditions == Predicate("customer.birth_date", "lt", "1990-01-01")


def test_parse_rule_text_event_ref_on_event_rule():
    text = rule_text("  customer.holds: {contains: {ref: event.product_type}}",
                     trigger="  event: rate_change")
    [rule], problems = parse_rule_text(text, FILE)
    assert problems == []
    assert rule.trigger == Trigger(subject=SubjectType.CUSTOMER, event=EventType.RATE_CHANGE)
    assert rule.conditions == Predicate("customer.holds", "contains", FieldRef("event.product_type"))


def test_parse_rule_text_several_operators_on_one_field_are_all_required():
    [rule], _ = parse_rule_text(rule_text("  customer.age: {gte: 18, lt: 60}"), FILE)
    assert rule.conditions == All((Predicate("customer.age", "gte", 18),
                                   Predicate("customer.age", "lt", 60)))


# --------------------------------------------------------------------------- malformed YAML

def test_parse_rule_text_malformed_yaml_names_file_and_line():
    text = "id: broken\nname: [unclosed\ncategory: service\n"
    problem = only_problem(text)
    assert problem.file == FILE
    assert problem.line == 3
    assert "malformed YAML" in problem.reason


def test_parse_rule_text_bad_indentation_names_line():
    text = "id: broken\nname: x\n  bad: indent\n"
    problem = only_problem(text)
    assert (problem.file, problem.line) == (FILE, 3)
    assert "malformed YAML" in problem.reason


def test_parse_rule_text_duplicate_key_is_malformed():
    text = rule_text() + "template: other\n"
    problem = only_problem(text)
    assert (problem.file, problem.line) == (FILE, line_of(text, "template: other"))
    assert "duplicate key" in problem.reason


def test_parse_rule_text_rule_that_is_not_a_mapping():
    problem = only_problem("just some text\n")
    assert (problem.file, problem.line) == (FILE, 1)
    assert "mapping" in problem.reason


# --------------------------------------------------------------------------- conditions

def test_parse_rule_text_unknown_field_named_with_its_line():
    text = rule_text("  all:\n    - customer.tier: gold\n    - customer.agee: {gte: 60}")
    assert_located(only_problem(text), line=line_of(text, "customer.agee"),
                   field="customer.agee", reason="unknown field 'customer.agee'")


def test_parse_rule_text_unknown_operator():
    text = rule_text("  customer.age: {gtt: 60}")
    assert_located(only_problem(text), line=line_of(text, "gtt"), field="customer.age",
                   reason="unknown operator 'gtt'")


WRONG_OPERANDS = [
    ("customer.aum: {gte: lots}", "customer.aum", "expected a number"),
    ("customer.age: {gte: 60.5}", "customer.age", "whole number"),
    ("customer.city: 123", "customer.city", "expected text"),
    ("customer.rate_sensitive: 'yes'", "customer.rate_sensitive", "true or false"),
    ("customer.birth_date: {lt: '1990-13-01'}", "customer.birth_date", "YYYY-MM-DD"),
    ("customer.birth_date: {lt: yesterday}", "customer.birth_date", "YYYY-MM-DD"),
    ("customer.tier: copper", "customer.tier", "not one of"),
    ("customer.tier: {in: [gold, 铜]}", "customer.tier", "not one of"),
    ("customer.risk_level: R3", "customer.risk_level", "not one of"),
    ("customer.city: null", "customer.city", "exists: false"),
    ("customer.email: {exists: maybe}", "customer.email", "exists takes true or false"),
    ("customer.tier: {in: []}", "customer.tier", "non-empty list"),
    ("customer.age: {between: [60]}", "customer.age", "between takes [low, high]"),
    ("customer.city: {gt: 上海}", "customer.city", "needs a number or date"),
    ("customer.holds: TD1Y", "customer.holds", "is a list"),
]


@pytest.mark.parametrize(("condition", "field", "reason"), WRONG_OPERANDS,
                         ids=[case[0] for case in WRONG_OPERANDS])
def test_parse_rule_text_wrong_operand_type(condition, field, reason):
    text = rule_text(f"  {condition}")
    assert_located(only_problem(text), line=line_of(text, field), field=field, reason=reason)


def test_parse_rule_text_unquoted_impossible_date_is_a_problem():
    text = rule_text("  customer.birth_date: {lt: 2026-02-30}")
    problem = only_problem(text)
    assert (problem.file, problem.line) == (FILE, line_of(text, "2026-02-30"))


def test_parse_rule_text_between_low_above_high():
    text = rule_text("  customer.age: {between: [70, 60]}")
    assert_located(only_problem(text), line=line_of(text, "between"), field="customer.age",
                   reason="low 70 is above high 60")


def test_parse_rule_text_deposit_field_on_customer_rule():
    text = rule_text("  deposit.amount: {gte: 100000}")
    assert_located(only_problem(text), line=line_of(text, "deposit.amount"),
                   field="deposit.amount", reason="subject: deposit")


def test_parse_rule_text_event_field_on_scheduled_rule():
    text = rule_text("  event.amount: {gte: 500000}")
    assert_located(only_problem(text), line=line_of(text, "event.amount"),
                   field="event.amount", reason="event trigger")


def test_parse_rule_text_event_field_not_in_that_events_payload():
    text = rule_text("  event.amount: {gte: 500000}", trigger="  event: rate_change")
    assert_located(only_problem(text), line=line_of(text, "event.amount"),
                   field="event.amount", reason="unknown field 'event.amount'")


def test_parse_rule_text_event_field_of_its_own_event_is_fine():
    text = rule_text("  event.amount: {gte: 500000}", trigger="  event: large_transaction")
    [rule], problems = parse_rule_text(text, FILE)
    assert problems == []
    assert rule.conditions == Predicate("event.amount", "gte", 500000.0)


def test_parse_rule_text_contains_on_non_list_field():
    text = rule_text("  customer.city: {contains: 上海}")
    assert_located(only_problem(text), line=line_of(text, "customer.city"), field="customer.city",
                   reason="contains needs a list field")


def test_parse_rule_text_ref_to_unknown_field():
    text = rule_text("  customer.aum: {gt: {ref: customer.aumm}}")
    problem = only_problem(text)
    assert_located(problem, line=line_of(text, "customer.aumm"), field="customer.aum",
                   reason="unknown field 'customer.aumm'")


@pytest.mark.parametrize("condition", [
    "customer.aum: {gt: {ref: customer.birth_date}}",
    "customer.city: {eq: {ref: customer.age}}",
    "customer.city: {gt: {ref: customer.branch}}",
    "customer.holds: {contains: {ref: customer.age}}",
    "customer.holds: {eq: {ref: customer.holds}}",
])
def test_parse_rule_text_ref_with_incompatible_types(condition):
    text = rule_text(f"  {condition}")
    field = condition.split(":", 1)[0]
    assert_located(only_problem(text), line=line_of(text, field), field=field,
                   reason="cannot compare")


def test_parse_rule_text_ref_with_operator_that_takes_no_ref():
    text = rule_text("  customer.age: {between: {ref: customer.risk_rank}}")
    assert_located(only_problem(text), line=line_of(text, "customer.age"), field="customer.age",
                   reason="'between' cannot take a ref operand")


def test_parse_rule_text_empty_combinator():
    text = rule_text("  all: []")
    assert_located(only_problem(text), line=line_of(text, "all"), field="conditions.all",
                   reason="non-empty list")


def test_parse_rule_text_reports_every_broken_condition():
    text = rule_text("  all:\n    - customer.agee: 1\n    - customer.tier: copper\n"
                     "    - not:\n        customer.aum: {gte: lots}")
    problems = problems_of(text)
    assert sorted(p.line for p in problems) == [line_of(text, "agee"), line_of(text, "copper"),
                                                line_of(text, "lots")]
    assert all(p.rule == "my-rule" and p.file == FILE for p in problems)


# --------------------------------------------------------------------------- rule keys

@pytest.mark.parametrize("key", ["id", "name", "category", "trigger", "conditions", "channels",
                                 "template"])
def test_parse_rule_text_missing_required_key(key):
    problems = problems_of(without(rule_text(), key))
    [problem] = [p for p in problems if p.field == key]
    assert problem.file == FILE
    assert problem.line == 1
    assert problem.rule == (None if key == "id" else "my-rule")
    assert "required" in problem.reason.lower()


@pytest.mark.parametrize("rule_id", ["My_Rule", "-leading-dash", "has space", "x" * 65])
def test_parse_rule_text_bad_id(rule_id):
    text = rule_text(rule_id=f"'{rule_id}'")
    assert_located(only_problem(text), line=1, field="id", rule=rule_id, reason="ids are")


def test_parse_rule_text_bad_channel():
    text = rule_text(channels="[sms, fax]")
    assert_located(only_problem(text), line=line_of(text, "channels"), field="channels",
                   reason="must be one of")


def test_parse_rule_text_bad_channel_in_block_list_names_its_line():
    text = rule_text(channels="\n  - sms\n  - fax")
    assert_located(only_problem(text), line=line_of(text, "- fax"), field="channels",
                   reason="must be one of")


def test_parse_rule_text_duplicate_channel():
    text = rule_text(channels="[sms, sms]")
    assert_located(only_problem(text), line=line_of(text, "channels"), field="channels",
                   reason="listed twice")


def test_parse_rule_text_no_channels():
    text = rule_text(channels="[]")
    assert_located(only_problem(text), line=line_of(text, "channels"), field="channels")


def test_parse_rule_text_cron_with_four_fields():
    text = rule_text(trigger='  schedule: "0 9 * *"')
    assert_located(only_problem(text), line=line_of(text, "schedule"), field="trigger.schedule",
                   reason="5-field cron")


def test_parse_rule_text_both_schedule_and_event():
    text = rule_text(trigger='  schedule: "0 9 * * *"\n  event: rate_change')
    assert_located(only_problem(text), line=line_of(text, "schedule"), field="trigger",
                   reason="exactly one of schedule or event")


def test_parse_rule_text_neither_schedule_nor_event():
    text = rule_text(trigger="  subject: customer")
    assert_located(only_problem(text), line=line_of(text, "trigger"), field="trigger",
                   reason="exactly one of schedule or event")


def test_parse_rule_text_unknown_event():
    text = rule_text(trigger="  event: birthday")
    assert_located(only_problem(text), line=line_of(text, "event:"), field="trigger.event")


def test_parse_rule_text_large_transaction_needs_customer_subject():
    text = rule_text("  event.amount: {gte: 1}", trigger="  event: large_transaction\n  subject: deposit")
    assert_located(only_problem(text), line=line_of(text, "subject"), field="trigger.subject",
                   reason="subject must be customer")


def test_parse_rule_text_unknown_top_level_key():
    text = rule_text(extra="chanels: [sms]\n")
    assert_located(only_problem(text), line=line_of(text, "chanels"), field="chanels",
                   reason="unknown field")


def test_parse_rule_text_bad_category():
    text = rule_text().replace("category: marketing", "category: promo")
    assert_located(only_problem(text), line=line_of(text, "category"), field="category")


def test_parse_rule_text_enabled_must_be_boolean():
    text = rule_text(extra="enabled: 'yes'\n")
    assert_located(only_problem(text), line=line_of(text, "enabled"), field="enabled")


# --------------------------------------------------------------------------- several rules per file

def test_parse_rule_text_list_file_keeps_the_good_rule():
    good = rule_text(rule_id="good-rule")
    bad = rule_text("  customer.agee: 1", rule_id="bad-rule")
    text = "".join(f"- {_indent(r)}" for r in (good, bad))
    rules, problems = parse_rule_text(text, FILE)
    assert [r.id for r in rules] == ["good-rule"]
    [problem] = problems
    assert (problem.rule, problem.line) == ("bad-rule", line_of(text, "customer.agee"))
    assert rules[0].line == 1


def test_parse_rule_text_multi_document_file_keeps_the_good_rule():
    bad = rule_text("  customer.tier: copper", rule_id="bad-rule")
    good = rule_text(rule_id="good-rule")
    text = bad + "---\n" + good
    rules, problems = parse_rule_text(text, FILE)
    assert [r.id for r in rules] == ["good-rule"]
    assert rules[0].line == line_of(text, "id: good-rule")
    [problem] = problems
    assert (problem.rule, problem.line, problem.file) == ("bad-rule", line_of(text, "copper"), FILE)


def _indent(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return lines[0] + "".join(f"  {line}" for line in lines[1:])


# --------------------------------------------------------------------------- load_rulebook

BIRTHDAY_PARTS = {"sms.txt.j2": "{{ customer.name }}，生日快乐", "email.subject.j2": "{{ rule.name }}",
                  "email.txt.j2": "{{ customer.name }}：生日快乐"}


def template(templates: Path, name: str, parts: dict[str, str]) -> None:
    (templates / name).mkdir(parents=True, exist_ok=True)
    for part, text in parts.items():
        (templates / name / part).write_text(text, encoding="utf-8")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A rule folder and a template folder holding a `birthday` template that renders."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    template(templates, "birthday", BIRTHDAY_PARTS)
    return rules, templates


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_load_rulebook_loads_every_yaml_file(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text(rule_id="rule-a"))
    write(rules_dir, "b.yml", rule_text(rule_id="rule-b"))
    write(rules_dir, "notes.txt", "not a rule")
    book = load_rulebook(rules_dir, templates_dir)
    assert book.problems == ()
    assert sorted(book.rules) == ["rule-a", "rule-b"]
    assert sorted(book.files) == ["a.yaml", "b.yml"]


def test_load_rulebook_duplicate_id_reported_and_first_kept(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text("  customer.age: {gte: 60}", rule_id="same"))
    write(rules_dir, "b.yaml", "# second\n" + rule_text("  customer.age: {gte: 18}", rule_id="same"))
    book = load_rulebook(rules_dir, templates_dir)
    assert book.rules["same"].file == "a.yaml"
    assert book.rules["same"].conditions == Predicate("customer.age", "gte", 60)
    [problem] = book.problems
    assert (problem.file, problem.line, problem.rule, problem.field) == ("b.yaml", 2, "same", "id")
    assert "a.yaml:1" in problem.reason


def test_load_rulebook_missing_template_folder_reported(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text(rule_id="rule-a").replace("template: birthday",
                                                                   "template: nowhere"))
    write(rules_dir, "b.yaml", rule_text(rule_id="rule-b"))
    book = load_rulebook(rules_dir, templates_dir)
    assert list(book.rules) == ["rule-b"]
    [problem] = book.problems
    assert (problem.file, problem.rule, problem.field) == ("a.yaml", "rule-a", "template")
    assert "nowhere" in problem.reason


def test_load_rulebook_broken_file_does_not_stop_the_others(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text(rule_id="rule-a"))
    write(rules_dir, "b.yaml", "id: rule-b\nname: [unclosed\n")
    write(rules_dir, "c.yaml", rule_text("  customer.agee: 1", rule_id="rule-c"))
    write(rules_dir, "d.yaml", rule_text(rule_id="rule-d"))
    book = load_rulebook(rules_dir, templates_dir)
    assert sorted(book.rules) == ["rule-a", "rule-d"]
    assert sorted(p.file for p in book.problems) == ["b.yaml", "c.yaml"]


def test_load_rulebook_impossible_date_in_one_file_does_not_stop_the_others(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text("  customer.birth_date: {lt: 1990-13-01}", rule_id="rule-a"))
    write(rules_dir, "b.yaml", rule_text(rule_id="rule-b"))
    book = load_rulebook(rules_dir, templates_dir)
    assert list(book.rules) == ["rule-b"]
    assert [p.file for p in book.problems] == ["a.yaml"]


def test_load_rulebook_missing_folder_is_a_problem(tmp_path):
    book = load_rulebook(tmp_path / "absent")
    assert book.rules == {}
    [problem] = book.problems
    assert "does not exist" in problem.reason


def test_load_rulebook_fingerprint_changes_with_a_file(folders):
    rules_dir, templates_dir = folders
    write(rules_dir, "a.yaml", rule_text(rule_id="rule-a"))
    before = load_rulebook(rules_dir, templates_dir).fingerprint
    assert load_rulebook(rules_dir, templates_dir).fingerprint == before
    write(rules_dir, "a.yaml", rule_text("  customer.age: {gte: 61}", rule_id="rule-a"))
    assert load_rulebook(rules_dir, templates_dir).fingerprint != before
