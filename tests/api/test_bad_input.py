"""Bad input to the API, each answered with a 4xx in the one error shape, never a 500, and
nothing written: malformed JSON, a body that is not JSON, wrong types, unknown fields,
unknown enum values, a huge body, negative or huge paging values."""

from __future__ import annotations

import pytest

from sessions_app.models import ChangeLogEntry, KillSwitch
from tests.conftest import role_user, signed_in

SID = "research_fx_momentum_v13"
ACTIONS = f"/api/v1/sessions/{SID}/actions/"


@pytest.fixture
def olga(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "olga", "operator"))


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"])
    return body["error"]


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "content_type", "status", "code", "field"), [
    ('{"action": "start",', "application/json", 400, "parse_error", None),
    ("action=start", "application/x-www-form-urlencoded", 415, "unsupported_media_type", None),
    ('{"action": 7}', "application/json", 400, "invalid", "action"),
    ('{"action": "launch"}', "application/json", 400, "invalid", "action"),
    ('{"action": "start", "reasn": "typo"}', "application/json", 400, "invalid", "reasn"),
    ('["start"]', "application/json", 400, "invalid", "non_field_errors"),
    ('{"action": "start", "reason": "' + "x" * 3_000_000 + '"}', "application/json", 413, "too_large", None),
])
def test_a_bad_action_body_is_refused_and_changes_nothing(olga, body, content_type, status, code, field):
    error = error_of(olga.generic("POST", ACTIONS, body, content_type=content_type), status)
    assert error["code"] == code
    if field is not None:
        assert field in error["fields"]
    assert not ChangeLogEntry.objects.filter(action="session_start").exists()


@pytest.mark.django_db
def test_kill_switch_body_with_wrong_types_and_unknown_state(olga):
    error = error_of(olga.post("/api/v1/killswitches/", {"scope": ["global"], "state": "panic"},
                               content_type="application/json"), 400)
    assert set(error["fields"]) == {"scope", "state"}
    assert not KillSwitch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["after=-1", "after=99999999999999999999999", "limit=0", "limit=1001",
                                   "limit=abc", "type=nope", "until=-5"])
def test_bad_paging_is_400_naming_the_parameter(olga, query):
    error = error_of(olga.get(f"/api/v1/sessions/{SID}/events/?{query}"), 400)
    assert query.split("=")[0] in error["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", ['{"action": "start", "reason": "a\\u0000b"}', '{"action": "start", "\\u0000": 1}',
                                  '{"action": "start", "reason": "\\ud800"}',
                                  '{"action": "start", "x": {"y": ["\\udfff"]}}'])
def test_text_no_database_can_store_is_refused_before_the_view(olga, body):
    error = error_of(olga.generic("POST", ACTIONS, body, content_type="application/json",
                                  HTTP_IDEMPOTENCY_KEY="k-1"), 400)
    assert error["code"] == "parse_error" and "NUL character or an unpaired surrogate" in error["message"]
    assert not ChangeLogEntry.objects.filter(action="session_start").exists()
