"""Property-based run of the API against its own OpenAPI document (schemathesis, bounded).

Every documented operation is called with generated requests under an admin key: no 5xx,
no undocumented status code, and every response matches its documented schema.
"""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from factories import publish_rules
from campaign_engine.api import create_app
from campaign_engine.store.apikeys import create_key

NOW = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def api_app(settings, engine):
    publish_rules(settings)
    app = create_app(settings, clock=lambda: NOW)
    yield app
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


@pytest.fixture
def admin_key(engine) -> str:
    with engine.begin() as conn:
        return create_key(conn, name="schemathesis", role="admin", now=NOW)[1]


@pytest.fixture
def api_schema(api_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(max_examples=12, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, admin_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_key}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance])
