"""Incidents are raised by the engine as they happen (``incident`` telemetry records), each
kind once by a crafted scenario: extreme slippage, a simulated failure, repeated envelope
hits, a kill-switch halt by the DRA, a data gap, a run of unusable quotes (a feed glitch)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from ifns_paper.engine.controls import CooldownPolicy, SwitchState
from ifns_paper.engine.dra import RiskLimits
from ifns_paper.engine.session import SessionEngine
from tests.engine.test_session_engine import LIMITS, ROUTES, market, run, setup


def incidents(events):
    return [e.payload for e in events if e.type == "incident"]


def test_a_fill_above_its_routes_slippage_threshold_is_an_incident():
    # given a touch route whose threshold is below half the spread: every market order crosses it
    routes = {**ROUTES, "SIM_TOUCH": dataclasses.replace(ROUTES["SIM_TOUCH"], extreme_slippage_bps=0.01)}
    quotes, trades = market(4000)
    events = run(SessionEngine(setup(routes=routes)), quotes, trades, 4000)
    fills = [e.payload for e in events if e.type == "order_filled"]
    found = incidents(events)
    # then one incident per fill above 0.01 bp, naming it
    assert found and len(found) == sum(1 for f in fills if f["slippage_bps"] > 0.01)
    first = found[0]
    assert first["kind"] == "extreme_slippage" and first["threshold_bps"] == 0.01
    assert first["fill_id"] in {f["fill_id"] for f in fills} and first["slippage_bps"] > 0.01
    # and none with the shipped-like threshold of 25 bp
    assert incidents(run(SessionEngine(setup()), quotes, trades, 4000)) == []


def test_a_simulated_reject_is_an_incident_with_its_reason():
    routes = {**ROUTES, "SIM_TOUCH": dataclasses.replace(ROUTES["SIM_TOUCH"], reject_probability=1.0)}
    quotes, trades = market(3000)
    events = run(SessionEngine(setup(routes=routes)), quotes, trades, 3000)
    rejected = [e.payload for e in events if e.type == "order_rejected"]
    found = incidents(events)
    assert rejected and Counter((i["kind"], i["reason"]) for i in found) == {
        ("simulated_failure", "simulated_reject"): len(rejected)}
    assert {i["client_order_id"] for i in found} == {r["client_order_id"] for r in rejected}


def test_breaches_that_start_a_cooldown_are_an_incident():
    # every order is above a tiny max order notional (a REDUCE breach); one breach cools down
    limits = RiskLimits(**{**{f: getattr(LIMITS, f) for f in LIMITS.__slots__}, "max_order_notional": 2000})
    cooldown = CooldownPolicy(max_breaches=1, window_ns=60 * 10**9, duration_ns=30 * 10**9)
    quotes, trades = market(3000)
    events = run(SessionEngine(setup(limits=limits, cooldown=cooldown)), quotes, trades, 3000)
    starts = [e for e in events if e.type == "cooldown_state_change" and e.payload["active"]]
    found = incidents(events)
    assert starts and [i["kind"] for i in found] == ["repeated_envelope_hits"] * len(starts)
    assert found[0]["last"] == "max_order_notional" and found[0]["cooldown_until_ns"] == starts[0].payload["until_ns"]


def test_a_halt_by_the_dra_is_an_incident():
    limits = RiskLimits(**{**{f: getattr(LIMITS, f) for f in LIMITS.__slots__}, "max_drawdown_pct": 0.0001})
    quotes, trades = market(6000)
    events = run(SessionEngine(setup(limits=limits, on_drawdown=SwitchState.HALTED)), quotes, trades, 1000)
    found = incidents(events)
    assert [i["kind"] for i in found] == ["kill_switch_halt"]
    assert (found[0]["to"], found[0]["actor"]) == ("halted", "system:dra")
    # reducing is a brake, not an incident
    events = run(SessionEngine(setup(limits=limits)), quotes, trades, 1000)
    assert any(e.type == "kill_switch_change" for e in events) and incidents(events) == []


def test_a_silence_longer_than_the_stale_threshold_is_a_data_gap_incident():
    from ifns_paper.engine.marketdata import QuoteBatch

    quotes, trades = market(3000)  # quotes 50 ms apart; SIM_TOUCH's stale threshold is 2,000 ms
    ts = quotes.ts.copy()
    ts[1500:] += 5_000_000_000  # the feed goes quiet for 5 s after quote 1,499
    gapped = QuoteBatch.from_arrays(quotes.symbol, ts, quotes.bid, quotes.ask, quotes.bid_size, quotes.ask_size)
    events = run(SessionEngine(setup()), gapped, trades.slice(0, 0), 100)
    gaps = [i for i in incidents(events) if i["kind"] == "data_gap"]
    assert gaps == [{"kind": "data_gap", "symbol": "EURUSD", "from_ts": int(ts[1499]), "to_ts": int(ts[1500]),
                     "gap_ms": 5050.0, "threshold_ms": 2000.0}]


def test_a_run_of_unusable_quotes_is_one_bad_quote_incident_per_run():
    from ifns_paper.engine.marketdata import QuoteBatch

    quotes, trades = market(3000)
    bid, ask = quotes.bid.copy(), quotes.ask.copy()
    bid[998:1003] = ask[998:1003] + 0.0005  # five crossed quotes, across a batch boundary (batches of 100)
    bid[2000] = 0.0  # one quote with a zero bid
    bid[2500:2502] = np.nan  # two with no bid
    glitched = QuoteBatch.from_arrays(quotes.symbol, quotes.ts, bid, ask, quotes.bid_size, quotes.ask_size)
    events = run(SessionEngine(setup()), glitched, trades, 100)
    found = [i for i in incidents(events) if i["kind"] == "bad_quote"]
    ts = quotes.ts
    assert found == [
        {"kind": "bad_quote", "symbol": "EURUSD", "from_ts": int(ts[998]), "to_ts": int(ts[1003]), "rows": 5,
         "reason": "crossed quote (bid > ask)"},
        {"kind": "bad_quote", "symbol": "EURUSD", "from_ts": int(ts[2000]), "to_ts": int(ts[2001]), "rows": 1,
         "reason": "zero or negative price"},
        {"kind": "bad_quote", "symbol": "EURUSD", "from_ts": int(ts[2500]), "to_ts": int(ts[2502]), "rows": 2,
         "reason": "NaN or infinite price"},
    ]
    # unusable prices reach no decision, mark or fill
    fills = [e.payload for e in events if e.type == "order_filled"]
    assert fills and all(np.isfinite(f["price"]) for f in fills)
    assert all(np.isfinite(e.payload["mid"]) for e in events if e.type == "dra_decision")
    # clean data raises none
    assert not [i for i in incidents(run(SessionEngine(setup()), quotes, trades, 100)) if i["kind"] == "bad_quote"]
