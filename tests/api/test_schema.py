"""The OpenAPI schema: generated without a warning, valid, served at /api/schema/ with the
docs at /api/docs/ (Swagger UI from local static files, no CDN); it documents /api/v1/
only, the token scheme and the error shape."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from ifns_paper.api_schema import SWITCH_STATES
from ifns_paper.engine.controls import SwitchState


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=StringIO())
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    assert "/api/v1/sessions/{session_id}/actions/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`Token <key>`; a key comes from `manage.py paper_token create USER`"}
    action = schema["paths"]["/api/v1/sessions/{session_id}/actions/"]["post"]
    assert set(action["responses"]) == {"200", "400", "401", "403", "404", "409", "429"}
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorBody")
    ids = [op["operationId"] for methods in schema["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))


def test_the_schemas_switch_states_are_the_engines():
    assert [s.value for s in SwitchState] == SWITCH_STATES


@pytest.mark.django_db
def test_schema_and_docs_are_served_to_anyone_from_local_files():
    schema = Client().get("/api/schema/?format=json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "IFNS Paper API"
    docs = Client().get("/api/docs/")
    html = docs.content.decode()
    assert docs.status_code == 200 and "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html and "cdn" not in html.lower()
