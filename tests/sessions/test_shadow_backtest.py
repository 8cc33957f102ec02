"""Shadow backtests: a session that traded in real time (steps reading the feed's stream,
the feed recording what it published) is re-run from the recording as fast as possible.
With the route's latencies the backtest makes the very decisions, orders and fills of the
session, and its summary has the same P&L; with zero latency it is registered as its own
backtest. Bad requests get clear errors and leave nothing registered."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from ifns_paper import marketbus
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.recorder import Recorder
from sessions_app.models import Backtest, ChangeLogEntry, PaperSession
from sessions_app.services import session_transition
from sessions_app.services.backtests import backtest_files, shadow_backtest
from sessions_app.services.summaries import summary_compute
from sessions_app.steps import session_step
from telemetry_app.models import TelemetryEvent
from tests.sessions import test_replay_parity
from tests.sessions.test_replay_parity import market, pieces
from tests.system.procs import replay_differences

client = test_replay_parity.client  # the fixture: a Redis client, the market-data streams emptied
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def trade_in_real_time(session_id: str, client, *, seed: int = 1) -> PaperSession:
    """Start the session, then publish its feed piece by piece through a recording FeedBus
    (with the feed's clock after each piece) and step after each publish."""
    session = PaperSession.objects.get(session_id=session_id)
    feed_symbols = ("EURUSD", "GBPUSD") if session.feed == "synthetic_fx" else tuple(session.symbols)
    data = market(feed_symbols)
    session_transition(session_id=session_id, action="start", actor="test")
    bus = FeedBus(client, session.feed, recorder=Recorder(settings.IFNS_RECORDINGS_DIR, session.feed))
    for batches, next_ts in pieces(data, random.Random(seed)):
        last = max(int(b.ts[-1]) for b in batches)
        bus.publish(batches, max(last, next_ts - 1) if next_ts is not None else last)
        session_step(session_id=session_id, client=client)
    bus.recorder.close()
    return session


@pytest.mark.parametrize("session_id", ["research_fx_momentum_v13", "gatecheck_fx_momentum_v12"])
@pytest.mark.django_db(transaction=True)
def test_a_shadow_backtest_with_the_routes_latency_makes_the_sessions_decisions_and_fills(
        loaded, client, session_id, monkeypatch):
    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    session = trade_in_real_time(session_id, client)
    row = shadow_backtest(session_id=session_id, actor="test", latency="route")
    assert row.status == "completed" and row.kind == "shadow" and row.session == session
    stored = [[e.event_type, (e.event_time - EPOCH) // ONE_US, e.payload]
              for e in TelemetryEvent.objects.filter(session=session).exclude(
                  event_type="paper_session_state_change").order_by("sequence")]
    lines = (backtest_files(row) / "events.ndjson").read_text().splitlines()
    replayed = [[e["type"], e["ts"] // 1000, e["payload"]] for e in map(json.loads, lines)]
    assert any(e[0] == "order_filled" for e in stored)
    assert replay_differences(stored, replayed) == []
    paper = summary_compute(session_id=session_id, final=False)
    assert row.summary["env"] == "backtest" and row.summary["session_id"] == row.backtest_id
    for key in ("total", "realized", "unrealized", "fees"):
        assert row.summary["pnl"][key] == pytest.approx(paper["pnl"][key], rel=1e-9, abs=1e-6), key
    assert row.summary["fills"]["count"] == paper["fills"]["count"]
    assert ChangeLogEntry.objects.filter(action="backtest_shadow", target_id=session_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_zero_latency_shadow_is_its_own_backtest_listed_by_the_command(loaded, client, monkeypatch):
    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    trade_in_real_time("research_fx_momentum_v13", client)
    out = StringIO()
    call_command("paper_backtest", "shadow", "research_fx_momentum_v13", "--latency", "zero", stdout=out)
    row = Backtest.objects.get()
    assert row.params["latency"] == "zero" and row.status == "completed"
    assert f"backtest {row.backtest_id}" in out.getvalue() and "P&L" in out.getvalue()
    fills = [json.loads(x) for x in (backtest_files(row) / "fills.ndjson").read_text().splitlines()]
    # no latency: an order fills at the quote of its decision (arrival = decision time)
    decisions = {json.loads(x)["payload"]["decision_id"]: json.loads(x)["ts"]
                 for x in (backtest_files(row) / "events.ndjson").read_text().splitlines()
                 if '"dra_decision"' in x}
    orders = {json.loads(x)["client_order_id"]: json.loads(x)["decision_id"]
              for x in (backtest_files(row) / "orders.ndjson").read_text().splitlines()}
    assert fills and all(f["ts"] == decisions[orders[f["client_order_id"]]] for f in fills)
    listing = StringIO()
    call_command("paper_backtest", "list", stdout=listing)
    assert row.backtest_id in listing.getvalue() and "completed" in listing.getvalue()


@pytest.mark.django_db(transaction=True)
def test_bad_shadow_requests_are_refused_and_register_nothing(loaded, client, tmp_path):
    with pytest.raises(NotFound, match="no session 'nope'"):
        shadow_backtest(session_id="nope", actor="t")
    with pytest.raises(Conflict, match="never started"):
        shadow_backtest(session_id="research_fx_momentum_v13", actor="t")
    with pytest.raises(ApplicationError, match="latency: expected one of zero, route"):
        shadow_backtest(session_id="research_fx_momentum_v13", actor="t", latency="fast")
    session_transition(session_id="research_fx_momentum_v13", action="start", actor="t")
    with pytest.raises(Conflict, match="has not read any market data"):
        shadow_backtest(session_id="research_fx_momentum_v13", actor="t")
    with pytest.raises(CommandError, match="never started"):
        call_command("paper_backtest", "shadow", "research_crypto_trend")
    assert not Backtest.objects.exists() and not Path(settings.IFNS_DATA_DIR, "backtests").exists()


@pytest.mark.django_db(transaction=True)
def test_the_comparison_with_a_route_latency_shadow_agrees_and_is_served(loaded, client, reader, monkeypatch):

    from sessions_app import steps
    from sessions_app.services.comparisons import comparison_compute

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    trade_in_real_time("research_fx_momentum_v13", client)
    row = shadow_backtest(session_id="research_fx_momentum_v13", actor="t", latency="route")
    # the session trades on after the shadow ran: the comparison stops where the backtest does
    from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch

    later = [QuoteBatch.from_arrays(b.symbol, b.ts + 200 * 10**9, b.bid, b.ask, b.bid_size, b.ask_size)
             if isinstance(b, QuoteBatch) else
             TradeBatch.from_arrays(b.symbol, b.ts + 200 * 10**9, b.price, b.size, b.aggressor)
             for b in market(("EURUSD", "GBPUSD"))]
    marketbus.publish(client, "synthetic_fx", later, clock_ns=int(max(b.ts[-1] for b in later)))
    session_step(session_id="research_fx_momentum_v13", client=client)
    c = comparison_compute(session_id="research_fx_momentum_v13")
    assert c["backtest_id"] == row.backtest_id and c["latency"] == "route"
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in c["execution"]["fill_rate"]["deviation"].values())
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in c["execution"]["slippage_mean_bps"]["deviation"].values())
    assert c["decisions"]["share"] == 1.0 and c["decisions"]["first_divergence"] is None
    assert c["decisions"]["paper"] == c["decisions"]["other"] > 0
    assert c["curves"]["equity_deviation"]["max_abs"] == pytest.approx(0.0, abs=1e-6)
    assert c["execution"]["pnl"]["deviation"] == pytest.approx(0.0, abs=1e-6)
    assert "decisions_diverge" not in c["flags"]
    assert c["curves"]["thresholds"] == {"min_correlation": 0.8, "max_dtw_annualised": 0.2}  # the defaults
    from sessions_app.models import LanePolicy

    LanePolicy.objects.filter(lane__name="paper_research").update(
        thresholds={"min_reconciliation_correlation": 0.95, "max_reconciliation_dtw": 0.1})
    lane_set = comparison_compute(session_id="research_fx_momentum_v13")["curves"]["thresholds"]
    assert lane_set == {"min_correlation": 0.95, "max_dtw_annualised": 0.1}  # the lane's own
    response = reader.get("/api/v1/sessions/research_fx_momentum_v13/comparison/")
    assert response.status_code == 200 and response.json()["backtest_id"] == row.backtest_id
    assert reader.get("/api/v1/sessions/research_fx_momentum_v13/comparison/?backtest=nope").status_code == 404
    out = StringIO()
    call_command("paper_compare", "research_fx_momentum_v13", stdout=out)
    assert "agree (100.0%)" in out.getvalue() and "flags:" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_hole_in_the_recording_is_reported_as_the_first_divergence_with_its_cause(loaded, client, monkeypatch):
    import gzip

    from sessions_app import steps
    from sessions_app.services.comparisons import comparison_compute

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    session = trade_in_real_time("research_fx_momentum_v13", client)
    decisions = [e.payload | {"ts": (e.event_time - EPOCH) // ONE_US * 1000}
                 for e in TelemetryEvent.objects.filter(session=session, event_type="dra_decision").order_by("sequence")]
    # take the publishes that start from 1 s before the fifth decision out of the recording,
    # for 8 s of market: a hole in what the backtest sees
    start = decisions[4]["ts"] - 1_000_000_000
    dropped: list[int] = []
    for path in Path(settings.IFNS_RECORDINGS_DIR, session.feed).glob("*.ndjson.gz"):
        kept = []
        for line in gzip.decompress(path.read_bytes()).splitlines():
            obj = json.loads(line)
            times = [t for b in obj["batches"] for t in b["ts"]] or [obj["clock"]]
            if min(times) >= start and (not dropped or min(times) < min(dropped) + 8_000_000_000):
                dropped += times
            else:
                kept.append(line)
        path.write_bytes(gzip.compress(b"\n".join(kept) + b"\n"))
    hole_from, hole_to = min(dropped), max(dropped)
    shadow_backtest(session_id="research_fx_momentum_v13", actor="t", latency="route")
    c = comparison_compute(session_id="research_fx_momentum_v13")
    fd = c["decisions"]["first_divergence"]
    assert fd is not None and "decisions_diverge" in c["flags"] and c["decisions"]["share"] < 1.0
    assert hole_from <= fd["ts"] <= hole_to + 60_000_000_000 and fd["likely_cause"] == "data gap"


@pytest.mark.django_db(transaction=True)
def test_a_recording_without_entry_ids_fails_the_shadow_with_a_message(loaded, client, monkeypatch):
    import gzip

    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    session = trade_in_real_time("research_fx_momentum_v13", client)
    for path in Path(settings.IFNS_RECORDINGS_DIR, session.feed).glob("*.ndjson.gz"):
        lines = [json.loads(x) | {"ids": None} for x in gzip.decompress(path.read_bytes()).splitlines()]
        path.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    with pytest.raises(ApplicationError, match="recorded without stream entry ids"):
        shadow_backtest(session_id="research_fx_momentum_v13", actor="t")
    row = Backtest.objects.get()
    assert row.status == "failed" and "entry ids" in row.error
    assert not (Path(settings.IFNS_DATA_DIR) / row.out_dir).exists()
