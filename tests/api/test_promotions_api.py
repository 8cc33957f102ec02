"""Governance over the API, as a script and a second person would use it: an operator (token)
evaluates a traded session and requests its promotion; the operator cannot approve it
(no role: 403), an admin who asked cannot approve their own (four eyes: 409); an approver
(browser session) approves it with an override; the history shows who did what."""

from __future__ import annotations

import pytest
from django.test import Client

from sessions_app.models import PaperSession
from sessions_app.services.tokens import token_create
from tests.conftest import role_user, signed_in
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures


def token_client(username: str) -> Client:
    _, key = token_create(username=username, name="test", actor="test")
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


@pytest.mark.django_db(transaction=True)
def test_request_then_four_eyes_approval_over_the_api(traded, django_user_model):  # noqa: F811
    role_user(django_user_model, "olga", "operator")
    role_user(django_user_model, "ada", "admin")
    approver = signed_in(role_user(django_user_model, "anna", "approver"))
    olga = token_client("olga")

    evaluated = olga.post(f"/api/v1/sessions/{SID}/sel/evaluate/")
    assert evaluated.status_code == 201 and evaluated.json()["recommendation"] == "extend"
    asked = olga.post("/api/v1/promotions/", {"kind": "lane_transition", "session_id": SID,
                                              "target": {"to_lane": "paper_gatecheck"}, "reason": "evidence is in"},
                      content_type="application/json")
    assert asked.status_code == 201, asked.json()
    request_id = asked.json()["id"]
    assert asked.json()["status"] == "pending" and asked.json()["requested_by"] == "olga"

    denied = olga.post(f"/api/v1/promotions/{request_id}/approve/", {"reason": "mine"},
                       content_type="application/json")
    assert denied.status_code == 403 and "approver role" in denied.json()["error"]["message"]

    own = token_client("ada")
    asked_by_ada = own.post("/api/v1/promotions/", {"kind": "lane_transition", "session_id": SID,
                                                    "target": {"to_lane": "paper_gatecheck"}, "reason": "me too"},
                            content_type="application/json").json()["id"]
    self_approval = own.post(f"/api/v1/promotions/{asked_by_ada}/approve/", {"reason": "mine"},
                             content_type="application/json")
    assert self_approval.status_code == 409 and self_approval.json()["error"]["code"] == "conflict"
    assert "four eyes" in self_approval.json()["error"]["message"]

    needs_override = approver.post(f"/api/v1/promotions/{request_id}/approve/", {"reason": "ok"},
                                   content_type="application/json")
    assert needs_override.status_code == 409 and "override" in needs_override.json()["error"]["message"]
    approved = approver.post(f"/api/v1/promotions/{request_id}/approve/",
                             {"reason": "ok", "override_reason": "short research run accepted"},
                             content_type="application/json")
    assert approved.status_code == 200, approved.json()
    body = approved.json()
    assert (body["status"], body["decided_by"], body["override_reason"]) == (
        "applied", "anna", "short research run accepted")
    clone = PaperSession.objects.get(session_id=body["result"]["session"])
    assert clone.status == "scheduled" and clone.lane.name == "paper_gatecheck"
    history = [(h["actor"], h["action"]) for h in olga.get(f"/api/v1/promotions/{request_id}/").json()["history"]]
    assert history == [("olga", "promotion_request"), ("anna", "promotion_approve")]
    listed = olga.get("/api/v1/promotions/?status=pending").json()
    assert [r["id"] for r in listed] == [asked_by_ada]
    twice = approver.post(f"/api/v1/promotions/{request_id}/approve/", {"reason": "again"},
                          content_type="application/json")
    assert twice.status_code == 409


@pytest.mark.django_db
def test_bad_promotion_requests_are_400_naming_the_field(loaded, django_user_model):
    role_user(django_user_model, "olga", "operator")
    olga = token_client("olga")
    bad_kind = olga.post("/api/v1/promotions/", {"kind": "teleport", "session_id": SID, "target": {},
                                                 "reason": "x"}, content_type="application/json")
    assert bad_kind.status_code == 400 and list(bad_kind.json()["error"]["fields"]) == ["kind"]
    missing = olga.post("/api/v1/promotions/", {"kind": "lane_transition", "session_id": SID},
                        content_type="application/json")
    assert missing.status_code == 400 and set(missing.json()["error"]["fields"]) == {"target", "reason"}
    unknown = olga.post("/api/v1/promotions/", {"kind": "lane_transition", "session_id": "nope",
                                                "target": {"to_lane": "paper_gatecheck"}, "reason": "x"},
                        content_type="application/json")
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    assert olga.get("/api/v1/promotions/?status=maybe").status_code == 400
    assert olga.get("/api/v1/promotions/999/").status_code == 404
