"""Session summaries: computed from what a session stored, stored once per as-of time and
appended to paper_summary.ndjson (one whole line each, never twice), final once the session
ended, served at /api/sessions/<id>/summary/ and printed by paper_report."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from broker_app.models import PaperFill
from ifns_paper import marketbus
from sessions_app import dispatch
from sessions_app.checkpoints import engine_load
from sessions_app.models import SessionCheckpoint
from sessions_app.services import Fault, session_fault, session_transition
from sessions_app.services.summaries import summaries_refresh_running, summary_refresh
from sessions_app.steps import session_step
from telemetry_app.models import SessionSummary
from telemetry_app.services import summary_file
from tests.sessions.test_session_steps import _cut, market, publish

SID = "research_fx_momentum_v13"


@pytest.fixture
def bus(monkeypatch):
    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)  # the checkpoint's ledger is the latest
    c = dispatch.redis_client()
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)


def lines():
    path = summary_file()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def traded(loaded, bus):
    session_transition(session_id=SID, action="start", actor="t")
    data = market(4000)  # 200 s
    for start in range(0, 10_000, 800):
        publish(bus, data, start, start + 800)
        session_step(session_id=SID, client=bus)
    return data


@pytest.mark.django_db(transaction=True)
def test_a_summary_is_stored_once_and_appended_as_one_line(traded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        data = summary_refresh(session_id=SID)
    cp = SessionCheckpoint.objects.get(session__session_id=SID)
    engine = engine_load(cp.engine_state)
    assert data["session_id"] == SID and data["env"] == "paper" and data["lane"] == "paper_research"
    assert data["final"] is False and data["as_of"] == cp.data_ts
    # the P&L is the ledger's; the fills are the fills table's
    assert data["pnl"]["total"] == pytest.approx(engine.ledger.equity - engine.ledger.starting_capital)
    assert data["pnl"]["fees"] == pytest.approx(engine.ledger.fees)
    assert data["fills"]["count"] == PaperFill.objects.filter(session__session_id=SID).count() > 0
    assert data["trades"]["trades"] == engine.ledger.trades
    assert data["conventions"]["calendar"] == "24/5" and data["conventions"]["grid_s"] == 60.0
    # 200 s of market: three 1-minute returns, too few for an annualised ratio
    assert data["returns"]["periods"] == 3 and data["returns"]["sharpe"] is None
    assert data["returns"]["volatility"] is not None
    assert lines() == [data]

    # the same as-of time again: nothing new, no second line
    with django_capture_on_commit_callbacks(execute=True):
        assert summary_refresh(session_id=SID) is None
    assert SessionSummary.objects.count() == 1 and len(lines()) == 1


@pytest.mark.django_db(transaction=True)
def test_the_summary_of_an_ended_session_is_final(traded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        summary_refresh(session_id=SID)
        session_transition(session_id=SID, action="stop", actor="t", reason="done")
        final = summary_refresh(session_id=SID)
    assert final["final"] is True
    assert [(line["final"], line["as_of"]) for line in lines()] == [(False, final["as_of"]), (True, final["as_of"])]
    assert summaries_refresh_running() == 0  # only live sessions are refreshed by beat


@pytest.mark.django_db(transaction=True)
def test_the_api_serves_the_newest_summary_and_the_incidents(traded, client):
    assert client.get(f"/api/v1/sessions/{SID}/summary/").status_code == 404  # none written yet
    summary_refresh(session_id=SID)
    body = client.get(f"/api/v1/sessions/{SID}/summary/").json()
    assert body["session_id"] == SID and "pnl" in body and "execution" in body
    session_fault(session_id=SID, fault=Fault("run", RuntimeError("model blew up")))
    incidents = client.get(f"/api/v1/sessions/{SID}/incidents/").json()["incidents"]
    assert [i["payload"]["exception"] for i in incidents] == ["RuntimeError"]
    assert client.get("/api/v1/sessions/nope/summary/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_paper_report_prints_the_summary_with_units(traded):
    out = StringIO()
    call_command("paper_report", SID, stdout=out)
    text = out.getvalue()
    assert text.startswith(f"PAPER summary of {SID} (env=paper, lane paper_research")
    for part in ("P&L", " USD", "Sharpe", "hit rate", "slippage vs arrival mid", " bp", "implementation shortfall",
                 "Risk envelope usage", "Incidents: 0"):
        assert part in text, part
    out = StringIO()
    call_command("paper_report", SID, "--json", stdout=out)
    assert json.loads(out.getvalue())["session_id"] == SID


@pytest.mark.django_db(transaction=True)
def test_lane_summary_and_the_promotion_funnel_are_served(traded, client):
    summary_refresh(session_id=SID)
    lane = client.get("/api/v1/lanes/paper_research/summary/?hours=1").json()
    assert lane["lane"] == "paper_research" and lane["sessions"] == 1
    assert lane["trades"] == lane["by_session"][0]["trades"]
    assert client.get("/api/v1/lanes/nowhere/summary/").status_code == 404
    assert client.get("/api/v1/lanes/paper_research/summary/?hours=-1").status_code == 400
    funnel = {f["lane"]: f for f in client.get("/api/v1/funnel/").json()}
    research = funnel["paper_research"]
    assert research["promotes_to"] == "paper_gatecheck"
    assert research["sessions_by_status"] == {"running": 1, "scheduled": 1}
    candidate = next(c for c in research["candidates"] if c["session_id"] == SID)
    crit = {c["criterion"]: c for c in candidate["criteria"]}
    assert crit["min_days"]["required"] == 5 and crit["min_days"]["met"] is False  # minutes, not days
    assert crit["min_trades"]["required"] == 200
    assert "strat.momentum_fx" in research["allowed"]["strategies"]


@pytest.mark.parametrize(("session_id", "feed", "symbol"), [
    (SID, "synthetic_fx", "EURUSD"),  # immediate orders
    ("gatecheck_fx_momentum_v12", "synthetic_fx", "EURUSD"),  # TWAP, from a backtest's end state
    ("research_crypto_trend", "synthetic_crypto", "BTCUSDT"),  # passive limits: orders work across refreshes
])
@pytest.mark.django_db(transaction=True)
def test_a_refresh_that_reads_only_new_rows_equals_a_summary_from_scratch(loaded, bus, session_id, feed, symbol):
    from sessions_app.services import summaries

    session_transition(session_id=session_id, action="start", actor="t")
    data = market(4000, symbol=symbol)
    saw_open_orders = False
    for start in range(0, 10_000, 700):
        marketbus.publish(bus, feed, _cut(data, start, start + 700))
        session_step(session_id=session_id, client=bus)
        incremental = summaries.summary_compute(session_id=session_id, final=False)
        kept = summaries._inputs.pop(session_id, None)
        saw_open_orders |= bool(kept and kept.open)
        assert incremental == summaries.summary_compute(session_id=session_id, final=False)  # read afresh
        if kept is not None:
            summaries._inputs[session_id] = kept
    assert incremental["fills"]["count"] == PaperFill.objects.filter(session__session_id=session_id).count() > 0
    if session_id == "research_crypto_trend":
        assert saw_open_orders  # orders still working at a refresh were re-read later
