"""Lane aggregates and promotion progress, by hand on small summary objects."""

from __future__ import annotations

import pytest

from ifns_paper.metrics.lane import NS_PER_DAY, lane_aggregate, promotion_progress

RULES = {"promotes_to": "paper_gatecheck", "min_days": 5, "min_trades": 200, "max_breaches": 5,
         "thresholds": {"min_sharpe": 0.5, "min_hit_rate": 0.45, "max_drawdown_pct": 6.0,
                        "max_mean_slippage_bps": 3.0, "max_tracking_error_bps": 50}}


def summary(sid="s1", *, days=2.0, trades=100, winners=50, sharpe=1.0, depth=0.02, slip=1.0, fills=10, te=0.004,
            breaches=None, pnl=100.0, incidents=None):
    return {"session_id": sid, "as_of": int(days * NS_PER_DAY), "started": 0, "final": False,
            "pnl": {"total": pnl, "realized": pnl, "unrealized": 0.0, "fees": 1.0, "return": pnl / 1e6,
                    "starting_capital": 1e6},
            "returns": {"sharpe": sharpe, "max_drawdown": {"depth": depth}},
            "trades": {"trades": trades, "winners": winners, "hit_rate": winners / trades if trades else None},
            "execution": {"slippage": {"mean_bps": slip, "count": fills}},
            "benchmark": {"tracking_error": te},
            "risk": {"breaches": breaches or {}},
            "incidents": {"count": sum((incidents or {}).values()), "by_kind": incidents or {}}}


def test_progress_against_each_promotion_criterion():
    p = promotion_progress(RULES, summary(days=2.0, trades=100, breaches={"order_rate": 2}))
    by = {c["criterion"]: c for c in p["criteria"]}
    assert by["min_days"]["progress"] == pytest.approx(2 / 5) and not by["min_days"]["met"]
    assert by["min_trades"]["progress"] == pytest.approx(100 / 200) and not by["min_trades"]["met"]
    assert by["max_breaches"]["met"] and by["max_breaches"]["actual"] == 2
    assert by["min_sharpe"]["met"] and by["min_hit_rate"]["met"]  # 1.0 >= 0.5; 0.5 >= 0.45
    assert by["max_drawdown_pct"]["actual"] == pytest.approx(2.0) and by["max_drawdown_pct"]["met"]
    assert by["max_tracking_error_bps"]["actual"] == pytest.approx(40.0) and by["max_tracking_error_bps"]["met"]
    assert (p["ready"], p["met"], p["of"]) == (False, 6, 8)


def test_ready_when_every_criterion_holds_and_a_broken_maximum_shows_empty():
    assert promotion_progress(RULES, summary(days=6, trades=250, winners=150))["ready"] is True
    p = promotion_progress(RULES, summary(days=6, trades=250, winners=150, depth=0.07, breaches={"max_drawdown": 6}))
    by = {c["criterion"]: c for c in p["criteria"]}
    assert not by["max_drawdown_pct"]["met"] and by["max_drawdown_pct"]["progress"] == 0.0
    assert not by["max_breaches"]["met"] and not p["ready"]
    assert promotion_progress(RULES, None) == {"ready": False, "criteria": [], "why": "no summary yet"}


def test_undefined_metrics_never_meet_a_threshold():
    p = promotion_progress(RULES, summary(days=6, trades=250, winners=150, sharpe=None))
    assert not {c["criterion"]: c for c in p["criteria"]}["min_sharpe"]["met"] and not p["ready"]


def test_lane_totals_by_hand():
    a = summary("a", trades=10, winners=6, slip=2.0, fills=30, pnl=100.0, breaches={"order_rate": 1},
                incidents={"simulated_failure": 2})
    b = summary("b", trades=30, winners=9, slip=4.0, fills=10, pnl=-40.0, breaches={"order_rate": 2, "max_drawdown": 1})
    agg = lane_aggregate([a, b])
    assert agg["sessions"] == 2 and agg["pnl"]["total"] == 60.0 and agg["pnl"]["fees"] == 2.0
    assert agg["trades"] == 40 and agg["hit_rate"] == pytest.approx(15 / 40)
    assert agg["mean_slippage_bps"] == pytest.approx((2.0 * 30 + 4.0 * 10) / 40)  # fill-weighted
    assert agg["breaches"] == {"max_drawdown": 1, "order_rate": 3}
    assert agg["incidents"] == {"simulated_failure": 2}
    assert [s["session_id"] for s in agg["by_session"]] == ["a", "b"]
    assert lane_aggregate([])["hit_rate"] is None
