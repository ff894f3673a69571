"""Hostile input to every operation of the API's own OpenAPI document: always a JSON 4xx with the
error body `{"error": {"code", "message", "details"}}`, never a 5xx, on SQLite and (with
CAMPAIGN_ENGINE_TEST_DATABASE_URL) on PostgreSQL, which cannot store a NUL.

The operations, their query and path parameters and their body fields are read from
/api/v1/openapi.json, so a new endpoint is covered the day it is documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from flask_smorest.spec.plugins import FlaskPlugin

from campaign_engine.api import create_app
from campaign_engine.api.errors import CODES
from campaign_engine.api.input_limits import MAX_JSON_DEPTH, json_problem, unstorable
from campaign_engine.imports import COLUMNS
from campaign_engine.store.apikeys import create_key
from campaign_engine.store.models import CampaignRun, Customer
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, customer, deposit, publish_rules

# Path values that reach a real row (so a check that is missing would reach the database).
PATH_VALUES = {"rule_id": "birthday-greeting", "customer_id": "C1", "code": "TD1Y", "deposit_id": "D1",
               "run_id": "1", "message_id": "1", "provider": "http_sms", "token": "not-a-token"}
# Routes outside the OpenAPI document (the document itself, its page, static files).
# not the JSON API: its own document and docs page, static files, Prometheus' text (/metrics), and the
# console's HTML pages (under /console, with / /admin /dashboard sending a browser there)
UNDOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs", "/static/<path:filename>", "/metrics", "/", "/admin",
                "/dashboard"}
NUL = "contains a NUL character (U+0000), which cannot be stored"


def deep(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI template, e.g. /api/v1/customers/{customer_id}
    query: tuple[str, ...]
    path_params: dict[str, dict[str, Any]]
    body_types: tuple[str, ...]
    body_fields: tuple[str, ...]

    def url(self, **values: str) -> str:
        url = self.path
        for name, schema in self.path_params.items():
            value = values.get(name, PATH_VALUES.get(name) or (schema.get("enum") or ["x"])[0])
            url = url.replace("{" + name + "}", quote(value, safe=""))
        return url

    @property
    def takes_json(self) -> bool:
        return "application/json" in self.body_types

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI 3 document, with its parameters and JSON body fields."""
    schemas = spec.get("components", {}).get("schemas", {})
    found = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = shared + op.get("parameters", [])
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            found.append(Operation(
                method.upper(), path, tuple(p["name"] for p in params if p["in"] == "query"),
                {p["name"]: p.get("schema", {}) for p in params if p["in"] == "path"},
                tuple(content), tuple(schema.get("properties", {})) or ("x",)))
    return found


# --------------------------------------------------------------------------- hostile shapes

Request = tuple[str, Operation, str, dict[str, Any]]  # (what, operation, url, client.open kwargs)


def _json_bodies(op: Operation, body: Callable[[str], str], what: str) -> Iterator[Request]:
    if op.takes_json:
        for field in op.body_fields:
            yield f"{what} in {field}", op, op.url(), {"data": body(field), "content_type": "application/json"}


def _each_body_field(template: str, what: str) -> Callable[[Operation], Iterator[Request]]:
    return lambda op: _json_bodies(op, lambda field: template.replace("FIELD", json.dumps(field)), what)


def _whole_body(data: str | bytes, content_type: str, what: str) -> Callable[[Operation], Iterator[Request]]:
    def shape(op: Operation) -> Iterator[Request]:
        if op.body_types:
            yield what, op, op.url(), {"data": data, "content_type": content_type}
    return shape


def _each_query(value: str, what: str) -> Callable[[Operation], Iterator[Request]]:
    def shape(op: Operation) -> Iterator[Request]:
        for name in op.query or ("q",):  # an undeclared parameter where none is declared
            yield f"{what} in ?{name}", op, op.url(), {"query_string": {name: value}}
    return shape


def _each_path(value: str, what: str) -> Callable[[Operation], Iterator[Request]]:
    def shape(op: Operation) -> Iterator[Request]:
        for name in op.path_params:
            yield f"{what} in {{{name}}}", op, op.url(**{name: value}), {}
    return shape


def _query_name(op: Operation) -> Iterator[Request]:
    yield "NUL in a query parameter's name", op, op.url(), {"query_string": {"\x00": "1"}}


SHAPES: dict[str, Callable[[Operation], Iterator[Request]]] = {
    "deep JSON body": _whole_body(deep(), "application/json", "deep JSON body"),
    "deep JSON in a field": _each_body_field("{FIELD: " + deep() + "}", "deep JSON"),
    "JSON 200 levels deep in a field": _each_body_field("{FIELD: " + deep(200) + "}", "200 levels"),
    "NUL in a JSON value": _each_body_field('{FIELD: "a\\u0000b"}', "NUL"),
    "NUL in a JSON key": _each_body_field('{FIELD: {"\\u0000": 1}}', "NUL key"),
    "lone surrogate in a JSON value": _each_body_field('{FIELD: ["\\ud800"]}', "lone surrogate"),
    "number beyond Python's digit limit": _each_body_field("{FIELD: 1" + "0" * 5000 + "}", "huge number"),
    "non-JSON body": _whole_body("{not json", "application/json", "non-JSON body"),
    "body not UTF-8": _whole_body(b'{"a": "\xff\xfe"}', "application/json", "body not UTF-8"),
    "wrong content type": _whole_body('{"dry_run": true}', "text/plain", "text/plain body"),
    "form body": _whole_body("dry_run=true", "application/x-www-form-urlencoded", "form body"),
    "NUL in each query parameter": _each_query("\x00", "NUL"),
    "NUL in a query parameter's name": _query_name,
    "10,000-character query value": _each_query("x" * 10_000, "10,000 characters"),
    "NUL in each path parameter": _each_path("\x00", "NUL"),
    "10,000-character path value": _each_path("x" * 10_000, "10,000 characters"),
}


# --------------------------------------------------------------------------- the app under test


@pytest.fixture
def hostile(settings, engine):  # type: ignore[no-untyped-def]
    """An app with a customer, products and a deposit, and an admin key (no rate limit)."""
    publish_rules(settings)
    app = create_app(settings.replace(api_rate_limit=0), clock=lambda: NOW)
    with engine.begin() as conn:
        key = create_key(conn, name="hostile", role="admin", now=NOW)[1]
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [customer("C1")], now=NOW, source="test")
        upsert_rows(conn, "deposits", [deposit("D1", "C1")], now=NOW, source="test")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    yield client
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def json_4xx(resp: Any) -> str | None:
    """None for a JSON 4xx with the error body, else what is wrong with the answer."""
    text = resp.get_data(as_text=True)
    if not 400 <= resp.status_code < 500:
        return f"{resp.status_code} {text[:300]}"
    if resp.mimetype != "application/json":
        return f"{resp.status_code} {resp.mimetype}: {text[:300]}"
    body = json.loads(text)
    error = body.get("error") if isinstance(body, dict) else None
    if list(body) != ["error"] or not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        return f"{resp.status_code} not the error body: {text[:300]}"
    if error["code"] != CODES[resp.status_code] or not error["message"] or not isinstance(error["details"], dict):
        return f"{resp.status_code} bad error body: {text[:300]}"
    return None


# --------------------------------------------------------------------------- every operation, every shape


def test_api_hostile_every_route_is_in_the_openapi_document(hostile):
    spec = hostile.get("/api/v1/openapi.json").get_json()
    documented = {(op.method, op.path) for op in operations(spec)}
    for rule in hostile.application.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED or rule.rule.startswith("/console"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, FlaskPlugin.flaskpath2openapi(rule.rule)) in documented, (
                f"{method} {rule.rule} is not in the OpenAPI document: document it, or list it in UNDOCUMENTED")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_api_hostile_input_answers_json_4xx_on_every_operation(hostile, shape):
    ops = operations(hostile.get("/api/v1/openapi.json").get_json())
    assert len(ops) >= 30
    failures, sent = [], 0
    for what, op, url, kw in (r for op in ops for r in SHAPES[shape](op)):
        sent += 1
        wrong = json_4xx(hostile.open(url, method=op.method, **kw))
        if wrong is not None:
            failures.append(f"{op} ({what}): {wrong}")
    assert sent, f"no operation takes {shape}"
    assert not failures, f"{len(failures)} of {sent} requests:\n" + "\n".join(failures)


@pytest.mark.parametrize("url", ["/api/v1/openapi.json", "/api/v1/docs", "/static/x.js", "/no/such/route"])
def test_api_hostile_query_answers_json_400_outside_the_document(hostile, url):
    for query in ({"q": "\x00"}, {"q": "x" * 10_000}, {"\x00": "1"}):
        resp = hostile.get(url, query_string=query)
        assert json_4xx(resp) is None and resp.status_code == 400, (url, query)


def test_api_hostile_nul_in_static_path_answers_json_4xx(hostile):
    assert json_4xx(hostile.get("/static/%00")) is None


# --------------------------------------------------------------------------- the messages, and what still passes


def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert json_4xx(resp) is None and resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()["error"]


def test_api_hostile_deep_json_refused_with_its_depth(hostile, engine):
    for body in (deep(), '{"event_id": "e1", "product": ' + deep(100) + "}"):
        error = error_of(hostile.post("/api/v1/events/product-launch", data=body,
                                      content_type="application/json"), 400)
        assert error["message"] == f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    assert list(error["details"]["fields"]) == ["product" + ".0" * (MAX_JSON_DEPTH - 1)]
    with engine.connect() as conn:
        assert conn.execute(CampaignRun.__table__.select()).first() is None


def test_api_hostile_nul_in_a_filter_names_the_parameter(hostile):
    for path, name in (("/api/v1/messages", "rule"), ("/api/v1/messages", "status"), ("/api/v1/customers", "city"),
                       ("/api/v1/customers/C1/messages", "customer"), ("/api/v1/runs", "status")):
        error = error_of(hostile.get(path, query_string={name: "上海\x00"}), 400)
        assert error["message"] == f"query parameter {name!r} {NUL}"
        assert error["details"]["fields"] == {f"query.{name}": [NUL]}


def test_api_hostile_long_query_value_names_the_parameter_and_1000_still_passes(hostile):
    error = error_of(hostile.get("/api/v1/messages", query_string={"rule": "x" * 10_000}), 400)
    assert error["message"] == "query parameter 'rule' is longer than 1000 characters (10000)"
    assert list(error["details"]["fields"]) == ["query.rule"]
    assert hostile.get("/api/v1/rules", query_string={"note": "x" * 1000}).status_code == 200
    # 1000 characters pass the edge; the filter's own limit answers
    resp = hostile.get("/api/v1/messages", query_string={"rule": "x" * 1000})
    assert error_of(resp, 400)["details"]["fields"] == {"query.rule": ["Longer than maximum length 64."]}


def test_api_hostile_nul_in_a_path_parameter_refused(hostile):
    error = error_of(hostile.get("/api/v1/customers/C1%00"), 400)
    assert error["message"] == "path parameter 'customer_id' contains a NUL character (U+0000), which cannot be stored"


def test_api_hostile_nul_and_lone_surrogate_in_a_body_name_the_field(hostile, engine):
    body = '{"name": "王\\u0000", "tier": "gold"}'
    error = error_of(hostile.put("/api/v1/customers/C9", data=body, content_type="application/json"), 400)
    assert error["message"] == "body field 'name' contains a NUL character (U+0000), which cannot be stored"
    body = '{"name": "王", "tier": "gold", "city": "\\udc80"}'
    error = error_of(hostile.put("/api/v1/customers/C9", data=body, content_type="application/json"), 400)
    assert error["details"]["fields"] == {"city": ["contains a lone surrogate (U+DC80), which is not text"]}
    with engine.connect() as conn:
        assert conn.execute(Customer.__table__.select().where(Customer.customer_id == "C9")).first() is None


def test_api_hostile_wrong_content_type_refused_before_defaults_apply(hostile, engine):
    # a dry run asked for as a form must not become a real run of every rule
    error = error_of(hostile.post("/api/v1/runs", data="dry_run=true"), 415)
    assert "application/json" in error["message"]
    with engine.connect() as conn:
        assert conn.execute(CampaignRun.__table__.select()).first() is None


def test_api_hostile_good_input_still_accepted(hostile):
    # paired surrogates (an emoji), Chinese text, an empty JSON body, YAML, and 64 levels of JSON
    body = {"name": "王小明😀", "tier": "gold", "city": "上海"}
    assert hostile.put("/api/v1/customers/C9", json=body).status_code == 200
    assert hostile.get("/api/v1/customers", query_string={"city": "上海"}).status_code == 200
    resp = hostile.post("/api/v1/runs", data="", content_type="application/json")  # no body: the defaults
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert hostile.post("/api/v1/rules/validate", data="id: x\n", content_type="application/yaml").status_code == 200
    # 64 levels pass the edge: what answers is the event check, not the depth limit
    nested = {"event_id": "e1", "product": json.loads(deep(MAX_JSON_DEPTH - 1))}
    error = error_of(hostile.post("/api/v1/events/product-launch", json=nested), 400)
    assert error["message"] == "the request is invalid: see details.fields"
    assert error["details"]["fields"]["product._schema"] == ["Invalid input type."]


def test_api_hostile_csv_import_with_nul_reports_the_row_and_keeps_the_rest(hostile, engine):
    def line(**values: str) -> str:
        return ",".join(values.get(column, "") for column in COLUMNS["customers"])

    good = line(customer_id="C7", name="王芳", tier="gold")
    csv_text = "\n".join([",".join(COLUMNS["customers"]), good, line(customer_id="C8", name="王\x00芳", tier="gold"),
                          good]) + "\n"

    report = hostile.post("/api/v1/imports/customers", data=csv_text.encode(), content_type="text/csv").get_json()

    assert (report["rows"], report["upserted"], report["ok"]) == (3, 1, False)
    assert report["problems"] == [
        {"file": "request body", "line": 3, "field": "name",
         "reason": NUL},
        {"file": "request body", "line": 4, "field": "customer_id",
         "reason": "customer_id 'C7' also on line 2; the first row was kept"}]
    with engine.connect() as conn:
        assert conn.execute(Customer.__table__.select().where(Customer.customer_id == "C8")).first() is None


@pytest.mark.parametrize(("source", "line", "reason"), [
    ("id: a\nname: x\x00y\n", 2, "the file contains a NUL character (U+0000), which cannot be stored"),
    ('id: a\nname: "x\\0y"\n', 2, "a value contains a NUL character (U+0000), which cannot be stored"),
    ('id: a\n"\\ud800": 1\n', 2, "a key contains a lone surrogate (U+D800), which is not text"),
    ("id: a\nconditions: " + deep(100) + "\n", 2, f"nested deeper than {MAX_JSON_DEPTH} levels"),
    ("id: a\nconditions: " + deep(100_000) + "\n", None, f"nested deeper than {MAX_JSON_DEPTH} levels"),
])
def test_api_hostile_rule_yaml_problem_names_file_and_line(hostile, source, line, reason):
    as_json = {"json": {"source": source, "file": "bad.yaml"}}
    if "\x00" in source:  # a raw NUL in a JSON string: refused at the edge already
        assert error_of(hostile.post("/api/v1/rules/validate", **as_json), 400)["details"]["fields"] == {
            "source": [NUL]}
        as_json = {"data": source.encode(), "content_type": "text/yaml", "query_string": {"file": "bad.yaml"}}
    for kw in (as_json,
               {"data": source.encode(), "content_type": "application/yaml", "query_string": {"file": "bad.yaml"}}):
        resp = hostile.post("/api/v1/rules/validate", **kw)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        expected = {"file": "bad.yaml", "reason": reason, **({"line": line} if line else {})}
        assert body["valid"] is False and body["problems"] == [expected]


# --------------------------------------------------------------------------- the checks themselves


def test_json_problem_depth_limit_is_inclusive():
    assert json_problem(json.loads(deep(MAX_JSON_DEPTH))) is None
    assert json_problem(json.loads(deep(MAX_JSON_DEPTH + 1))) == (
        ".".join(["0"] * MAX_JSON_DEPTH), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    assert json_problem({"a": {"b": [1, "x", {"c": None}]}}) is None


def test_json_problem_names_the_key_or_value():
    assert json_problem({"a": [1, "ok", "b\x00"]}) == ("a.2", NUL)
    assert json_problem({"a": {"\x00": 1}}) == ("a.\x00", f"a key {NUL}")
    assert json_problem("\ud800") == ("_", "contains a lone surrogate (U+D800), which is not text")


def test_unstorable_allows_any_real_text():
    assert unstorable("王小明 😀 \t\n\x01\ufffe\U0010ffff") is None
    assert unstorable("a\x00") and unstorable("\udfff")
