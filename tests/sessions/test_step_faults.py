"""Faults stay in their session: a step in which one session's engine build, run or writes
raise commits the others and moves the faulty one to ``faulted`` (incident event, change-log
entry); infrastructure errors fail the whole step, which backs off. The DRA's automatic
controls are written through the same services as operators' (change log, system:dra)."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from broker_app.models import PaperFill
from ifns_paper.engine.session import SessionEngine
from sessions_app import dispatch
from sessions_app.models import (
    ChangeLogEntry,
    KillSwitch,
    PaperSession,
    SessionCheckpoint,
    SessionCooldown,
)
from sessions_app.services import risk_envelope_update, session_transition
from sessions_app.steps import step_sessions
from telemetry_app.models import TelemetryEvent
from tests.sessions.test_session_steps import consistent, market, publish, replay_events

SID = "research_fx_momentum_v13"
GATE = "gatecheck_fx_momentum_v12"  # the same feed (synthetic_fx), EURUSD among its symbols


@pytest.fixture
def bus():
    """The test Redis, without market-data streams before and after."""
    c = dispatch.redis_client()
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)


@pytest.fixture
def both(loaded):
    for sid in (SID, GATE):
        session_transition(session_id=sid, action="start", actor="t")


def stored(session_id):
    return list(TelemetryEvent.objects.filter(session__session_id=session_id)
                .exclude(event_type__in=["paper_session_state_change", "incident"])
                .values_list("event_type", "payload"))


def assert_faulted(session_id, phase, exception, message_start):
    s = PaperSession.objects.get(session_id=session_id)
    assert s.status == "faulted"
    assert s.last_fault.startswith(f"fault: {exception}: {message_start}")
    incident = TelemetryEvent.objects.get(session=s, event_type="incident").payload
    assert (incident["kind"], incident["phase"], incident["exception"]) == ("session_fault", phase, exception)
    change = ChangeLogEntry.objects.get(target_id=session_id, action="session_fault")
    assert (change.actor, change.reason) == ("system:steps", s.last_fault)
    assert (change.before["status"], change.after["status"]) == ("running", "faulted")
    seqs = list(TelemetryEvent.objects.filter(session=s).values_list("sequence", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and s.last_event_seq == len(seqs)
    return incident


@pytest.mark.django_db(transaction=True)
def test_an_engine_that_raises_faults_its_session_and_the_other_is_committed(both, bus, monkeypatch):
    data = market(4000)
    publish(bus, data, 0, 10_000)
    real = SessionEngine.on_quotes

    def poisoned(self, batch):
        if self.setup.session_id == GATE:
            raise RuntimeError("model blew up")
        return real(self, batch)

    monkeypatch.setattr(SessionEngine, "on_quotes", poisoned)
    result = step_sessions([SID, GATE], client=bus)

    assert result.sessions == [SID] and list(result.faulted) == [GATE]
    incident = assert_faulted(GATE, "run", "RuntimeError", "model blew up")
    assert incident["stream"]["ifns:md:synthetic_fx"][0] is not None  # where it was reading from
    assert not SessionCheckpoint.objects.filter(session__session_id=GATE).exists()  # stays where it was
    assert stored(SID) == replay_events(SID, data)  # the healthy session, as if alone
    consistent(SID)
    # not attempted again: the next step skips it
    publish(bus, market(200, t0=int(data[-1].ts[-1]) + 1), 0, 10_000)
    assert step_sessions([SID, GATE], client=bus).skipped[GATE] == "not running"
    assert TelemetryEvent.objects.filter(session__session_id=GATE, event_type="incident").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_write_the_database_refuses_faults_only_that_session(both, bus, monkeypatch):
    from sessions_app import steps
    data = market(4000)
    publish(bus, data, 0, 10_000)
    gate_pk = PaperSession.objects.get(session_id=GATE).pk
    real = steps.execution_rows_write

    def refuse(*, rows):
        if any(o.session_pk == gate_pk for o in rows.orders):
            raise ValueError("value out of range for the database")  # what a driver raises on bad data
        return real(rows=rows)

    monkeypatch.setattr(steps, "execution_rows_write", refuse)
    result = step_sessions([SID, GATE], client=bus)

    assert result.sessions == [SID] and list(result.faulted) == [GATE]
    assert_faulted(GATE, "persist", "ValueError", "value out of range")
    assert not PaperFill.objects.filter(session__session_id=GATE).exists()
    # the healthy session's events were numbered again after the rolled-back bulk write: no gap
    assert stored(SID) == replay_events(SID, data)
    consistent(SID)


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_that_does_not_load_faults_its_session(both, bus):
    data = market(3000)
    publish(bus, data, 0, 1500)
    step_sessions([SID, GATE], client=bus)
    SessionCheckpoint.objects.filter(session__session_id=GATE).update(engine_state=b"not a checkpoint")
    from sessions_app import steps
    steps._ENGINES.clear()  # a restarted worker: engines come from the checkpoints
    publish(bus, data, 1500, 10_000)
    result = step_sessions([SID, GATE], client=bus)
    assert list(result.faulted) == [GATE] and result.sessions == [SID]
    incident = assert_faulted(GATE, "load", "error", "")
    assert incident["checkpoint_steps"] == 1
    consistent(SID)


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_not_a_session_fault(both, bus, monkeypatch):
    publish(bus, market(2000), 0, 10_000)

    def outage(self, batch):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionEngine, "on_quotes", outage)
    with pytest.raises(OperationalError):
        step_sessions([SID, GATE], client=bus)
    assert set(PaperSession.objects.filter(session_id__in=[SID, GATE]).values_list("status", flat=True)) == {"running"}
    assert not TelemetryEvent.objects.filter(event_type="incident").exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_step_backs_off_and_cannot_be_queued_sooner(both, bus, monkeypatch):
    from sessions_app import tasks

    sent = []
    monkeypatch.setattr(dispatch, "_send", lambda feed, shard, countdown=None: sent.append(countdown))
    monkeypatch.setattr(tasks, "step_sessions", lambda *a, **k: (_ for _ in ()).throw(OperationalError("down")))
    r = dispatch.redis_client()
    r.delete("ifns:step:failures:synthetic_fx:0", "ifns:step:queued:synthetic_fx:0")
    delays = [tasks.shard_step_task("synthetic_fx", 0)["retry_in_s"] for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # doubling, capped at 30 s
    assert sent == delays  # each retry queued with its delay ...
    assert dispatch.shard_enqueue("synthetic_fx", 0) is False  # ... and nothing can queue it sooner
    assert r.pttl("ifns:step:queued:synthetic_fx:0") > 30_000
    # a step that goes through resets the backoff
    monkeypatch.setattr(tasks, "step_sessions", lambda *a, **k: step_sessions([], client=bus))
    tasks.shard_step_task("synthetic_fx", 0)
    assert not r.exists("ifns:step:failures:synthetic_fx:0")


# --- the DRA's own controls go through the services -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_drawdown_breach_sets_the_session_switch_through_the_service(loaded, bus):
    envelope = {f: getattr(PaperSession.objects.get(session_id=SID).lane.risk_envelope, f) for f in (
        "max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
        "max_daily_loss", "max_orders_per_minute", "price_collar_bps")}
    risk_envelope_update(lane="paper_research", values={**envelope, "max_drawdown_pct": 0.0001}, actor="t",
                         reason="a hair trigger")
    session_transition(session_id=SID, action="start", actor="t")
    data = market(6000)
    for start in range(0, 10_000, 1000):
        publish(bus, data, start, start + 1000)
        step_sessions([SID], client=bus)
    switch = KillSwitch.objects.get(scope=f"session:{SID}")
    assert (switch.state, switch.actor) == ("reducing", "system:dra")
    change = ChangeLogEntry.objects.get(action="kill_switch_set", target_id=f"session:{SID}")
    assert (change.actor, change.before, change.after) == ("system:dra", {"state": "active"}, {"state": "reducing"})
    assert change.reason.startswith("drawdown ")
    event = TelemetryEvent.objects.get(session__session_id=SID, event_type="kill_switch_change")
    assert event.payload["actor"] == "system:dra" and event.payload["reason"] == change.reason


@pytest.mark.django_db(transaction=True)
def test_cooldowns_started_and_ended_by_the_engine_are_recorded_and_logged(loaded, bus):
    from sessions_app.admin import POLICY_FIELDS
    from sessions_app.models import LanePolicy
    from sessions_app.services import lane_policy_update

    policy = LanePolicy.objects.get(lane__name="paper_research")
    values = {k: getattr(policy, k) for k in POLICY_FIELDS}
    lane_policy_update(lane="paper_research", values={**values, "cooldown_max_breaches": 1, "cooldown_window_s": 60,
                                                      "cooldown_duration_s": 5}, actor="t", reason="short cooldowns")
    envelope = PaperSession.objects.get(session_id=SID).lane.risk_envelope
    risk_envelope_update(lane="paper_research", values={
        **{f: getattr(envelope, f) for f in ("max_position_notional_per_symbol", "max_gross_exposure",
                                             "max_net_exposure", "max_daily_loss", "max_drawdown_pct",
                                             "max_orders_per_minute", "price_collar_bps")},
        "max_order_notional": 2000}, actor="t", reason="every order is reduced: a breach")
    session_transition(session_id=SID, action="start", actor="t")
    data = market(6000)
    for start in range(0, 10_000, 1000):
        publish(bus, data, start, start + 1000)
        step_sessions([SID], client=bus)
    changes = list(TelemetryEvent.objects.filter(session__session_id=SID, event_type="cooldown_state_change")
                   .values_list("payload", flat=True))
    assert [c["active"] for c in changes[:2]] == [True, False]
    logged = list(ChangeLogEntry.objects.filter(target_id=SID, action__in=["cooldown_start", "cooldown_end"])
                  .order_by("id").values_list("actor", "action", "reason"))
    assert logged[:2] == [("system:dra", "cooldown_start", changes[0]["reason"]),
                          ("system:dra", "cooldown_end", "cooldown over")]
    assert len(logged) == len(changes)
    row = SessionCooldown.objects.get(session__session_id=SID)
    assert row.active == changes[-1]["active"]
