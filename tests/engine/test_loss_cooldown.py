"""A lane's configured loss cooldown in a session engine: a loss of ``max_loss`` within
``window_s`` stops new risk for ``duration_s``, on a controlled clock (quote times)."""

from __future__ import annotations

import pytest

from ifns_paper.engine.session import SessionEngine
from ifns_paper.session_setup import build_setup
from tests.engine.helpers import quotes

S = 1_000_000_000
T0_S = 1_700_000_000  # epoch seconds of the first quote
ENVELOPE = {"max_order_notional": 250_000, "max_position_notional_per_symbol": 2_000_000,
            "max_gross_exposure": 4_000_000, "max_net_exposure": 2_000_000, "max_daily_loss": 100_000,
            "max_drawdown_pct": 50.0, "max_orders_per_minute": 120, "price_collar_bps": 100}
ROUTES = {"SIM_TOUCH": {"simulation": {"model": "touch"},
                        "latency": {"order_insert_ms": 0, "cancel_ms": 0, "market_data_ms": 0},
                        "fees": {"maker_bps": 0, "taker_bps": 0}, "stale_quote_ms": 10_000}}
POLICY = {"order_type": "market", "time_in_force": "IOC", "route": "SIM_TOUCH", "slicing": {"kind": "none"}}
LANE_COOLDOWN = {"max_breaches": 3, "window_s": 60, "duration_s": 300, "max_loss": "5000.00"}


def engine(cooldown: dict | None) -> SessionEngine:
    """A session holding 1,000,000 EURUSD bought at 1.1000 that never trades (huge minimum change),
    so its equity moves one-for-one with the mid: 0.0001 is 100 of P&L."""
    return SessionEngine(build_setup(
        session_id="s_loss", lane="paper_gatecheck", strategy_id="strat.momentum_fx@1.2.0", capital=1_100_000,
        envelope=ENVELOPE, routes=ROUTES, policy_id="immediate", policy=POLICY,
        models=[("model.momentum", "2.1.0", 1.0)],
        sizing={"lot_sizes": {"EURUSD": 1000}, "min_change_lots": 1e9},
        initial_portfolio={"kind": "from_backtest", "cash": 0.0,
                           "positions": [{"symbol": "EURUSD", "quantity": 1_000_000, "avg_price": 1.1}]},
        cooldown=cooldown))


def at(session: SessionEngine, seconds: float, mid: float) -> list:
    """One quote ``seconds`` after T0 (half-spread 0.00001), then the feed's clock at the same
    time (nothing more up to it): the cooldown changes they produced. Equity is sampled on
    the engine's 1 s grid once the stream has passed a grid point."""
    t_ms = int((T0_S + seconds) * 1000)
    events = session.on_quotes(quotes((t_ms, mid - 0.00001, mid + 0.00001, 5e6, 5e6)))
    events += session.advance_to(t_ms * 1_000_000)
    assert not [e for e in events if e.type == "order_submitted"]
    return [e for e in events if e.type == "cooldown_state_change"]


def test_a_loss_of_max_loss_in_the_window_cools_the_session_down_for_the_duration():
    # given a lane cooldown of 5,000 within 60 s, for 300 s
    session = engine(LANE_COOLDOWN)
    assert at(session, 0, 1.1000) == []

    # when it loses 4,000, then 5,100 in all, from the window's high
    assert at(session, 10, 1.0960) == []
    changes = at(session, 20, 1.0949)

    # then a cooldown starts at that quote and lasts exactly 300 s
    assert [c.payload["active"] for c in changes] == [True]
    started = changes[0]
    assert started.ts == (T0_S + 20) * S
    assert started.payload["until_ns"] == (T0_S + 320) * S
    assert started.payload["reason"].startswith("lost 5100.")
    assert session.cooldown.active((T0_S + 319) * S)

    # a further loss during the cooldown does not restart it
    assert at(session, 100, 1.0900) == []
    assert at(session, 319.999, 1.0900) == []  # sampled at 319 s, the last grid point passed
    assert session.cooldown.active((T0_S + 319.999) * S)

    # and it ends once a quote reaches its end time, reported at that time
    ended = at(session, 320, 1.0900)
    assert [(c.payload["active"], c.ts, c.payload["reason"]) for c in ended] == [
        (False, (T0_S + 320) * S, "cooldown over")]
    assert not session.cooldown.active((T0_S + 320) * S)


def test_a_loss_spread_over_more_than_the_window_does_not_cool_down():
    session = engine(LANE_COOLDOWN)
    assert at(session, 0, 1.1000) == []
    assert at(session, 50, 1.0960) == []  # -4,000 within the window
    # -5,100 from the first quote, but the equity was last that high at 49 s, before the 60 s
    # window (55 s, 115 s]: -1,100 from the window's high
    assert at(session, 115, 1.0949) == []
    assert not session.cooldown.active((T0_S + 115) * S)


def test_the_window_high_is_the_equity_held_until_the_loss_not_only_at_quote_times():
    # given a quiet market at 1.1000 for 50 s (one quote at 0 s, the next at 50 s)
    session = engine(LANE_COOLDOWN)
    assert at(session, 0, 1.1000) == []
    assert at(session, 50, 1.0960) == []
    # when the mid reaches 1.0949 at 70 s: the equity was 5,100 higher at 49 s, within 60 s
    changes = at(session, 70, 1.0949)
    # then the cooldown starts
    assert [(c.payload["active"], c.ts) for c in changes] == [(True, (T0_S + 70) * S)]


@pytest.mark.parametrize("cooldown", [None, {**LANE_COOLDOWN, "max_loss": None}], ids=["no_section", "no_loss"])
def test_without_a_loss_rule_no_loss_cools_the_session_down(cooldown):
    session = engine(cooldown)
    assert at(session, 0, 1.1000) == []
    assert at(session, 10, 1.0000) == []  # -100,000
    assert not session.cooldown.active((T0_S + 10) * S)
