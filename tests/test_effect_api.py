"""The effect's entry points (issue #11): POST /conversions (roles, per-item 400 by index, nothing
recorded on a bad batch), GET /rules/{id}/effect (every role, 404/400), `campaign-engine effect`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from campaign_engine.api import create_app
from campaign_engine.store import apikeys
from campaign_engine.store.models import Conversion
from factories import NOW, customer, rule_yaml, world_cli

ROLES = ("viewer", "marketer", "operator", "admin")
GOAL_RULE = rule_yaml("push", "  customer.tier: gold\n", channels="[sms]",
                      extra="holdout: {percent: 10}\ngoal: {type: product_purchase, product_type: fund}\n")
PLAIN_RULE = rule_yaml("plain", "  customer.tier: gold\n", channels="[sms]")


def item(cid: str = "V1", **overrides: Any) -> dict[str, Any]:
    row = {"conversion_id": cid, "customer_id": "C1", "type": "product_purchase", "product_code": "FUND-EQ01",
           "amount": 5000, "occurred_at": "2026-03-10T10:00:00+08:00"}
    row.update(overrides)
    return row


@pytest.fixture
def api(world):
    world.rule("push.yaml", GOAL_RULE)
    world.rule("plain.yaml", PLAIN_RULE)
    world.add("customers", customer("C1"), customer("C2"))
    world.publish()
    app = create_app(world.settings, clock=lambda: NOW, background_workers=1)
    with world.engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW)[1] for role in ROLES}

    def call(method: str, path: str, role: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
        return app.test_client().open(path, method=method, headers=headers, **kw)

    yield call
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def stored(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Conversion)).scalar_one()


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]["details"]


# --------------------------------------------------------------------------- POST /conversions


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("viewer", 403), ("marketer", 403),
                                              ("operator", 200), ("admin", 200)])
def test_api_conversions_need_an_operator_or_admin(api, world, role, status):
    resp = api("POST", "/api/v1/conversions", role, json={"conversions": [item()]})
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert stored(world) == (1 if status == 200 else 0)


def test_api_conversions_bad_items_answer_400_by_index_and_record_nothing(api, world):
    batch = [item("V0"), item("V1", amount="-3"), item("V2", customer_id="C404"), item("V3", color="red"),
             "not an object", item("V5", occurred_at="yesterday", type="sale"), item("V6", amount={"a": 1}),
             item("V7", product_code="NOPE")]
    details = error(api("POST", "/api/v1/conversions", "operator", json={"conversions": batch}), 400)
    assert set(details["fields"]) == {"conversions.1.amount", "conversions.3.color", "conversions.4",
                                      "conversions.5.occurred_at", "conversions.5.type", "conversions.6.amount"}
    assert stored(world) == 0
    # the items that parse are then checked against the database, still all or nothing
    batch = [item("V0"), item("V2", customer_id="C404"), item("V7", product_code="NOPE")]
    details = error(api("POST", "/api/v1/conversions", "operator", json={"conversions": batch}), 400)
    assert details["fields"] == {"conversions.1.customer_id": ["unknown customer 'C404'"],
                                 "conversions.2.product_code": ["unknown product_code 'NOPE'"]}
    assert stored(world) == 0


def test_api_conversions_are_idempotent_and_refuse_an_id_with_other_values(api, world):
    first = api("POST", "/api/v1/conversions", "operator", json={"conversions": [item("V1"), item("V2")]})
    assert first.get_json() == {"received": 2, "recorded": 2, "already_recorded": 0}
    replay = api("POST", "/api/v1/conversions", "admin",
                 json={"conversions": [item("V2", amount="5000.00"), item("V3")]})
    assert replay.get_json() == {"received": 2, "recorded": 1, "already_recorded": 1}
    details = error(api("POST", "/api/v1/conversions", "operator",
                        json={"conversions": [item("V4"), item("V1", amount=1)]}), 400)
    assert list(details["fields"]) == ["conversions.1.conversion_id"]
    assert "recorded already with other values" in details["fields"]["conversions.1.conversion_id"][0]
    assert stored(world) == 3


@pytest.mark.parametrize("body", [{}, {"conversions": []}, {"conversions": "x"},
                                  {"conversions": [item()] * 10_001}])
def test_api_conversions_body_must_hold_one_to_10000_items(api, world, body):
    assert "conversions" in error(api("POST", "/api/v1/conversions", "operator", json=body), 400)["fields"]
    assert stored(world) == 0


# --------------------------------------------------------------------------- GET /rules/{id}/effect


@pytest.mark.parametrize("role", ROLES)
def test_api_effect_every_role_may_read_it(api, role):
    resp = api("GET", "/api/v1/rules/push/effect?from=2026-03-01&to=2026-03-10", role)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"rule", "from", "to", "window_days", "readable", "reason", "treated", "holdout", "lift",
                         "incremental", "success_rate"}
    assert set(body["treated"]) == set(body["holdout"]) == {"n", "conversions", "rate", "ci", "amount"}
    assert set(body["lift"]) == {"absolute", "ci", "relative", "p_value"}
    assert set(body["incremental"]) == {"conversions", "amount"}
    assert (body["rule"], body["from"], body["to"], body["window_days"]) == ("push", "2026-03-01", "2026-03-10", 14)
    assert body["readable"] is False and "the holdout has only 0 customers" in body["reason"]
    assert error(api("GET", "/api/v1/rules/push/effect"), 401) == {}


def test_api_effect_unknown_rule_404_no_goal_or_bad_period_400(api):
    error(api("GET", "/api/v1/rules/nope/effect", "viewer"), 404)
    assert list(error(api("GET", "/api/v1/rules/plain/effect", "viewer"), 400)["fields"]) == ["goal"]
    assert list(error(api("GET", "/api/v1/rules/push/effect?from=2026-03-10&to=2026-03-01", "viewer"),
                      400)["fields"]) == ["from"]
    assert "query.from" in error(api("GET", "/api/v1/rules/push/effect?from=yesterday", "viewer"), 400)["fields"]
    assert "query.run" in error(api("GET", "/api/v1/rules/push/effect?run=0", "viewer"), 400)["fields"]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli(world):
    """`campaign-engine` on the world's database, with both rules published."""
    world.rule("push.yaml", GOAL_RULE)
    world.rule("plain.yaml", PLAIN_RULE)
    return world_cli(world)


def test_cli_effect_lists_every_rule_with_a_goal_and_explains_itself(cli):
    result = cli("effect", "--json", "--from", "2026-03-01", "--to", "2026-03-10")
    assert result.exit_code == 0, result.output
    assert [r["rule"] for r in json.loads(result.output)] == ["push"]
    text = cli("effect", "--rule", "push", "--to", "2026-03-10")
    assert text.exit_code == 0
    lines = text.output.splitlines()
    assert lines[0] == "push 测试push: contacts … .. 2026-03-10, goal product_purchase of fund within 14 days"
    assert lines[1].startswith("readable: no: the holdout has only 0 customers")
    assert "success rate (精准营销成功率" in text.output


@pytest.mark.parametrize(("args", "says"), [
    (("--rule", "nope"), "rule 'nope' not found"), (("--rule", "plain"), "no goal"),
    (("--rule", "push", "--from", "2026-03-10", "--to", "2026-03-01"), "is after to"),
    (("--rule", "push", "--from", "March"), "is not a date")])
def test_cli_effect_bad_input_exits_2_naming_it(cli, args, says):
    result = cli("effect", *args)
    assert result.exit_code == 2 and says in result.output
