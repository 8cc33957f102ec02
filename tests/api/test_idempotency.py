"""Idempotent writes: a repeated ``Idempotency-Key`` with the same request answers with the
first response and does nothing again; with another body, 409; an error answer is kept
too; keys are per user and expire after 24 h; a malformed key is a 400."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.models import ChangeLogEntry, IdempotencyRecord, KillSwitch
from tests.conftest import role_user, signed_in

SID = "research_fx_momentum_v13"


@pytest.fixture
def olga(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "olga", "operator"))


def post(client, path, body, key):
    return client.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_repeated_key_replays_the_first_response_and_does_nothing_again(olga):
    first = post(olga, f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "go"}, "start-1")
    assert first.status_code == 200 and first.json()["status"] == "running"
    again = post(olga, f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "go"}, "start-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ChangeLogEntry.objects.filter(action="session_start", target_id=SID).count() == 1
    # without the key the same request is a second, illegal start
    assert olga.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start"},
                     content_type="application/json").status_code == 409


@pytest.mark.django_db
def test_the_same_key_with_another_request_is_a_409(olga):
    post(olga, "/api/v1/killswitches/", {"scope": "global", "state": "reducing", "reason": "vol"}, "k-1")
    other = post(olga, "/api/v1/killswitches/", {"scope": "global", "state": "halted", "reason": "vol"}, "k-1")
    assert other.status_code == 409 and "different request" in other.json()["error"]["message"]
    assert KillSwitch.objects.get(scope="global").state == "reducing"


@pytest.mark.django_db
def test_an_error_answer_is_kept_for_its_key(olga):
    first = post(olga, f"/api/v1/sessions/{SID}/actions/", {"action": "resume"}, "r-1")
    assert first.status_code == 409  # a scheduled session cannot resume
    again = post(olga, f"/api/v1/sessions/{SID}/actions/", {"action": "resume"}, "r-1")
    assert again.status_code == 409 and again.json() == first.json() and again.headers["Idempotent-Replayed"]


@pytest.mark.django_db
def test_keys_are_per_user_and_expire(olga, django_user_model):
    post(olga, "/api/v1/killswitches/", {"scope": "global", "state": "reducing", "reason": "a"}, "shared")
    omar = signed_in(role_user(django_user_model, "omar", "operator"))
    theirs = post(omar, "/api/v1/killswitches/", {"scope": "global", "state": "halted", "reason": "b"}, "shared")
    assert theirs.status_code == 200 and "Idempotent-Replayed" not in theirs.headers
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    later = post(olga, "/api/v1/killswitches/", {"scope": "global", "state": "active", "reason": "c"}, "shared")
    assert later.status_code == 200 and "Idempotent-Replayed" not in later.headers
    assert KillSwitch.objects.get(scope="global").state == "active"


@pytest.mark.django_db
def test_a_malformed_key_is_a_400(olga):
    bad = post(olga, "/api/v1/killswitches/", {"scope": "global", "state": "reducing"}, "x" * 201)
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert not KillSwitch.objects.filter(scope="global").exists()


@pytest.mark.django_db
def test_a_key_whose_first_request_is_still_running_is_a_409(django_user_model):
    from ifns_paper.exceptions import Conflict
    from sessions_app.services.idempotency import idempotency_claim, idempotency_store

    user = django_user_model.objects.create_user("u")
    assert idempotency_claim(user=user, key="k", digest="d") is None  # the first request claims it
    with pytest.raises(Conflict, match="still being handled"):
        idempotency_claim(user=user, key="k", digest="d")
    idempotency_store(user=user, key="k", status_code=500, response=None)  # a server error releases it
    assert idempotency_claim(user=user, key="k", digest="d") is None
