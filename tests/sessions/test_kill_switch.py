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
    assert client.post("/api/killswitches/", {"scope": "global", "state": "halted"},
                       content_type="application/json").status_code == 403
    client.force_login(operator)
    response = client.post("/api/killswitches/", {"scope": "global", "state": "reducing", "reason": "vol"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["actor"] == "api:olga_operator"
    listed = {v["scope"]: v for v in client.get("/api/killswitches/").json()}
    assert (listed["global"]["state"], listed["global"]["effective"]) == ("reducing", "reducing")
    # every lane is listed, its own switch active, the global one in force
    assert (listed["lane:paper_research"]["state"], listed["lane:paper_research"]["effective"],
            listed["lane:paper_research"]["effective_scope"]) == ("active", "reducing", "global")
    bad = client.post("/api/killswitches/", {"scope": "lane:x", "state": "halted"}, content_type="application/json")
    assert bad.status_code == 400 and "scope" in bad.json()["errors"]
