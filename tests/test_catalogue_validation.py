"""Typos that would match nobody are errors, never a silent empty run.

Rule files: product codes and types are checked against the products in the database, field
names, operators and template variables against the field catalogue, each with a "did you mean"
and the line of the offending key; a rule whose templates do not render against the sample
context is an invalid draft, not live (its previous version, with its own templates, keeps
running). Events: a customer or product that does not exist is bad input.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import delete

from campaign_engine.api import create_app
from campaign_engine.errors import EventPayloadError, Problem
from campaign_engine.pipeline.validate import catalogue_warnings, read_catalogue, validate_rules
from campaign_engine.rendering.environment import build_environment
from campaign_engine.rulebook.loader import load_rulebook
from campaign_engine.rulebook.products import ProductCatalogue
from campaign_engine.runtime import Runtime
from campaign_engine.store import apikeys
from campaign_engine.store.models import CampaignRun, Customer, Message, Product
from campaign_engine.vocabulary import EventType
from factories import (BIRTHDAY, EMAIL_PARTS, GREETING_SMS, NOW, TODAY, World, customer, deposit, fire_event,
                       rule_yaml, run_day, world_cli)

CATALOGUE = ProductCatalogue.of({"TD1Y": "time_deposit", "FUND-EQ01": "fund"})  # factories.PRODUCTS

LARGE_TX = {"event_id": "lt-1", "customer_id": "C1", "account_no": "6222020012345678", "amount": 800000,
            "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}
RATE_CHANGE = {"event_id": "rc-1", "product_type": "time_deposit", "old_rate": 1.65, "new_rate": 1.45,
               "effective_date": "2026-03-20"}


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if fragment in line)


def validate(world: World, catalogue: ProductCatalogue = CATALOGUE) -> tuple[list[Problem], list[Problem]]:
    """`rules validate` as a function: (problems, warnings) of the world's rule folder."""
    settings = world.settings
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    problems = validate_rules(rulebook, build_environment(settings.templates_dir), settings, catalogue)
    return problems, catalogue_warnings(rulebook, catalogue)


@pytest.fixture
def cli(world: World):  # type: ignore[no-untyped-def]
    return world_cli(world)


class Client:
    def __init__(self, app: Any, key: str):
        self.app = app
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def post(self, path: str, body: Any):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=body, headers=self.headers)


@pytest.fixture
def api(world: World):
    """The API on the world's folders, as an admin."""
    with world.engine.begin() as conn:
        _, key = apikeys.create_key(conn, name="admin-key", role="admin", now=NOW)
    world.publish()
    app = create_app(world.settings, clock=lambda: NOW, background_workers=0)
    yield Client(app, key)
    app.extensions["campaign"].runtime.close()


# --------------------------------------------------------------------------- rule files: product references

def test_validate_holds_contains_unknown_value_suggests_the_product_type_with_its_line(world):
    text = rule_yaml("holders", "  all:\n    - customer.tier: gold\n    - customer.holds: {contains: fnd}\n")
    world.rule("h.yaml", text)
    problems, warnings = validate(world)
    [problem] = problems
    assert (problem.file, problem.line, problem.rule) == ("h.yaml", line_of(text, "fnd"), "holders")
    assert problem.field == "conditions.all.1.customer.holds.contains"
    assert problem.reason == "no product has the code or type 'fnd' (did you mean 'fund'?)"
    assert warnings == []


def test_validate_product_code_typo_names_the_product_line_and_the_nearest_code(world):
    text = rule_yaml("promo", "  customer.tier: gold\n", extra="product: FUND-EQ1\n")
    world.rule("p.yaml", text)
    [problem] = validate(world)[0]
    assert (problem.line, problem.field) == (line_of(text, "product:"), "product")
    assert problem.reason == "no product has the code 'FUND-EQ1' (did you mean 'FUND-EQ01'?)"


def test_validate_unknown_product_code_without_a_near_one_is_still_an_error(world):
    text = "# a bond promotion\n" + rule_yaml("promo", "  customer.tier: gold\n", extra="product: BOND-01\n")
    world.rule("p.yaml", text)
    [problem] = validate(world)[0]
    assert problem.line == line_of(text, "BOND-01") != line_of(text, "id:")  # the product line, not the id
    assert problem.reason == "no product has the code 'BOND-01'"


def test_validate_product_fields_in_conditions_are_checked_too(world):
    world.rule("td.yaml", rule_yaml(
        "td", "  all:\n    - deposit.product.type: {in: [time_deposit, wealh]}\n"
              "    - deposit.product_code: {ne: TD1YY}\n",
        category="service", trigger='{schedule: "0 9 * * *", subject: deposit}'))
    reasons = sorted(p.reason for p in validate(world)[0])
    assert reasons == ["no product has the code 'TD1YY' (did you mean 'TD1Y'?)",
                       "no product has the type 'wealh'"]


def test_validate_known_product_references_and_refs_pass(world):
    world.rule("ok.yaml", rule_yaml("ok", "  any:\n    - customer.holds: {contains: TD1Y}\n"
                                          "    - customer.holds: {contains: fund}\n",
                                    extra="product: FUND-EQ01\n"))
    world.rule("rc.yaml", rule_yaml("rc", "  customer.holds: {contains: {ref: event.product_type}}\n",
                                    category="service", trigger="{event: rate_change}"))
    assert validate(world) == ([], [])


def test_validate_with_no_products_loaded_warns_once_and_passes(world):
    world.rule("a.yaml", rule_yaml("a", "  customer.holds: {contains: fnd}\n"))
    world.rule("b.yaml", rule_yaml("b", "  customer.tier: gold\n", extra="product: BOND-01\n"))
    problems, warnings = validate(world, ProductCatalogue())
    assert problems == []
    [warning] = warnings
    assert warning.reason.startswith("no products are loaded yet")
    assert "2 product reference(s) not checked" in warning.reason
    assert "'fnd'" in warning.reason and "'BOND-01'" in warning.reason


def test_read_catalogue_reads_codes_and_types_from_the_store(world):
    catalogue = read_catalogue(world.services().store)
    assert catalogue == CATALOGUE and catalogue.checkable


# --------------------------------------------------------------------------- rule files: names

def test_validate_field_typo_in_conditions_suggests_the_field(world):
    text = rule_yaml("typo", "  customer.nmae: 张伟\n")
    world.rule("t.yaml", text)
    [problem] = validate(world)[0]
    assert problem.line == line_of(text, "nmae")
    assert problem.reason == "unknown field 'customer.nmae' (did you mean 'customer.name'?)"


def test_validate_holiday_name_outside_the_notices_suggests_the_official_name(world):
    # the lunar festival is 中秋 (calendar.festival), the official holiday 中秋节: mixing them up
    # used to be a condition that silently never matched
    text = rule_yaml("mid-autumn", "  calendar.holiday: {in: [春节, 中秋]}\n")
    world.rule("t.yaml", text)
    [problem] = validate(world)[0]
    assert problem.line == line_of(text, "中秋]")
    assert "'中秋' is not one of 元旦, 春节, 清明节" in problem.reason
    assert problem.reason.endswith("(did you mean '中秋节'?)")


def test_validate_operator_typo_suggests_the_operator(world):
    text = rule_yaml("typo", "  customer.aum: {gtee: 100000}\n")
    world.rule("t.yaml", text)
    [problem] = validate(world)[0]
    assert (problem.line, problem.field) == (line_of(text, "gtee"), "conditions.customer.aum.gtee")
    assert problem.reason == "unknown operator 'gtee' (did you mean 'gte'?)"


def test_validate_tier_typo_and_top_level_key_typo_suggest_the_spelling(world):
    text = rule_yaml("typo", "  customer.tier: glod\n").replace("template: greet", "tempalte: greet")
    world.rule("t.yaml", text)
    reasons = {p.field: p.reason for p in validate(world)[0]}
    assert "did you mean 'gold'?" in reasons["conditions.customer.tier"]
    assert reasons["tempalte"] == "Unknown field (did you mean 'template'?)."


# --------------------------------------------------------------------------- templates

TEMPLATE_TYPO = "您好\n{{ customer.nmae }}，{{ rule.name }}"


def test_template_typo_rule_is_not_live_and_reported_with_template_line_and_suggestion(world):
    world.template("typo", {"sms.txt.j2": TEMPLATE_TYPO})
    world.rule("t.yaml", rule_yaml("typo", "  customer.tier: gold\n", channels="[sms]", template="typo"))
    world.rule("b.yaml", rule_yaml("birthday", BIRTHDAY))
    assert list(world.services().rulebook.rules) == ["birthday"]
    [draft] = [d for d in world.drafts if d["file"] == "t.yaml"]
    assert (draft["status"], draft["rules"]) == ("invalid", ["typo"])
    [problem] = [Problem(**p) for p in draft["problems"]]
    assert (problem.file, problem.rule, problem.field) == ("t.yaml", "typo", "template")
    assert "typo/sms.txt.j2:2" in problem.reason
    assert problem.reason.endswith("(did you mean 'customer.name'?)")
    assert validate(world)[0] == [problem]  # `rules validate` reports it once too, alike


def test_template_unknown_filter_and_variable_get_suggestions(world):
    world.template("filter", {"sms.txt.j2": "{{ customer.aum | monye }}"})
    world.template("var", {"sms.txt.j2": "{{ custmer.name }}"})
    world.rule("f.yaml", rule_yaml("filter", "  customer.tier: gold\n", channels="[sms]", template="filter"))
    world.rule("v.yaml", rule_yaml("var", "  customer.tier: gold\n", channels="[sms]", template="var"))
    book = load_rulebook(world.settings.rules_dir, world.settings.templates_dir)
    assert book.rules == {}
    assert book.broken["filter"][0].reason.endswith("(did you mean 'money'?)")
    assert book.broken["var"][0].reason.endswith("(did you mean 'customer'?)")


def test_cli_run_rule_with_a_template_typo_says_it_is_not_live_and_why(world, cli):
    world.template("typo", {"sms.txt.j2": TEMPLATE_TYPO})
    world.rule("t.yaml", rule_yaml("typo", "  customer.tier: gold\n", channels="[sms]", template="typo"))
    world.add("customers", customer("C1"))
    result = cli("run", "--rule", "typo", "--date", TODAY.isoformat())
    assert result.exit_code == 2
    assert "not live" in result.output and "typo/sms.txt.j2:2" in result.output
    assert world.messages() == []


def test_a_template_broken_on_disk_is_an_invalid_draft_and_the_live_rule_keeps_its_published_template(world):
    world.rule("t.yaml", rule_yaml("greeting", "  customer.tier: gold\n", channels="[sms]"))
    world.add("customers", customer("C1"))
    runtime = Runtime(world.services())
    world.template("greet", {"sms.txt.j2": "{{ customer.nmae }}"})  # its template breaks
    [draft] = world.publish()
    assert draft["status"] == "invalid"
    assert any("greet/sms.txt.j2" in p["reason"] and p["rule"] == "greeting" for p in draft["problems"])
    assert runtime.refresh() is False  # an invalid draft changes nothing live
    live = runtime.services.rulebook
    assert live.get("greeting").version == 1
    assert live.template_set("greeting").texts["greet/sms.txt.j2"] == GREETING_SMS
    report = run_day(runtime.services, today=TODAY, now=NOW)
    assert report["status"] == "completed", report
    [message] = world.messages()
    assert message.rule_id == "greeting" and message.status != "failed" and "测试greeting" in message.body


def test_a_broken_file_is_an_invalid_draft_and_its_previous_version_stays_live(world):
    world.rule("t.yaml", rule_yaml("greeting", "  customer.tier: gold\n", channels="[sms]"))
    runtime = Runtime(world.services())
    world.rule("t.yaml", "id: greeting\nname: [unclosed\n")
    [draft] = world.publish()
    [problem] = draft["problems"]
    assert draft["status"] == "invalid"
    assert (problem["file"], problem["line"]) == ("t.yaml", 3) and "malformed YAML" in problem["reason"]
    runtime.refresh()
    assert runtime.services.rulebook.get("greeting").version == 1
    assert runtime.services.rulebook.problems == ()


# --------------------------------------------------------------------------- rules validate / POST validate

def test_cli_rules_validate_exits_2_with_each_typo_its_line_and_suggestion(world, cli):
    text = rule_yaml("holders", "  customer.holds: {contains: fnd}\n", extra="product: FUND-EQ1\n")
    world.rule("h.yaml", text)
    result = cli("rules", "validate")
    assert result.exit_code == 2
    assert (f"h.yaml:{line_of(text, 'fnd')}, rule holders, field conditions.customer.holds.contains: "
            "no product has the code or type 'fnd' (did you mean 'fund'?)") in result.output
    assert f"h.yaml:{line_of(text, 'product:')}, rule holders, field product: " in result.output
    as_json = json.loads(cli("rules", "validate", "--json").output)
    assert [p["field"] for p in as_json["problems"]] == ["conditions.customer.holds.contains", "product"]
    assert as_json["warnings"] == []


def test_cli_rules_validate_with_no_products_warns_and_exits_0(world, cli):
    with world.engine.begin() as conn:
        conn.execute(delete(Product))
    world.rule("p.yaml", rule_yaml("promo", "  customer.tier: gold\n", extra="product: BOND-01\n"))
    result = cli("rules", "validate")
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: no products are loaded yet") == 1
    assert "1 rule(s) loaded, 0 problem(s), 1 warning(s)" in result.output


def test_cli_rules_validate_template_typo_exits_2(world, cli):
    world.template("typo", {"sms.txt.j2": TEMPLATE_TYPO})
    world.rule("t.yaml", rule_yaml("typo", "  customer.tier: gold\n", channels="[sms]", template="typo"))
    result = cli("rules", "validate")
    assert result.exit_code == 2
    assert "typo/sms.txt.j2:2" in result.output and "0 rule(s) loaded, 1 problem(s)" in result.output


def test_api_validate_checks_product_references_with_line_and_suggestion(world, api):
    text = rule_yaml("holders", "  customer.holds: {contains: fnd}\n")
    templates = {"greet/sms.txt.j2": GREETING_SMS, **{f"greet/{part}": t for part, t in EMAIL_PARTS.items()}}
    body = api.post("/api/v1/rules/validate", {"source": text, "file": "h.yaml", "templates": templates}).get_json()
    assert body["valid"] is False and body["warnings"] == []
    assert body["problems"] == [{"file": "h.yaml", "line": line_of(text, "fnd"), "rule": "holders",
                                 "field": "conditions.customer.holds.contains",
                                 "reason": "no product has the code or type 'fnd' (did you mean 'fund'?)"}]


# --------------------------------------------------------------------------- events naming nobody

def large_transaction_rule(world: World) -> None:
    world.rule("t.yaml", rule_yaml("big", "  event.amount: {gte: 500000}\n", category="service",
                                   trigger="{event: large_transaction}", channels="[sms]"))


def runs(world: World) -> int:
    with world.engine.connect() as conn:
        return len(conn.execute(CampaignRun.__table__.select()).all())


@pytest.mark.parametrize("dry_run", [False, True])
def test_event_large_transaction_for_an_unknown_customer_is_bad_input(world, dry_run):
    large_transaction_rule(world)
    world.add("customers", customer("C1"))
    with pytest.raises(EventPayloadError) as err:
        fire_event(world.services(), EventType.LARGE_TRANSACTION, {**LARGE_TX, "customer_id": "C9"},
                   now=NOW, dry_run=dry_run)
    [problem] = err.value.problems
    assert (problem.field, problem.reason) == ("customer_id", "no customer has the id 'C9'")
    assert runs(world) == 0 and world.messages() == []


@pytest.mark.parametrize("field, value, reason", [
    ("product_type", "tim_deposit", "no product has the type 'tim_deposit' (did you mean 'time_deposit'?)"),
    ("product_code", "TD1YY", "no product has the code 'TD1YY' (did you mean 'TD1Y'?)"),
])
def test_event_rate_change_for_an_unknown_product_is_bad_input(world, field, value, reason):
    payload = {k: v for k, v in RATE_CHANGE.items() if k != "product_type"} | {field: value}
    with pytest.raises(EventPayloadError) as err:
        fire_event(world.services(), EventType.RATE_CHANGE, payload, now=NOW)
    assert [(p.field, p.reason) for p in err.value.problems] == [(field, reason)]
    assert runs(world) == 0


def test_event_rate_change_with_no_products_loaded_says_so(world):
    with world.engine.begin() as conn:
        conn.execute(delete(Product))
    with pytest.raises(EventPayloadError) as err:
        fire_event(world.services(), EventType.RATE_CHANGE, RATE_CHANGE, now=NOW)
    assert err.value.problems[0].reason == "no product has the type 'time_deposit' (no products are loaded yet)"


def test_event_replay_of_a_valid_event_answers_its_first_run_though_the_customer_is_gone(world):
    large_transaction_rule(world)
    world.add("customers", customer("C1"))
    services = world.services()
    first = fire_event(services, EventType.LARGE_TRANSACTION, LARGE_TX, now=NOW)
    with world.engine.begin() as conn:
        conn.execute(delete(Message))
        conn.execute(delete(Customer).where(Customer.customer_id == "C1"))
    again = fire_event(services, EventType.LARGE_TRANSACTION, LARGE_TX, now=NOW)
    assert again["replayed"] is True and again["run_id"] == first["run_id"]


def test_cli_event_unknown_customer_or_product_type_exits_2(world, cli):
    world.add("customers", customer("C1"))
    result = cli("event", "large_transaction", "--data", json.dumps({**LARGE_TX, "customer_id": "C404"}))
    assert result.exit_code == 2
    assert "field customer_id: no customer has the id 'C404'" in result.output
    result = cli("event", "rate_change", "--data", json.dumps({**RATE_CHANGE, "product_type": "tim_deposit"}))
    assert result.exit_code == 2
    assert "field product_type: no product has the type 'tim_deposit' (did you mean 'time_deposit'?)" in result.output
    assert runs(world) == 0


def test_api_event_unknown_customer_is_400_with_the_field_and_a_replay_is_200(world, api):
    large_transaction_rule(world)
    world.add("customers", customer("C1"))
    world.add("deposits", deposit("D1", "C1"))
    resp = api.post("/api/v1/events/large-transaction", {**LARGE_TX, "customer_id": "C404"})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["details"]["fields"] == {"customer_id": ["no customer has the id 'C404'"]}
    resp = api.post("/api/v1/events/rate-change", {**RATE_CHANGE, "product_type": "tim_deposit"})
    assert resp.status_code == 400
    assert "did you mean 'time_deposit'?" in resp.get_json()["error"]["details"]["fields"]["product_type"][0]
    assert api.post("/api/v1/events/large-transaction", LARGE_TX).status_code == 202
    api.app.extensions["campaign"].wait(30)
    replay = api.post("/api/v1/events/large-transaction", LARGE_TX)
    assert replay.status_code == 200 and replay.get_json()["replayed"] is True


def test_validate_goal_naming_no_product_is_a_problem_on_its_line_with_a_suggestion(world):
    world.rule("g.yaml", rule_yaml("fund-push", "  customer.tier: gold\n", extra=(
        "goal:\n  type: product_purchase\n  product_code: FUND-EQ1\n  within_days: 14\n")))
    problems, _ = validate(world, ProductCatalogue.of({"FUND-EQ01": "fund", "TD1Y": "time_deposit"}))
    [problem] = [p for p in problems if p.field == "goal.product_code"]
    assert problem.line == 13 and "FUND-EQ1" in problem.reason  # the product_code: line and "did you mean 'FUND-EQ01'" in problem.reason
