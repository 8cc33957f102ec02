"""An operator starts and ends a session's cooldown (shell, API): the request waits on the
session's cooldown row, its next real-time step hands it to the engine, and the events,
the row and the change log say who did it."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from ifns_paper.exceptions import Conflict, NotFound, ValidationFailed
from sessions_app.models import ChangeLogEntry, SessionCooldown
from sessions_app.services import session_transition
from sessions_app.services.controls import cooldown_request
from sessions_app.steps import session_step
from telemetry_app.models import TelemetryEvent
from tests.sessions.test_session_steps import SID, client, market, publish, started  # noqa: F401 - fixtures

S = 1_000_000_000


def cooldown_events():
    return [(e.event_time, e.payload) for e in TelemetryEvent.objects.filter(
        session__session_id=SID, event_type="cooldown_state_change").order_by("sequence")]


@pytest.mark.django_db(transaction=True)
def test_a_set_then_a_clear_reach_the_engine_at_the_next_steps(started, client):  # noqa: F811
    data = market(3000)
    publish(client, data, 0, 1500)
    session_step(session_id=SID, client=client)
    row = SessionCooldown.objects.filter(session__session_id=SID).first()
    assert row is None or not row.active

    # the operator asks for 10 minutes: nothing changes until the next step ...
    cooldown_request(session_id=SID, active=True, duration_s=600, actor="api:olga", reason="CPI at 13:30")
    row = SessionCooldown.objects.get(session__session_id=SID)
    assert not row.active and row.requested["active"] is True and row.requested["duration_s"] == 600
    assert cooldown_events() == []

    # ... which applies it at the engine's data time, naming the operator
    publish(client, data, 1500, 2000)
    session_step(session_id=SID, client=client)
    [(at, started_payload)] = cooldown_events()
    assert started_payload["active"] is True and started_payload["actor"] == "api:olga"
    assert started_payload["until_ns"] - int(at.timestamp() * 1e9) == pytest.approx(600 * S, abs=1000)
    row.refresh_from_db()
    assert row.active and row.requested is None and row.reason == "CPI at 13:30"
    assert (row.until - row.started_at).total_seconds() == pytest.approx(600, abs=1e-3)
    later = list(TelemetryEvent.objects.filter(session__session_id=SID, event_type="dra_decision",
                                               event_time__gt=at))
    assert later, "no decision after the cooldown started"
    assert all("cooldown" in d.payload["reasons"] or d.payload["risk_reducing"] for d in later)

    # the operator ends it early
    cooldown_request(session_id=SID, active=False, actor="api:olga", reason="data was benign")
    publish(client, data, 2000, 3000)
    session_step(session_id=SID, client=client)
    events = cooldown_events()
    assert [p["active"] for _, p in events] == [True, False]
    assert events[1][1]["actor"] == "api:olga" and events[1][1]["reason"] == "data was benign"
    row.refresh_from_db()
    assert not row.active and row.requested is None
    # one change-log entry per operator action; the step adds none of its own
    log = list(ChangeLogEntry.objects.filter(target_id=SID, action__startswith="cooldown").order_by("id"))
    assert [(e.action, e.actor, e.reason) for e in log] == [
        ("cooldown_set", "api:olga", "CPI at 13:30"), ("cooldown_clear", "api:olga", "data was benign")]


@pytest.mark.django_db(transaction=True)
def test_a_request_on_a_paused_session_waits_for_its_resume(started, client):  # noqa: F811
    data = market(2000)
    publish(client, data, 0, 1000)
    session_step(session_id=SID, client=client)
    session_transition(session_id=SID, action="pause", actor="t")
    cooldown_request(session_id=SID, active=True, duration_s=60, actor="cli:ops", reason="investigating")
    assert session_step(session_id=SID, client=client).skipped == {SID: "not running"}
    assert SessionCooldown.objects.get(session__session_id=SID).requested is not None
    session_transition(session_id=SID, action="resume", actor="t")
    session_step(session_id=SID, client=client)  # no new data after the resume: the request still applies
    assert [p["active"] for _, p in cooldown_events()] == [True]
    assert SessionCooldown.objects.get(session__session_id=SID).requested is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"active": True, "duration_s": None, "reason": "x"}, "duration_s"),
    ({"active": True, "duration_s": 0, "reason": "x"}, "duration_s"),
    ({"active": True, "duration_s": 8 * 86400, "reason": "x"}, "duration_s"),
    ({"active": False, "duration_s": 60, "reason": "x"}, "duration_s"),
    ({"active": True, "duration_s": 60, "reason": "  "}, "reason"),
])
def test_bad_requests_name_the_field_and_write_nothing(loaded, kwargs, field):
    session_transition(session_id=SID, action="start", actor="t")
    with pytest.raises(ValidationFailed) as err:
        cooldown_request(session_id=SID, actor="t", **kwargs)
    assert field in err.value.errors
    assert not SessionCooldown.objects.filter(requested__isnull=False).exists()
    assert not ChangeLogEntry.objects.filter(action__startswith="cooldown").exists()


def test_unknown_finished_and_cool_sessions_are_refused(loaded):
    with pytest.raises(NotFound):
        cooldown_request(session_id="nope", active=True, duration_s=60, actor="t", reason="x")
    with pytest.raises(Conflict, match="scheduled"):  # never started
        cooldown_request(session_id=SID, active=True, duration_s=60, actor="t", reason="x")
    session_transition(session_id=SID, action="start", actor="t")
    with pytest.raises(Conflict, match="no cooldown in force"):
        cooldown_request(session_id=SID, active=False, actor="t", reason="x")
    assert not ChangeLogEntry.objects.filter(action__startswith="cooldown").exists()


def test_the_shell_command(loaded):
    from io import StringIO

    session_transition(session_id=SID, action="start", actor="t")
    out = StringIO()
    call_command("paper_session", "cooldown", SID, "--set", "300", "--reason", "NFP", stdout=out)
    assert "cooldown of 300 s requested" in out.getvalue()
    out = StringIO()
    call_command("paper_session", "list", stdout=out)
    assert "(set requested)" in next(line for line in out.getvalue().splitlines() if line.startswith(SID))
    with pytest.raises(CommandError, match="duration"):
        call_command("paper_session", "cooldown", SID, "--set", "-5", "--reason", "x")


def test_the_api(loaded, viewer, operator):
    from django.test import Client

    client = Client()  # noqa: F811 - the Redis ``client`` fixture imported above shadows pytest-django's
    session_transition(session_id=SID, action="start", actor="t")
    url = f"/api/v1/sessions/{SID}/cooldown/"
    client.force_login(viewer)
    assert client.get(url).json() == {"active": False, "until": None, "reason": "", "requested": None}
    assert client.post(url, {"action": "set", "duration_s": 60, "reason": "x"},
                       content_type="application/json").status_code == 403
    client.force_login(operator)
    response = client.post(url, {"action": "set", "duration_s": 90, "reason": "FOMC"},
                           content_type="application/json")
    assert response.status_code == 200
    assert response.json()["requested"]["duration_s"] == 90
    assert response.json()["requested"]["actor"] == "api:olga_operator"
    bad = client.post(url, {"action": "pause", "reason": "x"}, content_type="application/json")
    assert bad.status_code == 400 and "action" in bad.json()["error"]["fields"]
    missing = client.post(url, {"action": "set", "reason": "x"}, content_type="application/json")
    assert missing.status_code == 400 and "duration_s" in missing.json()["error"]["fields"]
    assert client.post("/api/v1/sessions/nope/cooldown/", {"action": "clear", "reason": "x"},
                       content_type="application/json").status_code == 404
