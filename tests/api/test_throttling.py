"""Throttling: writes per user beyond the rate get 429 with Retry-After (reads go on); an
address that keeps failing token sign-ins gets 429 even with a good token, for a minute."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.throttling import SimpleRateThrottle

from sessions_app.services.tokens import token_create
from tests.conftest import role_user, signed_in


@pytest.mark.django_db
def test_writes_beyond_the_rate_are_429_and_reads_go_on(loaded, django_user_model, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"writes": "3/min"})
    olga = signed_in(role_user(django_user_model, "olga", "operator"))
    codes = [olga.post("/api/v1/killswitches/", {"scope": "global", "state": s, "reason": "t"},
                       content_type="application/json").status_code
             for s in ("reducing", "active", "reducing", "halted")]
    assert codes == [200, 200, 200, 429]
    refused = olga.post("/api/v1/killswitches/", {"scope": "global", "state": "halted"},
                        content_type="application/json")
    assert refused.json()["error"]["code"] == "throttled" and int(refused.headers["Retry-After"]) > 0
    assert olga.get("/api/v1/killswitches/").status_code == 200
    omar = signed_in(role_user(django_user_model, "omar", "operator"))  # per user
    assert omar.post("/api/v1/killswitches/", {"scope": "global", "state": "active", "reason": "t"},
                     content_type="application/json").status_code == 200


@pytest.mark.django_db
def test_repeated_bad_tokens_from_one_address_are_throttled(loaded, django_user_model, settings):
    settings.IFNS_TOKEN_FAILURES_PER_MIN = 3
    role_user(django_user_model, "vera", "viewer")
    good = token_create(username="vera", name="t", actor="t")[1]
    guesser = Client(REMOTE_ADDR="10.0.0.7")
    codes = [guesser.get("/api/v1/sessions/", HTTP_AUTHORIZATION=f"Token guess-{i}").status_code for i in range(3)]
    assert codes == [401, 401, 401]
    blocked = guesser.get("/api/v1/sessions/", HTTP_AUTHORIZATION=f"Token {good}")
    assert blocked.status_code == 429 and "failed token sign-ins" in blocked.json()["error"]["message"]
    elsewhere = Client(REMOTE_ADDR="10.0.0.8").get("/api/v1/sessions/", HTTP_AUTHORIZATION=f"Token {good}")
    assert elsewhere.status_code == 200
