"""Session health as pages, the API and ``paper_session list`` show it: where the steps stand
(step lag, last step, steps per minute), the last fault, the kill switch and cooldown in force."""

from __future__ import annotations

import pytest

from ifns_paper import marketbus
from sessions_app import dispatch, selectors
from sessions_app.models import PaperSession, SessionCooldown
from sessions_app.services import kill_switch_set, session_transition
from sessions_app.steps import session_step
from tests.sessions.test_session_steps import market

SID = "research_fx_momentum_v13"


@pytest.fixture
def bus():
    c = dispatch.redis_client()
    for key in [*c.scan_iter("ifns:md:*"), "ifns:step:health"]:
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)


def health(sid=SID):
    session = PaperSession.objects.select_related("lane").get(session_id=sid)
    return selectors.session_health([session], client=dispatch.redis_client())[sid]


def started_and_stepped(bus) -> int:
    """Start the demo session, publish 400 quotes and step it once; the last quote's time."""
    session_transition(session_id=SID, action="start", actor="t")
    data = market(400)
    t_last = int(data[-1].ts[-1])
    marketbus.publish(bus, "synthetic_fx", data, clock_ns=t_last)
    session_step(session_id=SID, client=bus)
    return t_last


@pytest.mark.django_db(transaction=True)
def test_step_lag_is_the_feed_head_minus_what_the_session_processed(loaded, bus):
    t_last = started_and_stepped(bus)
    h = health()
    assert h["step_lag_ms"] == 0.0  # it processed up to the newest entry
    # the book as of that step: the checkpoint's figures and the fills written
    from broker_app.models import PaperFill
    from sessions_app.models import SessionCheckpoint

    cp = SessionCheckpoint.objects.get(session__session_id=SID)
    assert h["equity"] == pytest.approx(cp.equity) and h["pnl"] == pytest.approx(cp.equity - 1_000_000)
    assert h["fills"] == PaperFill.objects.filter(session__session_id=SID).count()
    assert h["data_ts_ns"] == t_last
    assert h["steps_per_min"] == 1 and h["last_step_at"] is not None and h["last_step_age_s"] < 5

    # the feed moves on 1.5 s (a clock entry), the session has not stepped yet
    marketbus.publish(bus, "synthetic_fx", [], clock_ns=t_last + 1_500_000_000)
    assert health()["step_lag_ms"] == 1500.0
    session_step(session_id=SID, client=bus)
    h = health()
    assert h["step_lag_ms"] == 0.0 and h["steps_per_min"] == 2


@pytest.mark.django_db(transaction=True)
def test_switch_cooldown_and_fault_in_force_are_shown(loaded, bus):
    session_transition(session_id=SID, action="start", actor="t")
    h = health()
    assert h["kill_switch"] == {"state": "active", "scope": None, "reason": ""}
    assert h["cooldown"] == {"active": False, "until": None, "reason": "", "requested": None}
    assert h["step_lag_ms"] is None and h["last_fault"] is None  # never stepped

    kill_switch_set(scope="global", state="reducing", actor="cli:ops", reason="vol")
    kill_switch_set(scope="lane:paper_research", state="halted", actor="cli:ops", reason="feed trouble")
    assert health()["kill_switch"] == {"state": "halted", "scope": "lane:paper_research", "reason": "feed trouble"}
    session = PaperSession.objects.get(session_id=SID)
    SessionCooldown.objects.create(session=session, active=True, reason="3 risk breaches within the window",
                                   until="2026-11-29T12:05:00Z")
    assert health()["cooldown"] == {"active": True, "until": "2026-11-29T12:05:00+00:00",
                                    "reason": "3 risk breaches within the window", "requested": None}

    from sessions_app.services import Fault, session_fault
    session_fault(session_id=SID, fault=Fault("run", RuntimeError("boom")))
    h = health()
    assert h["status"] == "faulted" and h["last_fault"] == "fault: RuntimeError: boom"
    assert h["steps_per_min"] is None  # only running sessions step


def test_the_api_and_the_list_command_carry_health(loaded, client, bus):
    from io import StringIO

    from django.core.management import call_command

    session_transition(session_id=SID, action="start", actor="t")
    kill_switch_set(scope=f"session:{SID}", state="reducing", actor="cli:ops", reason="check")
    body = client.get(f"/api/v1/sessions/{SID}/").json()
    assert body["health"]["kill_switch"]["state"] == "reducing"
    listed = {s["session_id"]: s for s in client.get("/api/v1/sessions/").json()}
    assert listed[SID]["health"]["kill_switch"]["scope"] == f"session:{SID}"
    out = StringIO()
    call_command("paper_session", "list", stdout=out)
    row = next(line for line in out.getvalue().splitlines() if line.startswith(SID))
    assert f"reducing (session:{SID})" in row


@pytest.mark.django_db(transaction=True)
def test_a_paused_session_shows_its_recorded_book_not_unrecorded_quiet_steps(loaded, bus):
    import json

    from sessions_app.models import SessionCheckpoint
    from sessions_app.steps import HEALTH_KEY

    t_last = started_and_stepped(bus)
    cp = SessionCheckpoint.objects.get(session__session_id=SID)
    # a quiet step after it (not checkpointed yet) marked the book 1.5 s later at another price
    quiet = json.loads(bus.hget(HEALTH_KEY, SID)) | {"data_ts": t_last + 1_500_000_000, "equity": cp.equity + 7.25,
                                                     "pnl": cp.pnl + 7.25}
    bus.hset(HEALTH_KEY, SID, json.dumps(quiet))
    assert (health()["data_ts_ns"], health()["equity"]) == (t_last + 1_500_000_000, pytest.approx(cp.equity + 7.25))
    # paused, the session stands where it was recorded: what its summary and resume start from
    session_transition(session_id=SID, action="pause", actor="t", reason="lunch")
    h = health()
    assert (h["data_ts_ns"], h["equity"], h["pnl"]) == (cp.data_ts, pytest.approx(cp.equity), pytest.approx(cp.pnl))
