"""SEL evaluations: each criterion just passing and just failing, PSR and MinTRL as
criteria, pooled evidence, the recommendation rules and the evidence hash."""

from __future__ import annotations

import copy
import math

import pytest

from ifns_paper.metrics.lane import NS_PER_DAY
from ifns_paper.metrics.sel import evaluate, evidence_hash
from ifns_paper.metrics.significance import Moments, min_track_record, probabilistic_sharpe

T0 = 1_764_000_000 * 1_000_000_000
PPY = 525_600.0  # one-minute periods a year, 24/7


def summary(sid="s1", *, days=6.0, trades=250, winners=130, breaches=1, sharpe=1.2, depth=0.03, slip=1.5,
            te=0.002, incidents=0, moments=(20_000, 0.02, -0.1, 4.0)):
    n, sr, skew, kurt = moments
    return {"session_id": sid, "as_of": T0 + int(days * NS_PER_DAY), "started": T0, "final": False,
            "conventions": {"periods_per_year": PPY, "grid_s": 60.0},
            "trades": {"trades": trades, "winners": winners},
            "risk": {"breaches": {"max_order_notional": breaches} if breaches else {}},
            "returns": {"sharpe": sharpe, "max_drawdown": {"depth": depth},
                        "moments": {"n": n, "sharpe": sr, "skew": skew, "kurtosis": kurt}},
            "execution": {"slippage": {"mean_bps": slip}}, "benchmark": {"tracking_error": te},
            "incidents": {"count": incidents}}


RULES = {"min_days": 5, "min_trades": 200, "max_breaches": 5,
         "thresholds": {"min_sharpe": 0.5, "min_hit_rate": 0.45, "max_drawdown_pct": 6.0,
                        "max_mean_slippage_bps": 3.0, "max_tracking_error_bps": 50.0, "min_psr": 0.95,
                        "min_track_record": True, "max_incidents": 2, "max_slippage_vs_backtest_bps": 0.5,
                        "min_reconciliation_correlation": 0.8, "max_reconciliation_dtw": 0.2}}
COMPARISON = {"backtest_id": "shadow-x", "curves": {"correlation": 0.9, "dtw_annualised": 0.1},
              "execution": {"slippage_mean_bps": {"deviation": {"SIM_TOUCH": 0.3}}}}


def by_name(result):
    return {c["criterion"]: c for c in result["criteria"]}


def test_a_session_that_meets_every_criterion_is_recommended_for_promotion():
    result = evaluate(RULES, summary(), comparison=COMPARISON)
    assert result["recommendation"] == "promote" and result["failed"] == []
    assert len(result["criteria"]) == 14
    c = by_name(result)
    # PSR and MinTRL from the per-period moments (n=20,000, SR=0.02, skew −0.1, kurtosis 4)
    m = Moments(20_000, 0.02, -0.1, 4.0)
    assert c["min_psr"]["value"] == pytest.approx(probabilistic_sharpe(m))
    assert c["min_track_record"]["threshold"] == pytest.approx(min_track_record(m, confidence=0.95))
    # by hand: σ̂² = 1 + 0.1·0.02 + 3/4·0.0004 = 1.0023; MinTRL = 1 + 1.0023·(1.644854/0.02)² = 6,780.7
    assert c["min_track_record"]["threshold"] == pytest.approx(1 + 1.0023 * (1.6448536269514722 / 0.02) ** 2)


@pytest.mark.parametrize(("criterion", "change", "passes"), [
    ("min_days", {"days": 5.0}, True), ("min_days", {"days": 4.999}, False),
    ("min_trades", {"trades": 200, "winners": 100}, True), ("min_trades", {"trades": 199, "winners": 100}, False),
    ("max_breaches", {"breaches": 5}, True), ("max_breaches", {"breaches": 6}, False),
    ("min_sharpe", {"sharpe": 0.5}, True), ("min_sharpe", {"sharpe": 0.4999}, False),
    ("min_hit_rate", {"winners": 113}, True), ("min_hit_rate", {"winners": 112}, False),  # 0.452 / 0.448
    ("max_drawdown_pct", {"depth": 0.06}, True), ("max_drawdown_pct", {"depth": 0.0601}, False),
    ("max_mean_slippage_bps", {"slip": 3.0}, True), ("max_mean_slippage_bps", {"slip": 3.01}, False),
    ("max_tracking_error_bps", {"te": 0.005}, True), ("max_tracking_error_bps", {"te": 0.0051}, False),
    ("max_incidents", {"incidents": 2}, True), ("max_incidents", {"incidents": 3}, False),
])
def test_each_criterion_just_passes_and_just_fails(criterion, change, passes):
    assert by_name(evaluate(RULES, summary(**change), comparison=COMPARISON))[criterion]["pass"] is passes


def test_psr_and_min_trl_criteria_at_their_edges():
    # PSR(0) = Φ(SR·√(n−1)/σ̂): with SR=0.01, normal moments, n − 1 = (1.644854·σ̂/0.01)² it is 0.95
    sd = math.sqrt(1 + 0.5 * 0.01 ** 2)
    n_edge = math.ceil((1.6448536269514722 * sd / 0.01) ** 2) + 1
    at = by_name(evaluate(RULES, summary(moments=(n_edge, 0.01, 0.0, 3.0)), comparison=COMPARISON))
    below = by_name(evaluate(RULES, summary(moments=(n_edge - 2, 0.01, 0.0, 3.0)), comparison=COMPARISON))
    assert at["min_psr"]["pass"] and not below["min_psr"]["pass"]
    assert at["min_track_record"]["pass"] and not below["min_track_record"]["pass"]


@pytest.mark.parametrize(("criterion", "comparison", "passes"), [
    ("min_reconciliation_correlation", {"curves": {"correlation": 0.8, "dtw_annualised": 0.1}}, True),
    ("min_reconciliation_correlation", {"curves": {"correlation": 0.79, "dtw_annualised": 0.1}}, False),
    ("max_reconciliation_dtw", {"curves": {"correlation": 0.9, "dtw_annualised": 0.2}}, True),
    ("max_reconciliation_dtw", {"curves": {"correlation": 0.9, "dtw_annualised": 0.21}}, False),
    ("max_slippage_vs_backtest_bps", {"execution": {"slippage_mean_bps": {"deviation": {"R": -0.5}}}}, True),
    ("max_slippage_vs_backtest_bps", {"execution": {"slippage_mean_bps": {"deviation": {"R": -0.51}}}}, False),
    ("max_reconciliation_dtw", None, False),  # no backtest to reconcile with: not measurable, fails
])
def test_reconciliation_criteria_come_from_the_comparison(criterion, comparison, passes):
    merged = copy.deepcopy(COMPARISON) | (comparison or {}) if comparison is not None else None
    assert by_name(evaluate(RULES, summary(), comparison=merged))[criterion]["pass"] is passes


def test_the_recommendation_rules():
    assert evaluate(RULES, summary(days=2.0, trades=50, winners=30), comparison=COMPARISON)["recommendation"] \
        == "extend"  # only the sample is short
    assert evaluate(RULES, summary(slip=4.0), comparison=COMPARISON)["recommendation"] == "hold"
    assert evaluate(RULES, summary(breaches=9), comparison=COMPARISON)["recommendation"] == "downgrade"
    assert evaluate(RULES, summary(days=1.0, depth=0.2), comparison=COMPARISON)["recommendation"] == "downgrade"


def test_evidence_sessions_add_their_days_trades_and_breaches():
    short = summary("s1", days=3.0, trades=120, winners=60, breaches=2)
    other = summary("s2", days=2.5, trades=100, winners=50, breaches=2)
    alone = by_name(evaluate(RULES, short, comparison=COMPARISON))
    pooled = evaluate(RULES, short, [other], comparison=COMPARISON)
    c = by_name(pooled)
    assert not alone["min_days"]["pass"] and c["min_days"]["value"] == pytest.approx(5.5) and c["min_days"]["pass"]
    assert c["min_trades"]["value"] == 220 and c["max_breaches"]["value"] == 4
    assert c["min_hit_rate"]["value"] == pytest.approx(110 / 220)
    assert [e["session_id"] for e in pooled["evidence"]] == ["s1", "s2"]


def test_the_evidence_hash_is_stable_and_follows_the_evidence():
    a = evaluate(RULES, summary(), comparison=COMPARISON)["evidence_hash"]
    assert a == evaluate(RULES, summary(), comparison=COMPARISON)["evidence_hash"]
    assert a != evaluate(RULES, summary(slip=1.6), comparison=COMPARISON)["evidence_hash"]
    assert a != evaluate(RULES, summary(), [summary("s2")], comparison=COMPARISON)["evidence_hash"]
    assert len(a) == 64 and a == evidence_hash([summary()], COMPARISON, RULES)


def test_a_figure_not_computable_yet_asks_for_more_sample_but_a_missing_backtest_does_not():
    early = summary(days=1.0, trades=20, winners=12, sharpe=None, moments=(12, 0.05, 0.0, 3.0))
    result = evaluate(RULES, early, comparison=COMPARISON)
    assert by_name(result)["min_sharpe"]["value"] is None and result["recommendation"] == "extend"
    assert evaluate(RULES, summary(), comparison=None)["recommendation"] == "hold"  # run a shadow backtest


def test_days_run_are_market_time_from_the_first_sample():
    s = summary(days=6.0)
    s["started"] = s["as_of"] + 400 * NS_PER_DAY  # a wall-clock start unrelated to market time
    s["first_data"] = s["as_of"] - int(5.5 * NS_PER_DAY)
    assert by_name(evaluate(RULES, s, comparison=COMPARISON))["min_days"]["value"] == pytest.approx(5.5)
