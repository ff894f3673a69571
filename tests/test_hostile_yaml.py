"""Rule files whose YAML aliases expand without bound (a "billion laughs" bomb): refused, located and
fast through every door that reads a rule file (parse, `rules validate`, the API's validate and
drafts, the console editor), before marshmallow or the conditions walk them; ordinary anchors and
aliases still work."""

from __future__ import annotations

import time
from typing import Any

import pytest
from click.testing import CliRunner

from campaign_engine.api import create_app
from campaign_engine.cli import main
from campaign_engine.rulebook.loader import MAX_DEPTH, MAX_NODES, load_rulebook, parse_rule_text, refusal
from campaign_engine.store import apikeys
from campaign_engine.vocabulary import Approval
from factories import GREETING_SMS, NOW, customer, rule_yaml

BOMB_REASON = f"YAML aliases expand to more than {MAX_NODES:,} nodes"


def bomb(levels: int = 10, width: int = 9) -> str:
    """`a0: &a0 [x, ...]`, `a1: &a1 [*a0, ...]`, ...: width**levels nodes from a few hundred bytes."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def bomb_line(width: int = 9) -> int:
    """The line of the first anchor whose expansion passes MAX_NODES (a0 is line 1)."""
    size, line = width + 1, 1
    while size <= MAX_NODES:
        size, line = 1 + width * size, line + 1
    return line


SHARED = """\
- id: gold-a
  name: 金卡甲
  category: marketing
  trigger: {schedule: "0 9 * * *", subject: customer}
  conditions:
    all: &gold
      - customer.tier: gold
      - customer.age: {gte: 18}
  channels: &sms [sms]
  template: greet
- id: gold-b
  name: 金卡乙
  category: marketing
  trigger: {schedule: "0 10 * * *", subject: customer}
  conditions:
    any: *gold
  channels: *sms
  template: greet
"""


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kw)
    return result, time.perf_counter() - start


# --------------------------------------------------------------------------- the loader


def test_an_alias_bomb_is_one_located_problem_in_milliseconds():
    (rules, problems), took = timed(parse_rule_text, bomb(), "bomb.yaml")
    assert rules == []
    assert [p.as_dict() for p in problems] == [{"file": "bomb.yaml", "line": bomb_line(), "reason": BOMB_REASON}]
    assert took < 0.5
    assert refusal(bomb(), "bomb.yaml") == problems[0]


def test_the_bomb_inside_a_rule_is_refused_before_marshmallow_or_the_conditions_see_it():
    nested = ("id: gold-greet\nname: x\ncategory: marketing\ntrigger: {schedule: \"0 9 * * *\"}\n"
              "description: &d0 [x, x, x, x, x, x, x, x, x]\n"
              + "".join(f"d{i}: &d{i} [{', '.join([f'*d{i - 1}'] * 9)}]\n" for i in range(1, 10))
              + "conditions:\n  all: *d9\nchannels: [sms]\ntemplate: greet\n")
    (rules, problems), took = timed(parse_rule_text, nested, "nested.yaml")
    assert rules == [] and [(p.file, p.reason) for p in problems] == [("nested.yaml", BOMB_REASON)]
    assert took < 0.5


def test_a_wide_expansion_under_the_bound_is_read_as_usual():
    """Four levels of nine (7,381 nodes): no refusal; the rule's own problems, as without aliases."""
    text = ("id: wide\nname: x\ncategory: marketing\ntrigger: {schedule: \"0 9 * * *\"}\n"
            "description: &d0 [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"d{i}: &d{i} [{', '.join([f'*d{i - 1}'] * 9)}]\n" for i in range(1, 4))
            + "conditions:\n  customer.tier: gold\nchannels: [sms]\ntemplate: greet\n")
    (rules, problems), took = timed(parse_rule_text, text, "wide.yaml")
    assert refusal(text, "wide.yaml") is None
    assert {p.field for p in problems} == {"description", "d1", "d2", "d3"} and rules == []
    assert took < 1


def test_a_chain_of_aliases_nests_too_deep_without_nesting_the_text():
    levels = MAX_DEPTH + 6
    text = "c0: &c0 [x]\n" + "".join(f"c{i}: &c{i} [*c{i - 1}]\n" for i in range(1, levels))
    [problem] = parse_rule_text(text, "chain.yaml")[1]
    assert problem.reason == f"nested deeper than {MAX_DEPTH} levels" and problem.file == "chain.yaml"
    assert problem.line is not None


def test_ordinary_anchors_and_aliases_still_work():
    """A condition list and a channel list shared by two rules of one file (as they work today)."""
    rules, problems = parse_rule_text(SHARED, "shared.yaml")
    assert problems == []
    a, b = rules
    assert [p.field for p in a.conditions.items] == [p.field for p in b.conditions.items] == [
        "customer.tier", "customer.age"]
    assert type(a.conditions).__name__ == "All" and type(b.conditions).__name__ == "AnyOf"
    assert a.channels == b.channels and a.definition_hash != b.definition_hash
    assert refusal(SHARED, "shared.yaml") is None


def test_rules_validate_on_a_folder_with_a_bomb(world):
    world.rule("bomb.yaml", bomb())
    world.rule("greet.yaml", rule_yaml("gold-greet", "  customer.tier: gold\n", channels="[sms]"))
    book, took = timed(load_rulebook, world.settings.rules_dir, world.settings.templates_dir)
    assert sorted(book.rules) == ["gold-greet"] and took < 2
    assert [str(p) for p in book.problems] == [f"bomb.yaml:{bomb_line()}: {BOMB_REASON}"]
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir), "CAMPAIGN_ENGINE_APPROVAL": "off"}
    done, took = timed(CliRunner().invoke, main, ["rules", "validate"], env=env, catch_exceptions=False)
    assert done.exit_code == 2 and f"bomb.yaml:{bomb_line()}: {BOMB_REASON}" in done.output and took < 5
    published, took = timed(CliRunner().invoke, main, ["rules", "publish", "bomb.yaml", "--note", "x"], env=env,
                            catch_exceptions=False)
    assert published.exit_code == 2 and BOMB_REASON in published.output and took < 5


# --------------------------------------------------------------------------- the API and the console


@pytest.fixture
def api(world, engine):
    world.add("customers", customer("C1", tier="gold"))
    with engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=role, role=role, now=NOW)[1]
                for role in ("marketer", "approver")}
    app = create_app(world.settings.replace(approval=Approval.REQUIRED), clock=lambda: NOW)
    client = app.test_client()

    def post(path: str, who: str = "marketer", **kw: Any) -> Any:
        return client.post(path, headers={"Authorization": f"Bearer {keys[who]}"}, **kw)

    yield post
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def test_a_bomb_posted_as_a_draft_is_a_400_naming_file_and_line_at_once(api, world):
    answer, took = timed(api, "/api/v1/rules/drafts", data=bomb().encode(), content_type="application/yaml",
                         query_string={"file": "holiday.yaml", "note": "boom"})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert took < 1
    error = answer.get_json()["error"]
    assert error["details"]["problems"] == [{"file": "holiday.yaml", "line": bomb_line(), "reason": BOMB_REASON}]
    as_json, took = timed(api, "/api/v1/rules/drafts", json={"file": "holiday.yaml", "source": bomb(), "note": "boom"})
    assert as_json.status_code == 400 and took < 1
    with world.engine.connect() as conn:  # nothing stored: a text nobody should read again
        from sqlalchemy import func, select

        from campaign_engine.store.models import RuleDraft

        assert conn.execute(select(func.count()).select_from(RuleDraft)).scalar_one() == 0


def test_a_bomb_sent_to_validate_answers_its_problem_at_once(api):
    answer, took = timed(api, "/api/v1/rules/validate", data=bomb().encode(), content_type="application/yaml",
                         query_string={"file": "holiday.yaml"})
    assert answer.status_code == 200 and took < 1
    body = answer.get_json()
    assert body["valid"] is False
    assert body["problems"] == [{"file": "holiday.yaml", "line": bomb_line(), "reason": BOMB_REASON}]


def test_a_shared_condition_list_publishes_through_the_api(api):
    answer = api("/api/v1/rules/drafts", json={"file": "shared.yaml", "source": SHARED, "note": "two gold rules",
                                              "templates": {"greet/sms.txt.j2": GREETING_SMS}})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    draft = answer.get_json()
    assert draft["status"] == "pending" and draft["problems"] == [] and draft["rules"] == ["gold-a", "gold-b"]
    assert api(f"/api/v1/rules/drafts/{draft['id']}/approve", who="approver", json={}).status_code == 200


def test_the_console_editor_shows_the_bomb_problem_at_once(console, client_for):
    marketer = client_for("marketer")
    form = {"file": "bomb.yaml", "source": bomb(), "part:sms.txt.j2": "x"}
    checked, took = timed(marketer.post, "/console/rules/check", form)
    assert checked.status_code == 200 and took < 1
    assert BOMB_REASON in checked.get_data(as_text=True)
    submitted, took = timed(marketer.post, "/console/rules/submit", {**form, "note": "boom"})
    assert submitted.status_code == 422 and took < 1
    assert BOMB_REASON in submitted.get_data(as_text=True)
    assert [d for d in console.services.store.drafts() if d["file"] == "bomb.yaml"] == []
