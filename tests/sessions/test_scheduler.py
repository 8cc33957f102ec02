"""The scheduler moves sessions in time and coalesces steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions_app import dispatch
from sessions_app.models import ChangeLogEntry, PaperSession
from sessions_app.services import session_transition, sessions_tick

GATE = "gatecheck_fx_momentum_v12"  # starts 2026-11-24T08:00:00Z, lasts 20 days


@pytest.fixture
def no_step_tasks():
    """Steps really go to the Celery broker (Redis); no worker runs, so they wait in its queue.

    Yields a function listing the (feed, shard) of the queued step messages, oldest first.
    """
    import base64
    import json

    client = dispatch.redis_client()

    def clear():
        for key in client.scan_iter("ifns:step:queued:*"):
            client.delete(key)
        client.delete("celery", *dispatch.step_queues())
        dispatch.forget_members()  # the feed-process cache of shards with running sessions

    def queued():
        steps = []
        for queue in dispatch.step_queues():
            for raw in client.lrange(queue, 0, -1)[::-1]:  # LPUSH: newest first
                message = json.loads(raw)
                assert message["headers"]["task"] == "sessions_app.tasks.shard_step_task"
                body = json.loads(base64.b64decode(message["body"]))
                assert dispatch.step_queue(body[0][1]) == queue
                steps.append(tuple(body[0]))
        return steps

    clear()
    yield queued
    clear()


def test_a_scheduled_session_starts_at_its_start_time(loaded, no_step_tasks):
    before = datetime(2026, 11, 24, 7, 59, 59, tzinfo=UTC)
    assert sessions_tick(now=before).as_dict()["started"] == []
    result = sessions_tick(now=before + timedelta(seconds=1)).as_dict()
    assert result["started"] == [GATE]
    session = PaperSession.objects.get(session_id=GATE)
    assert session.status == "running" and session.started_at == before + timedelta(seconds=1)
    assert ChangeLogEntry.objects.filter(target_id=GATE, actor="scheduler", action="session_start").exists()
    assert no_step_tasks() == [("synthetic_fx", dispatch.shard_of(GATE))]  # and its first step is queued


def test_a_running_session_completes_when_its_duration_is_over(loaded, no_step_tasks):
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    session_transition(session_id="research_crypto_trend", action="start", actor="t", now=t0)  # 2 days
    assert sessions_tick(now=t0 + timedelta(days=2) - timedelta(seconds=1)).as_dict()["completed"] == []
    assert sessions_tick(now=t0 + timedelta(days=2)).as_dict()["completed"] == ["research_crypto_trend"]
    assert PaperSession.objects.get(session_id="research_crypto_trend").status == "completed"


def test_steps_are_coalesced_until_the_queued_one_starts(loaded, no_step_tasks):
    session_transition(session_id="research_crypto_trend", action="start", actor="t")
    assert dispatch.step_enqueue("research_crypto_trend") is True
    assert dispatch.step_enqueue("research_crypto_trend") is False
    assert dispatch.steps_for_feed("synthetic_crypto") == 0
    shard = dispatch.shard_of("research_crypto_trend")
    dispatch.step_started("synthetic_crypto", shard)
    assert dispatch.steps_for_feed("synthetic_crypto") == 1
    assert no_step_tasks() == [("synthetic_crypto", shard)] * 2


def test_a_session_completes_when_its_trade_target_is_reached(loaded, no_step_tasks):
    """A trade is a closed round trip (``engine.trades``); the steps keep the count in the
    session's checkpoint, which the tick reads with the session (no per-session query)."""
    from sessions_app.models import SessionCheckpoint
    from sessions_app.services.tick import end_reason

    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    session_transition(session_id="research_fx_momentum_v13", action="start", actor="t", now=t0)  # target 2000
    session = PaperSession.objects.get(session_id="research_fx_momentum_v13")
    cp = SessionCheckpoint.objects.create(session=session, engine_state=b"", fills=4100, trades=1999)
    assert end_reason(PaperSession.objects.select_related("checkpoint").get(pk=session.pk),
                      t0 + timedelta(minutes=1)) is None  # 4,100 fills, but 1,999 round trips
    cp.trades = 2000
    cp.save()
    result = sessions_tick(now=t0 + timedelta(minutes=1)).as_dict()
    assert result["completed"] == ["research_fx_momentum_v13"]
    change = ChangeLogEntry.objects.filter(target_id="research_fx_momentum_v13", action="session_stop").get()
    assert change.reason == "target reached: 2000 trades >= 2000"


# --- abort on kill switch (session files: end.abort_on_kill_switch) -------------------

FX = "research_fx_momentum_v13"  # abort_on_kill_switch not set


def _start_gate_and_fx():
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    for sid in (GATE, FX):
        session_transition(session_id=sid, action="start", actor="t", now=t0)
    return t0


def _statuses() -> dict:
    return dict(PaperSession.objects.filter(session_id__in=[GATE, FX]).values_list("session_id", "status"))


@pytest.mark.parametrize("scope", ["global", "lane:paper_gatecheck", f"session:{GATE}"])
def test_a_session_set_to_abort_is_aborted_once_its_switch_is_halted(loaded, no_step_tasks, scope):
    from sessions_app.services import kill_switch_set
    from telemetry_app.models import TelemetryEvent

    # given two running sessions, only the gatecheck one set to abort on a halted switch
    t0 = _start_gate_and_fx()
    assert sessions_tick(now=t0 + timedelta(seconds=1)).as_dict()["aborted"] == []

    # when a switch covering it is halted
    kill_switch_set(scope=scope, state="halted", actor="ops", reason="feed trouble")
    result = sessions_tick(now=t0 + timedelta(seconds=2)).as_dict()

    # then the scheduler aborts it through the lifecycle service, saying why
    assert result["aborted"] == [GATE] and result["completed"] == []
    assert _statuses() == {GATE: "aborted", FX: "running"}
    change = ChangeLogEntry.objects.filter(target_id=GATE, action="session_abort").get()
    assert (change.actor, change.reason) == ("scheduler", f"kill switch {scope} halted: feed trouble")
    event = TelemetryEvent.objects.filter(session__session_id=GATE).latest("sequence")
    assert (event.event_type, event.payload["to"], event.payload["actor"]) == (
        "paper_session_state_change", "aborted", "scheduler")
    assert PaperSession.objects.get(session_id=GATE).ended_at == t0 + timedelta(seconds=2)
    # and the next tick has nothing more to do
    assert sessions_tick(now=t0 + timedelta(seconds=3)).as_dict()["aborted"] == []


def test_an_unconfigured_session_keeps_running_under_a_halted_switch(loaded, no_step_tasks):
    from sessions_app.services import kill_switch_set

    t0 = _start_gate_and_fx()
    kill_switch_set(scope=f"session:{FX}", state="halted", actor="ops", reason="look closer")
    kill_switch_set(scope="lane:paper_research", state="halted", actor="ops", reason="look closer")

    result = sessions_tick(now=t0 + timedelta(seconds=1)).as_dict()

    assert result["aborted"] == [] and _statuses() == {GATE: "running", FX: "running"}
    assert not ChangeLogEntry.objects.filter(action="session_abort").exists()


@pytest.mark.parametrize("state", ["reducing", "active"])
def test_a_switch_short_of_halted_does_not_abort(loaded, no_step_tasks, state):
    from sessions_app.services import kill_switch_set

    t0 = _start_gate_and_fx()
    kill_switch_set(scope="global", state="halted", actor="ops", reason="x")
    kill_switch_set(scope="global", state=state, actor="ops", reason="y")

    assert sessions_tick(now=t0 + timedelta(seconds=1)).as_dict()["aborted"] == []
    assert _statuses() == {GATE: "running", FX: "running"}
