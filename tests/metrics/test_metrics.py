"""Metrics against hand-computed values on small series, edge cases, and against
empyrical-reloaded (a test-only dependency) on random series with the same conventions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifns_paper.engine.trades import RoundTrip, round_trips
from ifns_paper.metrics.benchmark import tracking
from ifns_paper.metrics.conventions import (
    Conventions,
    calendar_of,
    periods_per_year,
    risk_free_per_period,
)
from ifns_paper.metrics.execution import (
    ChildFill,
    implementation_shortfall,
    order_outcomes,
    slippage_stats,
)
from ifns_paper.metrics.performance import (
    annual_volatility,
    max_drawdown,
    profit_factor,
    sample_on_grid,
    sharpe,
    simple_returns,
    sortino,
    turnover,
)
from ifns_paper.metrics.risk import order_rate_per_minute, utilisation
from ifns_paper.metrics.trading import trade_stats
from tests.fuzz import examples

S = 1_000_000_000
DAILY_247 = Conventions(grid_s=86_400, calendar="24/7")  # 365 periods a year


# --- conventions -----------------------------------------------------------------------------


def test_periods_per_year_come_from_the_calendar_not_252():
    assert periods_per_year("24/7", 60) == 365 * 1440 == 525_600  # a 1-minute grid on crypto
    assert periods_per_year("24/5", 60) == 260 * 1440 == 374_400  # FX: 52 weeks x 5 days
    assert periods_per_year("24/7", 86_400) == 365
    with pytest.raises(ValueError, match="calendar"):
        periods_per_year("252", 60)


def test_the_annual_risk_free_rate_compounds_per_period():
    # 4 % a year on 365 daily periods: (1.04)^(1/365) - 1 = 0.000107459...
    assert risk_free_per_period(0.04, 365) == pytest.approx(1.04 ** (1 / 365) - 1, rel=1e-15)
    assert (1 + risk_free_per_period(0.04, 365)) ** 365 == pytest.approx(1.04)


def test_the_calendar_of_a_session_follows_its_symbols():
    assert calendar_of(["BTCUSDT", "ETHUSDT"]) == "24/7"
    assert calendar_of(["EURUSD", "GBPUSD"]) == "24/5"
    assert calendar_of(["BTCUSDT", "EURUSD"]) == "24/5"


# --- equity, returns, ratios -----------------------------------------------------------------


def test_equity_is_sampled_on_the_grid_with_the_last_value_at_or_before_each_point():
    ts = np.array([500_000_000, 1_200_000_000, 2_900_000_000])  # 0.5 s, 1.2 s, 2.9 s
    grid, values = sample_on_grid(ts, np.array([100.0, 101.0, 99.0]), 1.0)
    assert grid.tolist() == [1 * S, 2 * S] and values.tolist() == [100.0, 101.0]
    grid, values = sample_on_grid(ts, np.array([100.0, 101.0, 99.0]), 1.0, end_ns=4 * S)
    assert values.tolist() == [100.0, 101.0, 99.0, 99.0]  # a gap in data holds the last value


def test_returns_volatility_sharpe_and_sortino_by_hand():
    r = simple_returns(np.array([100.0, 101.0, 98.98, 101.9494]))
    assert r.tolist() == pytest.approx([0.01, -0.02, 0.03])
    # mean = 0.02/3 = 0.0066667; deviations 0.0033333, -0.0266667, 0.0233333;
    # sum of squares = 0.0012666667, / (3-1) = 0.00063333 -> sd = 0.0251661
    sd = math.sqrt(0.0012666666666666667 / 2)
    assert annual_volatility(r, DAILY_247) == pytest.approx(sd * math.sqrt(365), rel=1e-6)
    assert sharpe(r, DAILY_247) == pytest.approx((0.02 / 3) / sd * math.sqrt(365), rel=1e-6)
    # downside deviation over all periods: sqrt((0 + 0.0004 + 0) / 3) = 0.0115470
    assert sortino(r, DAILY_247) == pytest.approx((0.02 / 3) / math.sqrt(0.0004 / 3) * math.sqrt(365), rel=1e-6)


@pytest.mark.parametrize(("minutes", "reported"), [(10, False), (29, False), (30, True), (45, True)])
def test_a_summary_reports_annualised_ratios_from_thirty_returns_on(minutes, reported):
    from ifns_paper.metrics.summary import summarize

    rng = np.random.default_rng(minutes)
    equity = 1e6 * np.cumprod(np.r_[1.0, 1 + rng.normal(0, 1e-4, minutes)])
    t0 = 1_764_000_000 * S // (60 * S) * (60 * S)
    series = [{"ts_ns": t0 + i * 60 * S, "equity": float(e), "gross": 0.0, "net": 0.0, "drawdown": 0.0,
               "positions": {}, "marks": {}} for i, e in enumerate(equity)]
    conv = Conventions(grid_s=60, calendar="24/7")
    out = summarize(session_id="s", lane="paper_research", strategy_id="x", as_of_ns=series[-1]["ts_ns"],
                    final=False, conventions=conv, starting_capital=1e6,
                    ledger={"equity": float(equity[-1]), "realized": 0.0, "unrealized": 0.0, "fees": 0.0},
                    series=series, fills=[], decisions=[], orders=[], breaches=[], incidents=[], limits={})
    assert out["returns"]["periods"] == minutes and out["conventions"]["min_periods"] == 30
    if reported:  # by hand: mean / sd(ddof=1) * sqrt(525,600 one-minute periods a year)
        r = np.diff(equity) / equity[:-1]
        assert out["returns"]["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(525_600), rel=1e-9)
    else:
        assert out["returns"]["sharpe"] is None and out["returns"]["sortino"] is None
    assert out["returns"]["volatility"] is not None  # a volatility needs no minimum sample


def test_flat_equity_has_no_ratios_and_no_drawdown():
    r = simple_returns(np.full(10, 1000.0))
    assert annual_volatility(r, DAILY_247) == 0.0
    assert sharpe(r, DAILY_247) is None and sortino(r, DAILY_247) is None
    assert max_drawdown(np.arange(10) * S, np.full(10, 1000.0))["depth"] == 0.0
    assert sharpe(np.array([0.01]), DAILY_247) is None  # one return: undefined, not 0


def test_the_risk_free_rate_is_taken_out_per_period():
    conv = Conventions(grid_s=86_400, calendar="24/7", risk_free_annual=0.05)
    r = np.array([0.001, 0.002, 0.0005, 0.0015])
    rf = 1.05 ** (1 / 365) - 1
    ex = r - rf
    assert sharpe(r, conv) == pytest.approx(ex.mean() / ex.std(ddof=1) * math.sqrt(365), rel=1e-12)


def test_max_drawdown_depth_amount_and_duration_by_hand():
    ts = np.arange(5) * S
    dd = max_drawdown(ts, np.array([100.0, 120.0, 90.0, 110.0, 125.0]))
    # peak 120 at 1 s, trough 90 at 2 s: 30 / 120 = 25 %; back above 120 at 4 s: 3 s long
    assert dd == {"depth": 0.25, "amount": 30.0, "peak_ts": 1 * S, "trough_ts": 2 * S, "duration_s": 3.0,
                  "recovered": True}
    open_dd = max_drawdown(ts, np.array([100.0, 120.0, 90.0, 110.0, 115.0]))
    assert (open_dd["recovered"], open_dd["duration_s"]) == (False, 3.0)  # still under water at the end


def test_turnover_and_profit_factor_by_hand():
    assert turnover(traded_notional=2_500_000, mean_equity=1_000_000) == 2.5
    assert profit_factor(np.array([10.0, -5.0, 20.0, -2.5])) == pytest.approx(30 / 7.5)
    assert profit_factor(np.array([10.0, 20.0])) is None  # no losing trade


# Returns as a grid produces them: up to ±5 % a period, none so tiny it underflows (|r| < 1e-12).
returns_strategy = st.lists(st.floats(-0.05, 0.05, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-12),
                            min_size=3, max_size=300)


@settings(max_examples=examples(60), deadline=None)
@given(returns_strategy, st.sampled_from([("24/7", 60.0), ("24/5", 60.0), ("24/7", 86_400.0)]),
       st.sampled_from([0.0, 0.03]))
def test_ratios_agree_with_empyrical_on_random_returns(returns, grid, rf_annual):
    empyrical = pytest.importorskip("empyrical")
    conv = Conventions(grid_s=grid[1], calendar=grid[0], risk_free_annual=rf_annual)
    r = np.asarray(returns)
    series = pd.Series(r)
    n, rf = conv.periods_per_year, conv.risk_free_per_period
    if np.std(r - rf, ddof=1) > 1e-12:
        assert sharpe(r, conv) == pytest.approx(empyrical.sharpe_ratio(series, risk_free=rf, annualization=n),
                                                rel=1e-9)
    assert annual_volatility(r, conv) == pytest.approx(empyrical.annual_volatility(series, annualization=n),
                                                       rel=1e-9)
    if (r - rf < 0).any():
        ours = sortino(r, conv)
        theirs = empyrical.sortino_ratio(series - rf, annualization=n)
        assert ours == pytest.approx(theirs, rel=1e-9)
    equity = 100.0 * np.cumprod(np.concatenate([[1.0], 1.0 + r]))
    assert max_drawdown(np.arange(len(equity)) * S, equity)["depth"] == pytest.approx(
        -empyrical.max_drawdown(series), rel=1e-9, abs=1e-12)


# --- trades ------------------------------------------------------------------------------------


def _trip(pnl: float) -> RoundTrip:
    return RoundTrip("X", 1, 1.0, 0, 1, 100.0, 100.0 + pnl, 0.0)


def test_trade_statistics_by_hand_a_zero_trade_is_a_loss():
    stats = trade_stats([_trip(10), _trip(-5), _trip(0), _trip(20)])
    assert stats == {"trades": 4, "winners": 2, "losers": 2, "hit_rate": 0.5, "average_win": 15.0,
                     "average_loss": -2.5, "expectancy": 6.25, "net_pnl": 25.0, "profit_factor": 6.0}


def test_no_trade_and_one_trade_and_all_losses():
    assert trade_stats([])["hit_rate"] is None and trade_stats([])["expectancy"] is None
    one = trade_stats([_trip(3)])
    assert (one["hit_rate"], one["expectancy"], one["profit_factor"]) == (1.0, 3.0, None)
    losses = trade_stats([_trip(-1), _trip(-3)])
    assert (losses["hit_rate"], losses["average_loss"], losses["profit_factor"]) == (0.0, -2.0, 0.0)


def test_round_trips_match_fifo_through_a_flip_and_partial_closes():
    fills = [  # buy 10 @ 100, buy 5 @ 102, sell 12 @ 105 (closes 10 then 2), sell 8 @ 101 (closes 3, opens -5)
        {"symbol": "X", "side": "buy", "quantity": 10, "price": 100.0, "fee": 1.0, "ts": 1},
        {"symbol": "X", "side": "buy", "quantity": 5, "price": 102.0, "fee": 0.5, "ts": 2},
        {"symbol": "X", "side": "sell", "quantity": 12, "price": 105.0, "fee": 1.2, "ts": 3},
        {"symbol": "X", "side": "sell", "quantity": 8, "price": 101.0, "fee": 0.8, "ts": 4},
        {"symbol": "X", "side": "buy", "quantity": 5, "price": 99.0, "fee": 0.5, "ts": 5},
    ]
    trips = round_trips(fills)
    got = [(t.direction, t.quantity, t.entry_price, t.exit_price, round(t.pnl, 9), round(t.fees, 9)) for t in trips]
    assert got == [
        (1, 10, 100.0, 105.0, 50.0, 1.0 + 1.0),  # all of the first buy's fee, 10/12 of the sell's
        (1, 2, 102.0, 105.0, 6.0, 0.2 + 0.2),  # 2/5 of the second buy's fee, 2/12 of the sell's
        (1, 3, 102.0, 101.0, -3.0, 0.3 + 0.3),  # the rest of the second buy, 3/8 of the second sell
        (-1, 5, 101.0, 99.0, 10.0, 0.5 + 0.5),  # the flip's 5 short, closed by the last buy
    ]


# --- execution ---------------------------------------------------------------------------------


def test_slippage_statistics_and_histogram_by_hand():
    stats = slippage_stats([1.0, 3.0, -1.0, 7.0, float("nan")])  # NaN: no arrival mid, left out
    assert (stats["count"], stats["mean_bps"], stats["worst_bps"]) == (4, 2.5, 7.0)
    assert stats["p50_bps"] == pytest.approx(2.0)  # numpy linear: between 1 and 3
    assert stats["p90_bps"] == pytest.approx(3.0 + 0.7 * (7.0 - 3.0))
    # bins: ..-20, -20..-10, ..., -1..0 holds -1, 1..2 holds 1, 2..5 holds 3, 5..10 holds 7
    counts = dict(zip(["<-20", "-20", "-10", "-5", "-2", "-1", "0", "1", "2", "5", "10", "20", "50"],
                      stats["histogram"]["counts"], strict=True))
    assert counts["-1"] == 1 and counts["1"] == 1 and counts["2"] == 1 and counts["5"] == 1
    assert sum(stats["histogram"]["counts"]) == 4
    assert slippage_stats([])["count"] == 0


def test_implementation_shortfall_of_a_partly_filled_parent_by_hand():
    # buy 1,000 decided at mid 100.00; the first child arrives at mid 100.02; 600 fill at an
    # average 100.05 (fees 0.60); 400 never fill; the mid ends at 100.10
    result = implementation_shortfall(side=1, quantity=1000, decision_price=100.0, arrival_price=100.02,
                                      end_price=100.10, fills=[ChildFill(400, 100.04, 0.4), ChildFill(200, 100.07, 0.2)])
    assert result["executed"] == 600 and result["average_price"] == pytest.approx(100.05)
    assert result["delay"] == pytest.approx(600 * 0.02)  # 12.00
    assert result["trading"] == pytest.approx(600 * 0.03)  # 18.00
    assert result["opportunity"] == pytest.approx(400 * 0.10)  # 40.00
    assert result["fees"] == pytest.approx(0.6)
    assert result["total"] == pytest.approx(70.6)
    assert result["total_bps"] == pytest.approx(70.6 / 100_000 * 1e4)  # 7.06 bps of 100,000
    # a sell that gets a better price than the decision has a negative (favourable) shortfall
    sell = implementation_shortfall(side=-1, quantity=100, decision_price=50.0, arrival_price=50.0, end_price=50.0,
                                    fills=[ChildFill(100, 50.5, 0.0)])
    assert sell["trading"] == pytest.approx(-50.0) and sell["opportunity"] == 0.0


def test_fill_and_reject_rates_per_route_and_reason():
    ms = 1_000_000
    orders = [
        {"route_id": "A", "status": "filled", "reason": "", "filled_quantity": 1, "submitted_ns": 0, "first_fill_ns": 20 * ms},
        {"route_id": "A", "status": "rejected", "reason": "stale_quote", "filled_quantity": 0, "submitted_ns": 0,
         "first_fill_ns": None},
        {"route_id": "A", "status": "cancelled", "reason": "", "filled_quantity": 2, "submitted_ns": 0,
         "first_fill_ns": 40 * ms},
        {"route_id": "A", "status": "rejected", "reason": "stale_quote", "filled_quantity": 0, "submitted_ns": 0,
         "first_fill_ns": None},
    ]
    a = order_outcomes(orders)["A"]
    assert (a["orders"], a["fill_rate"], a["reject_rate"]) == (4, 0.5, 0.5)
    assert a["rejects_by_reason"] == {"stale_quote": 2}
    assert a["time_to_fill_ms_p50"] == 30.0


# --- benchmark and risk -----------------------------------------------------------------------


def test_tracking_error_and_information_ratio_by_hand():
    r = np.array([0.01, 0.02, -0.01])
    b = np.array([0.005, 0.01, 0.0])
    # active 0.005, 0.01, -0.01: mean 0.001667, sd (ddof 1) = sqrt(0.00021667/2) = 0.0104083
    result = tracking(r, b, DAILY_247)
    te = math.sqrt(((0.005 - 0.005 / 3) ** 2 + (0.01 - 0.005 / 3) ** 2 + (-0.01 - 0.005 / 3) ** 2) / 2)
    assert result["tracking_error"] == pytest.approx(te * math.sqrt(365))
    assert result["information_ratio"] == pytest.approx((0.005 / 3) * 365 / (te * math.sqrt(365)))
    with pytest.raises(ValueError, match="length"):
        tracking(r, b[:2], DAILY_247)


def test_utilisation_is_time_weighted_over_the_step_function():
    # gross 100 for 1 s, 300 for 3 s, then 0 for 6 s, against a limit of 400
    u = utilisation(np.array([0, 1, 4]) * S, np.array([100.0, -300.0, 0.0]), 400.0, end_ns=10 * S)
    assert u["peak"] == 0.75
    assert u["time_weighted_mean"] == pytest.approx((100 * 1 + 300 * 3 + 0 * 6) / 10 / 400)
    assert utilisation(np.array([], dtype=np.int64), np.array([]), 400.0)["peak"] is None


def test_order_rate_counts_the_60_s_window_like_the_gate():
    ts, counts = order_rate_per_minute(np.array([0, 10, 59, 60, 61]) * S)
    # at 60 s the order sent at 0 s is exactly 60 s old: out of the window (ts > t - 60 s)
    assert counts.tolist() == [1, 2, 3, 3, 4]
