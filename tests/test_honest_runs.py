"""Nothing is left out silently: publishing names every broken rule file (its draft is invalid, not
live), a rule named in a run that is not live says why, a run whose messages could not be rendered
says so; and the run summary a person reads explains itself."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from campaign_engine.demo.loader import load_demo_data
from factories import BIRTHDAY, NOW, TODAY, World, customer, rule_yaml, run_day, world_cli

BROKEN_CONDITION = rule_yaml("typo-rule", "  customer.nmae: 张伟\n")
GARBAGE = "id: [unclosed\n"


@pytest.fixture
def cli(world: World, monkeypatch):
    """The CLI at NOW (01:30 UTC: 09:30 in Shanghai) on the world's rule and template folders."""
    monkeypatch.setattr("campaign_engine.cli._now", lambda: NOW)
    return world_cli(world)


def test_publish_names_every_broken_file_and_exits_2_and_run_all_runs_the_live_rules(world, cli):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.rule("typo.yaml", BROKEN_CONDITION)
    world.rule("garbage.yaml", GARBAGE)
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))

    published = cli("rules", "publish", "--all", "--note", "birthday, and two broken files", "--json")
    assert published.exit_code == 2, published.output
    drafts = {d["file"]: d for d in json.loads(published.output)}
    assert (drafts["typo.yaml"]["status"], drafts["typo.yaml"]["rules"]) == ("invalid", ["typo-rule"])
    assert drafts["typo.yaml"]["problems"] == [{
        "file": "typo.yaml", "line": 7, "rule": "typo-rule", "field": "conditions.customer.nmae",
        "reason": "unknown field 'customer.nmae' (did you mean 'customer.name'?)"}]
    [garbage] = drafts["garbage.yaml"]["problems"]
    assert drafts["garbage.yaml"]["status"] == "invalid"
    assert (garbage["file"], garbage["line"]) == ("garbage.yaml", 2) and "malformed YAML" in garbage["reason"]
    text = cli("rules", "publish", "--all", "--note", "birthday, and two broken files")
    assert text.exit_code == 2
    # as `rules validate` and `run --rule` name a problem: file:line, rule, field
    assert ("typo.yaml:7, rule typo-rule, field conditions.customer.nmae: unknown field 'customer.nmae'"
            in text.output)
    assert "garbage.yaml:2: malformed YAML" in text.output

    # invalid drafts were never live: a run of every rule runs the live ones and is not an error
    result = cli("run", "--all", "--date", TODAY.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["status"], report["error"], report["rule_ids"]) == ("completed", None, ["birthday"])
    [birthday] = report["rules"]
    assert birthday["queued"] + birthday["scheduled"] == 1 and birthday["error"] is None


def test_run_all_dry_run_runs_the_live_rules_only_and_exits_0(world, cli):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.rule("typo.yaml", BROKEN_CONDITION)
    result = cli("run", "--all", "--date", TODAY.isoformat(), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [(r["rule"], r["error"]) for r in report["rules"]] == [("birthday", None)]
    assert report["error"] is None
    assert [d["status"] for d in world.drafts if d["file"] == "typo.yaml"] == ["invalid"]


def test_run_rule_whose_file_is_broken_names_file_line_and_problem(world, cli):
    world.rule("typo.yaml", BROKEN_CONDITION)
    result = cli("run", "--rule", "typo-rule", "--date", TODAY.isoformat())
    assert result.exit_code == 2
    assert "rule 'typo-rule' not found; typo-rule: its latest draft " in result.output
    assert (" is invalid, not live: typo.yaml:7, rule typo-rule, field conditions.customer.nmae: "
            "unknown field 'customer.nmae' (did you mean 'customer.name'?)") in result.output


def test_run_rule_unknown_mentions_the_files_that_could_not_be_read(world, cli):
    # the rule may be in the file whose draft could not be read: say so rather than "not published"
    world.rule("garbage.yaml", GARBAGE)
    result = cli("run", "--rule", "no-such-rule", "--date", TODAY.isoformat())
    assert result.exit_code == 2
    assert "rule 'no-such-rule' not found" in result.output
    assert "garbage.yaml:2: malformed YAML" in result.output


def test_run_whose_messages_partly_failed_is_completed_with_errors_with_the_count(world):
    # renders on the sample customer (gold), so the rule is live; fails on these platinum customers' data
    world.template("typo", {"sms.txt.j2": "{% if customer.tier == 'platinum' %}{{ customer.nickname }}{% endif %}您好"})
    world.rule("t.yaml", rule_yaml("typo-template", BIRTHDAY, template="typo", channels="[sms]", category="service"))
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10), tier="platinum"),
              customer("C2", birth_date=dt.date(1980, 3, 10), mobile="13800000002", tier="platinum"))
    report = run_day(world.services(), today=TODAY, now=NOW)
    assert report["status"] == "completed_with_errors", report
    assert "2 message(s) failed: typo-template 2" in report["error"]
    assert "retry" in report["error"]  # the way out is named
    [failed] = [r for r in report["rules"] if r["rule"] == "typo-template"]
    assert failed["failed"] == 2 and failed["error"] is None  # the rule ran; its messages failed


def test_run_text_has_rule_names_local_times_legend_and_the_waiting_sms(world, cli, monkeypatch):
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY, channels="[sms]"))
    world.add("customers", customer("C1", birth_date=dt.date(1970, 3, 10)))
    night = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.timezone.utc)  # 22:00 in Shanghai: SMS wait
    monkeypatch.setattr("campaign_engine.cli._now", lambda: night)
    result = cli("run", "--all", "--date", TODAY.isoformat())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("run ") and lines[0].endswith(" 2026-03-10 completed")
    assert lines[1].startswith("started 2026-03-10 22:00+08:00")  # the configured zone, named
    row = next(line for line in lines if line.startswith("birthday "))
    assert "测试birthday" in row and row.split()[-3:] == ["0", "0", "-"]
    assert any(line.startswith("candidates: read by the rule's SQL") for line in lines)
    assert ("1 message(s) wait for their sending window (sms 08:00-21:00, next opens 2026-03-11 08:00+08:00)"
            in result.output)


def test_runs_products_customers_list_what_there_is(world, cli):
    load_demo_data(world.engine, 300, seed=42, today=TODAY, now=NOW)
    assert "no runs yet" in cli("runs").output
    run_id = json.loads(cli("run", "--all", "--date", TODAY.isoformat(), "--json").output)["run_id"]
    runs = cli("runs")
    assert runs.output.startswith(f"run {run_id:<6} 2026-03-10 ")

    products = cli("products", "--json")
    codes = [p["product_code"] for p in json.loads(products.output)]
    assert "TD1Y" in codes and "FUND-EQ01" in codes
    assert any(line.startswith("TD1Y ") and "time_deposit" in line for line in cli("products").output.splitlines())

    diamonds = json.loads(cli("customers", "--tier", "钻石", "--json").output)
    assert diamonds and {c["tier"] for c in diamonds} == {"diamond"}
    assert "mobile" not in diamonds[0] and "email" not in diamonds[0]  # a list shows no contact data
    page = json.loads(cli("customers", "--limit", "2", "--json").output)
    after = json.loads(cli("customers", "--limit", "2", "--after", page[-1]["customer_id"], "--json").output)
    assert [c["customer_id"] for c in page + after] == sorted(c["customer_id"] for c in page + after)
    assert len({c["customer_id"] for c in page + after}) == 4
    bad = cli("customers", "--tier", "铜")
    assert bad.exit_code == 2 and "unknown tier '铜'" in bad.output
