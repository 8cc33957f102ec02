"""The API fuzzed against its own OpenAPI schema (schemathesis, in-process through Django's
WSGI app): every operation, with generated valid and invalid inputs, as an operator with a
token. No server error, no response outside the schema (status, content type, body), no
schema-violating request accepted.
Examples are bounded so that the whole run stays within a minute or two."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sessions_app.services.tokens import token_create
from tests.conftest import role_user
from tests.fuzz import examples

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def _keep_the_test_connection():
    """Django closes the database connection when a request ends; inside the test's
    transaction that would close it under the test. Django's test client disconnects that
    handler around its requests: the same here, around the WSGI app's."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def operator_key(loaded, django_user_model, monkeypatch, _keep_the_test_connection) -> str:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"writes": "100000/min"})  # fuzzing is not abuse
    role_user(django_user_model, "fuzz", "operator")
    return token_create(username="fuzz", name="schemathesis", actor="tests")[1]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=examples(15), deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case, operator_key):
    # Every check but "schema-valid data is accepted": a lane name, a kill-switch scope or a
    # time given as text is checked against the database or parsed, which no schema says —
    # a generated "lane=0" is rightly a 400 that names the field.
    case.call_and_validate(headers={"Authorization": f"Token {operator_key}"},
                           excluded_checks=[positive_data_acceptance])
