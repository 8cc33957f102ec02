"""The whole decision chain on generated data: consistency, brakes and parity."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ifns_paper.engine.controls import CooldownPolicy, SwitchState
from ifns_paper.engine.dra import RiskLimits
from ifns_paper.engine.ei import ExecutionPolicy
from ifns_paper.engine.features import FeatureEngine
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.msi import CallableModel, MeanReversionModel, MomentumModel
from ifns_paper.engine.orders import OrderType, TimeInForce
from ifns_paper.engine.replay import interleave
from ifns_paper.engine.routes import FillModel, RouteSpec
from ifns_paper.engine.session import SessionEngine, SessionSetup

MS = 1_000_000
LIMITS = RiskLimits(capital=1_000_000, max_order_notional=250_000, max_position_notional=500_000,
                    max_gross_exposure=2_000_000, max_net_exposure=1_000_000, max_daily_loss=25_000,
                    max_drawdown_pct=8.0, max_orders_per_minute=120, price_collar_bps=100)
ROUTES = {
    "SIM_TOUCH": RouteSpec("SIM_TOUCH", FillModel.TOUCH, insert_latency_ns=20 * MS, cancel_latency_ns=15 * MS,
                           market_data_latency_ns=5 * MS, taker_bps=0.5, stale_ns=2000 * MS),
    "SIM_VWAP": RouteSpec("SIM_VWAP", FillModel.VWAP, max_participation=0.1, interval_ns=1000 * MS,
                          insert_latency_ns=30 * MS, stale_ns=2000 * MS),
}
IMMEDIATE = ExecutionPolicy("immediate", OrderType.MARKET, TimeInForce.IOC, "SIM_TOUCH")
TWAP = ExecutionPolicy("twap_5s", OrderType.MARKET, TimeInForce.DAY, "SIM_TOUCH", "twap", 5, 5)


def market(n=20_000, seed=3, symbol="EURUSD"):
    """A trending-then-reverting random walk, 50 ms apart, with trades."""
    rng = np.random.default_rng(seed)
    drift = np.where(np.arange(n) < n // 2, 2e-6, -2e-6)
    mid = 1.1 * np.exp(np.cumsum(drift + rng.normal(0, 3e-5, n)))
    half = 0.00001 * rng.integers(1, 3, n)
    ts = 1_700_000_000_000_000_000 + np.arange(n) * 50 * MS
    size = rng.integers(1, 50, n) * 100_000.0
    quotes = QuoteBatch.from_arrays(symbol, ts, mid - half, mid + half, size, size)
    trades = TradeBatch.from_arrays(symbol, ts[::5] + 1, mid[::5], rng.integers(1, 20, len(ts[::5])) * 100_000.0,
                                    rng.choice([-1, 1], len(ts[::5])))
    return quotes, trades


def setup(**kw):
    base = dict(session_id="s1", lane="paper_research", strategy_id="strat.momentum_fx@1.3.0",
                models=[(MomentumModel(), 0.7), (MeanReversionModel(), 0.3)], limits=LIMITS, policy=IMMEDIATE,
                routes=ROUTES, lot_sizes={"EURUSD": 1000.0}, vol_target=3e-5, min_interval_ns=1000 * MS)
    return SessionSetup(**(base | kw))


def run(engine, quotes, trades, chunk):
    """Feed quotes and trades in time order, in pieces of at most ``chunk`` rows."""
    out = []
    for piece in interleave([quotes, trades]):
        for start in range(0, len(piece), chunk):
            part = piece.slice(start, start + chunk)
            out += engine.on_quotes(part) if isinstance(part, QuoteBatch) else engine.on_trades(part)
    return out


def test_the_chain_produces_consistent_events_positions_and_cash():
    quotes, trades = market()
    engine = SessionEngine(setup())
    events = run(engine, quotes, trades, 20_000)
    kinds = Counter(e.type for e in events)
    assert kinds["msi_proposal"] > 10 and kinds["dra_decision"] > 10
    assert kinds["order_submitted"] > 10 and kinds["order_filled"] > 10
    fills = [e.payload for e in events if e.type == "order_filled"]
    net = sum(f["quantity"] * (1 if f["side"] == "buy" else -1) for f in fills)
    assert engine.ledger.position("EURUSD").quantity == pytest.approx(net)
    engine.ledger.check_invariant()
    # every submitted order came from an allowed or reduced decision
    decided = {e.payload["decision_id"] for e in events if e.type == "dra_decision" and e.payload["verdict"] != "DENY"}
    assert {e.payload["decision_id"] for e in events if e.type == "order_submitted"} <= decided
    # every event is paper-labelled by the caller; here: proposals carry models and features
    proposal = next(e.payload for e in events if e.type == "msi_proposal")
    assert proposal["models"][0] == {"registry_id": "model.momentum", "version": "2.1.0", "weight": 0.7}
    assert {"vol", "trend", "zscore", "regime"} <= set(proposal["features"])


def test_decisions_use_the_position_limit():
    quotes, trades = market()
    engine = SessionEngine(setup(vol_target=1.0, budget_fraction=1.0))  # wants far more than the limits allow
    events = run(engine, quotes, trades, 5_000)
    assert any(e.type == "risk_breach" for e in events)
    mid = float(quotes.bid[-1] + quotes.ask[-1]) / 2
    assert abs(engine.ledger.position("EURUSD").quantity) * mid <= LIMITS.max_position_notional * 1.01


def test_replay_and_real_time_chunking_make_the_same_decisions():
    quotes, trades = market(8_000)
    whole = run(SessionEngine(setup()), quotes, trades, 8_000)
    ticks = run(SessionEngine(setup()), quotes, trades, 37)  # a real-time step sees a few ticks at a time
    assert [(e.type, e.ts, e.payload) for e in whole] == [(e.type, e.ts, e.payload) for e in ticks]


def test_kill_switch_halted_stops_new_risk_within_one_step_and_cancels_working_orders():
    quotes, trades = market(6_000)
    engine = SessionEngine(setup(policy=TWAP))
    cut = 0
    while not engine.driver._actions:  # run until a TWAP decision has slices waiting
        engine.on_quotes(quotes.slice(cut, cut + 20))
        cut += 20
        assert cut < 5000, "no TWAP decision in the data"
    ts = int(quotes.ts[cut - 1])
    events = engine.set_switch("global", SwitchState.HALTED, ts=ts, actor="ops", reason="test")
    assert events[0].type == "kill_switch_change" and events[0].payload["to"] == "halted"
    sent_before = len(engine.broker._orders)
    later = run(engine, quotes.slice(cut, 6000), trades.slice(0, 0), 500)
    assert engine.broker.working_orders() == []  # working orders were cancelled
    assert len(engine.broker._orders) == sent_before  # and no TWAP slice went out after the halt
    decisions = [e.payload for e in later if e.type == "dra_decision"]
    assert decisions and all(d["verdict"] == "DENY" and d["reasons"] == ["kill_switch_halted"] for d in decisions)
    assert not [e for e in later if e.type == "order_submitted"]


def test_drawdown_breach_moves_the_session_to_reducing():
    limits = RiskLimits(**{**{f: getattr(LIMITS, f) for f in LIMITS.__slots__}, "max_drawdown_pct": 0.0001})
    quotes, trades = market(6_000)
    engine = SessionEngine(setup(limits=limits))
    events = run(engine, quotes, trades, 1000)
    switches = [e.payload for e in events if e.type == "kill_switch_change"]
    assert switches and switches[0]["to"] == "reducing" and switches[0]["actor"] == "system:dra"


def test_cooldown_after_breaches_is_reported_on_and_off():
    quotes, trades = market(10_000)
    engine = SessionEngine(setup(vol_target=1.0, budget_fraction=1.0,
                                 cooldown=CooldownPolicy(max_breaches=1, window_ns=60_000 * MS,
                                                         duration_ns=30_000 * MS)))
    events = run(engine, quotes, trades, 1000)
    changes = [e for e in events if e.type == "cooldown_state_change"]
    assert [c.payload["active"] for c in changes[:2]] == [True, False]
    assert changes[1].ts - changes[0].ts == 30_000 * MS  # over exactly on time
    during = [e.payload for e in events if e.type == "dra_decision" and changes[0].ts < e.ts < changes[1].ts]
    assert all("cooldown" in d["reasons"] or d["risk_reducing"] for d in during)


def test_an_operator_cooldown_denies_new_risk_until_cleared_and_names_the_operator():
    quotes, trades = market(10_000)
    engine = SessionEngine(setup())
    half = 5_000
    run(engine, quotes.slice(0, half), trades.slice(0, 0), 1000)
    t_set = int(quotes.ts[half - 1])

    # the operator starts a 60 s cooldown: one event naming them, ending exactly 60 s later
    started = engine.set_cooldown(active=True, ts=t_set, duration_ns=60_000 * MS, actor="api:ops", reason="news")
    assert [(e.type, e.ts) for e in started] == [("cooldown_state_change", t_set)]
    assert started[0].payload == {"active": True, "until_ns": t_set + 60_000 * MS, "reason": "news",
                                  "actor": "api:ops"}
    during = run(engine, quotes.slice(half, half + 600), trades.slice(0, 0), 100)  # 600 quotes: 30 s
    decisions = [e.payload for e in during if e.type == "dra_decision"]
    assert decisions, "no decision in the cooled-down window"
    assert all("cooldown" in d["reasons"] for d in decisions if not d["risk_reducing"])
    assert not [e for e in during if e.type == "order_submitted" and not _reducing(e, during)]

    # and ends it early: one event at the time asked, then decisions are free of the cooldown
    t_clear = int(quotes.ts[half + 599])
    ended = engine.set_cooldown(active=False, ts=t_clear, actor="api:ops", reason="all clear")
    assert [e.payload for e in ended] == [{"active": False, "until_ns": t_clear, "reason": "all clear",
                                           "actor": "api:ops"}]
    after = run(engine, quotes.slice(half + 600, 10_000), trades.slice(0, 0), 100)
    assert any(e.type == "dra_decision" for e in after)
    assert not [e for e in after if e.type == "cooldown_state_change"]  # no second "over" when 60 s pass
    assert not [e for e in after if e.type == "dra_decision" and "cooldown" in e.payload["reasons"]]
    # clearing again changes nothing
    assert engine.set_cooldown(active=False, ts=int(quotes.ts[-1]), actor="api:ops", reason="again") == []


def _reducing(submitted, events) -> bool:
    decision = next(e.payload for e in events
                    if e.type == "dra_decision" and e.payload["decision_id"] == submitted.payload["decision_id"])
    return decision["risk_reducing"]


def test_a_user_supplied_model_by_dotted_path():
    good = CallableModel(registry_id="model.user", version="0.0.1", path="tests.engine.user_models:contrarian")
    quotes, trades = market(4000)
    engine = SessionEngine(setup(models=[(good, 1.0)]))
    events = run(engine, quotes, trades, 4000)
    assert any(e.type == "order_filled" for e in events)
    assert math.isfinite(engine.ledger.equity)


def test_a_broken_user_model_is_refused_with_its_path():
    frame = FeatureEngine().update(market(10)[0])
    wrong_shape = CallableModel(registry_id="model.user", version="0.0.1", path="tests.engine.user_models:broken")
    with pytest.raises(ValueError, match=r"tests.engine.user_models:broken' returned shape \(3,\), expected \(10,\)"):
        wrong_shape.signal(frame)
    with pytest.raises(ValueError, match="model path 'tests.engine.user_models:missing'"):
        CallableModel(registry_id="model.user", version="0.0.1", path="tests.engine.user_models:missing")
    with pytest.raises(ValueError, match="expected 'package.module:function'"):
        CallableModel(registry_id="model.user", version="0.0.1", path="nodots")
