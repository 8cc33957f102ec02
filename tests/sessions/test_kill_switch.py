"""Operator kill switches: one service for shell, API and (later) the Admin panel."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from sessions_app.models import ChangeLogEntry, KillSwitch
from sessions_app.services import kill_switch_set, session_transition
from telemetry_app.models import TelemetryEvent


def test_a_lane_switch_reaches_the_lanes_live_sessions_once(loaded, django_capture_on_commit_callbacks):
    session_transition(session_id="research_fx_momentum_v13", action="start", actor="t")
    session_transition(session_id="research_crypto_trend", action="start", actor="t")
    session_transition(session_id="research_crypto_trend", action="pause", actor="t")
    with django_capture_on_commit_callbacks(execute=False) as hooks:
        kill_switch_set(scope="lane:paper_research", state="halted", actor="cli:ops", reason="feed trouble")
    assert len(hooks) == 1 + 1 + 1  # one live push of both sessions' events, the steps queued, health pushed
    assert KillSwitch.objects.get(scope="lane:paper_research").state == "halted"
    events = TelemetryEvent.objects.filter(event_type="kill_switch_change")
    assert sorted(e.session.session_id for e in events) == ["research_crypto_trend", "research_fx_momentum_v13"]
    assert events[0].payload == {"scope": "lane:paper_research", "from": "active", "to": "halted",
                                 "actor": "cli:ops", "reason": "feed trouble"}
    change = ChangeLogEntry.objects.get(action="kill_switch_set")
    assert (change.before, change.after) == ({"state": "active"}, {"state": "halted"})
    # the same state again is a no-op
    kill_switch_set(scope="lane:paper_research", state="halted", actor="cli:ops")
    assert TelemetryEvent.objects.filter(event_type="kill_switch_change").count() == 2


@pytest.mark.parametrize(("scope", "state", "field"), [
    ("lane:paper_nowhere", "halted", "scope"), ("session:nope", "halted", "scope"), ("planet", "halted", "scope"),
    ("global", "panic", "state"),
])
def test_bad_scopes_and_states_are_refused_and_write_nothing(loaded, scope, state, field):
    with pytest.raises(CommandError, match=field):
        call_command("paper_killswitch", "set", scope, state)
    assert not KillSwitch.objects.exists() and not ChangeLogEntry.objects.filter(action="kill_switch_set").exists()


def test_the_api_needs_an_operator(loaded, client, viewer, operator):
    client.force_login(viewer)
    assert client.post("/api/v1/killswitches/", {"scope": "global", "state": "halted"},
                       content_type="application/json").status_code == 403
    client.force_login(operator)
    response = client.post("/api/v1/killswitches/", {"scope": "global", "state": "reducing", "reason": "vol"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["actor"] == "api:olga_operator"
    listed = {v["scope"]: v for v in client.get("/api/v1/killswitches/").json()}
    assert (listed["global"]["state"], listed["global"]["effective"]) == ("reducing", "reducing")
    # every lane is listed, its own switch active, the global one in force
    assert (listed["lane:paper_research"]["state"], listed["lane:paper_research"]["effective"],
            listed["lane:paper_research"]["effective_scope"]) == ("active", "reducing", "global")
    bad = client.post("/api/v1/killswitches/", {"scope": "lane:x", "state": "halted"}, content_type="application/json")
    assert bad.status_code == 400 and "scope" in bad.json()["error"]["fields"]


def test_list_prints_every_scope_active_when_nothing_was_ever_set(loaded):
    from io import StringIO

    out = StringIO()
    call_command("paper_killswitch", "list", stdout=out)
    rows = {line.split()[0]: line.split()[1:3] for line in out.getvalue().splitlines()[2:]}
    # global, each lane and each session that is not finished: own and effective state
    assert rows == {"global": ["active", "active"], "lane:paper_gatecheck": ["active", "active"],
                    "lane:paper_research": ["active", "active"],
                    "session:gatecheck_fx_momentum_v12": ["active", "active"],
                    "session:research_crypto_trend": ["active", "active"],
                    "session:research_fx_momentum_v13": ["active", "active"]}


def test_list_shows_where_the_effective_state_comes_from(loaded):
    from io import StringIO

    kill_switch_set(scope="lane:paper_research", state="reducing", actor="cli:ops", reason="vol")
    kill_switch_set(scope="session:research_fx_momentum_v13", state="halted", actor="cli:ops", reason="bad fills")
    out = StringIO()
    call_command("paper_killswitch", "list", stdout=out)
    rows = {line.split()[0]: line.split()[1:5] for line in out.getvalue().splitlines()[2:]}
    assert rows["lane:paper_research"] == ["reducing", "reducing", "lane:paper_research", "cli:ops"]
    assert rows["session:research_crypto_trend"] == ["active", "reducing", "lane:paper_research", "-"]
    assert rows["session:research_fx_momentum_v13"][:3] == ["halted", "halted", "session:research_fx_momentum_v13"]
    assert rows["session:gatecheck_fx_momentum_v12"][:3] == ["active", "active", "-"]


def test_a_halt_is_an_incident_of_every_session_it_stops(loaded):
    session_transition(session_id="research_fx_momentum_v13", action="start", actor="t")
    kill_switch_set(scope="lane:paper_research", state="reducing", actor="cli:ops", reason="vol")
    assert not TelemetryEvent.objects.filter(event_type="incident").exists()  # a brake, not an incident
    kill_switch_set(scope="global", state="halted", actor="cli:ops", reason="venue down")
    incident = TelemetryEvent.objects.get(event_type="incident")
    assert incident.session.session_id == "research_fx_momentum_v13"
    assert incident.payload == {"kind": "kill_switch_halt", "scope": "global", "from": "active", "to": "halted",
                                "actor": "cli:ops", "reason": "venue down"}
