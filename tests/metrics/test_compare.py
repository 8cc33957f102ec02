"""Triangulation scores on crafted pairs: DTW by hand on tiny series and against
dtaidistance (a test-only dependency) and a plain O(n·m) recurrence on random ones;
correlation and tracking error by hand; curves with known deviations and flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dtaidistance import dtw as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from ifns_paper.metrics.compare import (
    annualised_dtw,
    compare_curves,
    decision_agreement,
    dtw_distance,
    dtw_squared,
    returns_correlation,
    tracking_error,
)
from ifns_paper.metrics.conventions import Conventions
from tests.fuzz import examples

MINUTE_247 = Conventions(grid_s=60, calendar="24/7")  # 525,600 periods a year
S = 1_000_000_000


def test_dtw_by_hand():
    # cost (a_i − b_j)²: a=[0,1,2] rows, b=[0,2] columns: [[0,4],[1,1],[4,0]]
    # cumulative: C00=0, C01=4, C10=1, C11=1+min(0,4,1)=1, C20=4+1=5, C21=0+min(1,5,1)=1
    assert dtw_squared(np.array([0.0, 1, 2]), np.array([0.0, 2])) == 1.0
    assert dtw_distance(np.array([0.0, 1, 2]), np.array([0.0, 2])) == 1.0
    # a shift by one is free to warp away: [0,0,1,2] vs [0,1,2,2] costs 0 with a band of 1 …
    assert dtw_squared(np.array([0.0, 0, 1, 2]), np.array([0.0, 1, 2, 2]), window=1) == 0.0
    # … but not on the diagonal alone: (0-0)² + (0-1)² + (1-2)² + (2-2)² = 2
    assert dtw_squared(np.array([0.0, 0, 1, 2]), np.array([0.0, 1, 2, 2]), window=0) == 2.0
    assert dtw_squared(np.array([]), np.array([1.0])) == math.inf


def _plain_dtw(a, b, window=None):
    n, m = len(a), len(b)
    w = max(n, m) if window is None else max(window, abs(n - m))
    c = np.full((n + 1, m + 1), np.inf)
    c[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(max(1, i - w), min(m, i + w) + 1):
            c[i, j] = (a[i - 1] - b[j - 1]) ** 2 + min(c[i - 1, j], c[i, j - 1], c[i - 1, j - 1])
    return math.sqrt(c[n, m])


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=25), st.lists(st.floats(-1, 1), min_size=1, max_size=25),
       st.one_of(st.none(), st.integers(0, 8)))
def test_dtw_agrees_with_dtaidistance_and_the_plain_recurrence(a, b, window):
    # compared as D (the row-wise cumulative minimum sums costs of order 1: D carries an
    # absolute rounding error of ~1e-16, which √ would blow up near 0)
    a, b = np.array(a), np.array(b)
    ours = dtw_squared(a, b, window)
    assert ours == pytest.approx(_plain_dtw(a, b, window) ** 2, rel=1e-9, abs=1e-12)
    if window is None:
        assert ours == pytest.approx(reference.distance(a, b) ** 2, rel=1e-9, abs=1e-12)
    elif len(a) == len(b):  # dtaidistance's window w allows |i − j| < w: ours + 1
        assert ours == pytest.approx(reference.distance(a, b, window=window + 1) ** 2, rel=1e-9, abs=1e-12)


def test_annualised_dtw_is_the_rms_difference_along_the_path_annualised():
    a = np.array([0.001, -0.002, 0.0005, 0.0])
    b = np.array([0.0, -0.001, 0.0015, 0.001])
    # on the diagonal (window 0): D = 0.001² + 0.001² + 0.001² + 0.001² = 4e-6; √(D/4 · 525,600)
    assert annualised_dtw(a, b, MINUTE_247, window=0) == pytest.approx(math.sqrt(1e-6 * 525_600), rel=1e-12)
    assert annualised_dtw(a, a, MINUTE_247) == 0.0
    assert annualised_dtw(a, np.array([]), MINUTE_247) is None


def test_correlation_and_tracking_error_by_hand():
    a, b = np.array([1.0, 2, 3]), np.array([2.0, 4, 7])
    # deviations (-1,0,1) and (-7/3,-1/3,8/3): r = 5 / √(2 · 114/9)
    assert returns_correlation(a, b) == pytest.approx(5 / math.sqrt(2 * 114 / 9), rel=1e-12)
    assert returns_correlation(a, np.full(3, 0.5)) is None  # a flat series has no correlation
    # a − b = (-1,-2,-4): mean -7/3, sample variance ((4/3)² + (1/3)² + (5/3)²) / 2 = 7/3
    conv = Conventions(grid_s=86_400, calendar="24/7")
    assert tracking_error(a, b, conv) == pytest.approx(math.sqrt(7 / 3) * math.sqrt(365), rel=1e-12)
    assert returns_correlation(np.array([1.0]), np.array([2.0])) is None
    with pytest.raises(ValueError, match="differ in length"):
        returns_correlation(a, b[:2])


def curve(returns, t0=1_764_000_000 * S // (60 * S) * (60 * S), start=1e6):
    equity = start * np.cumprod(np.r_[1.0, 1 + np.asarray(returns)])
    return t0 + np.arange(len(equity)) * 60 * S, equity


def test_the_same_curve_scores_perfectly_and_raises_no_flag():
    rng = np.random.default_rng(3)
    ts, eq = curve(rng.normal(0, 1e-4, 300))
    out = compare_curves(ts, eq, ts, eq, MINUTE_247)
    assert out["periods"] == 300 and out["correlation"] == pytest.approx(1.0)
    assert out["dtw_annualised"] == 0.0 and out["tracking_error"] == 0.0 and out["flags"] == []
    assert out["equity_deviation"] == {"last": 0.0, "max_abs": 0.0}


def test_a_curve_one_period_late_has_poor_correlation_but_a_small_dtw():
    rng = np.random.default_rng(4)
    r = rng.normal(0, 1e-4, 400)
    ts, paper = curve(np.r_[0.0, r[:-1]])  # the same returns, one minute late
    _, backtest = curve(r)
    out = compare_curves(ts, paper, ts, backtest, MINUTE_247, window=5)
    assert abs(out["correlation"]) < 0.3 and "correlation_below" in out["flags"]
    # paper (0, r0 … r398) against (r0 … r399): warping pairs every return with its twin but
    # the path must start at (0, 0) and end at (399, 399): D = (0 − r0)² + (r398 − r399)²
    assert out["dtw"] == pytest.approx(math.sqrt(r[0] ** 2 + (r[-2] - r[-1]) ** 2), rel=1e-9)
    assert "dtw_above" not in out["flags"]
    assert out["tracking_error"] > out["dtw_annualised"]


def test_a_known_equity_deviation_and_the_overlap_of_the_two_spans():
    ts, backtest = curve(np.full(120, 1e-5))
    paper = backtest.copy()
    paper[60:] -= 250.0  # a one-off cost of 250 USD at minute 60
    out = compare_curves(ts[10:], paper[10:], ts, backtest, MINUTE_247)
    assert (out["from_ns"], out["to_ns"], out["periods"]) == (int(ts[10]), int(ts[-1]), 110)
    assert out["equity_deviation"] == {"last": -250.0, "max_abs": 250.0}
    assert compare_curves(ts[:5], paper[:5], ts[100:], backtest[100:], MINUTE_247)["flags"] == ["no_overlap"]


US = 1_000  # decision times are compared at the microsecond


def decision(ts, symbol="EURUSD", side="buy", qty=10_000.0, verdict="ALLOW"):
    return {"ts": ts * US, "symbol": symbol, "side": side, "approved_quantity": qty, "verdict": verdict}


def fill(ts, price, qty=10_000.0):
    return {"ts": ts * US, "symbol": "EURUSD", "side": "buy", "quantity": qty, "price": price}


def test_identical_decisions_agree_fully_with_no_divergence():
    runs = [decision(10), decision(20, side="sell"), decision(30, symbol="GBPUSD", verdict="DENY", qty=0.0)]
    out = decision_agreement(runs, [dict(d) for d in runs])
    assert (out["agreeing"], out["share"], out["first_divergence"]) == (3, 1.0, None)
    assert decision_agreement([], [])["share"] == 1.0


def test_the_first_divergence_is_the_earliest_decision_without_a_twin_with_its_cause():
    paper = [decision(10), decision(20), decision(30, qty=5_000.0), decision(40)]
    other = [decision(10), decision(20), decision(30, qty=10_000.0), decision(40), decision(50)]
    out = decision_agreement(paper, other, paper_fills=[fill(12, 1.1000)], other_fills=[fill(12, 1.1000)])
    assert (out["agreeing"], out["share"]) == (3, 3 / 5)
    fd = out["first_divergence"]
    assert (fd["ts"], fd["symbol"], fd["paper"]["approved_quantity"], fd["other"]["approved_quantity"]) == \
        (30 * US, "EURUSD", 5_000.0, 10_000.0)
    assert fd["likely_cause"] == "unknown"  # same data, same fills before it: configuration, say
    # the fills before it differ: a fill (or, against a zero-latency run, the latency)
    moved = decision_agreement(paper, other, paper_fills=[fill(12, 1.1002)], other_fills=[fill(12, 1.1000)])
    assert moved["first_divergence"]["likely_cause"] == "fill"
    zero = decision_agreement(paper, other, paper_fills=[fill(12, 1.1002)], other_fills=[fill(12, 1.1000)],
                              latency="zero")
    assert zero["first_divergence"]["likely_cause"] == "latency"
    # a data gap of that symbol that just ended explains it before anything else
    gap = decision_agreement(paper, other, gaps=[{"kind": "data_gap", "symbol": "EURUSD", "from_ts": 22 * US, "to_ts": 25 * US}])
    assert gap["first_divergence"]["likely_cause"] == "data gap"
    # a decision one side has and the other has not
    only = decision_agreement([decision(10)], [decision(10), decision(15, symbol="GBPUSD")])
    assert only["first_divergence"]["paper"] is None and only["first_divergence"]["other"]["symbol"] == "GBPUSD"


def test_a_correlation_that_cannot_be_computed_is_flagged_as_such_not_as_low():
    ts, eq = curve([1e-4])  # one return each
    out = compare_curves(ts, eq, ts, eq * 1.0, MINUTE_247)
    assert out["periods"] == 1 and out["correlation"] is None
    assert out["flags"] == ["correlation_undefined"]
