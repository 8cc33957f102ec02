"""SEL evaluations (spec §9): a lane's promotion criteria applied to a session's evidence,
with a recommendation. Pure functions over summary objects (``metrics.summary``), the
lane's promotion rules (its ``promotion`` section in ``paper.yaml``) and, when there is
one, the session's comparison with its shadow backtest (``metrics.compare``).

**Evidence**: the evaluated session's summary plus those of the lane's sessions tagged
``promotion_evidence`` that run the same strategy version (sessions tagged ``ignore`` are
left out by the caller). Counts add up over the evidence — days run, closed round trips,
risk breaches, incidents — and the hit rate pools winners over trades; the return-based
figures (Sharpe, PSR, MinTRL, drawdown) and execution figures are the evaluated session's
own, on its conventions.

**Criteria** (each: value, threshold, unit, pass): ``min_days``, ``min_trades``,
``max_breaches`` and, when the lane sets them, ``min_sharpe`` (annualised), ``min_hit_rate``,
``max_drawdown_pct``, ``max_mean_slippage_bps``, ``max_tracking_error_bps``, ``min_psr``
(probability that the true Sharpe exceeds ``psr_benchmark_sharpe``), ``min_track_record``
(returns ≥ MinTRL at ``min_track_record_confidence``), ``max_incidents``,
``max_slippage_vs_backtest_bps`` (|paper − backtest mean slippage|),
``min_reconciliation_correlation`` and ``max_reconciliation_dtw`` (annualised). A criterion
that cannot be measured (no backtest, too few returns) fails.

**Recommendation**: ``promote`` when every criterion passes; ``downgrade`` when a risk limit
fails (breaches, drawdown, incidents); ``extend`` when only the sample is short (days,
trades, MinTRL, a figure that cannot be computed yet — a Sharpe ratio before 30 returns —
or a PSR short of its threshold while the Sharpe ratio beats the benchmark) — run longer; ``hold`` otherwise (a quality criterion fails on a sufficient sample,
or there is no backtest to reconcile with).

Days run are market time, from the summary's first sample (``first_data``) to its as-of
time (the session's start for summaries without it).

The evidence hash is the sha256 of the canonical JSON (sorted keys) of the evidence
summaries, the comparison and the rules: the same evidence always gives the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from ifns_paper.metrics.lane import NS_PER_DAY
from ifns_paper.metrics.significance import (
    Moments,
    min_track_record,
    per_period,
    probabilistic_sharpe,
)

SAMPLE = ("min_days", "min_trades", "min_track_record")
RISK = ("max_breaches", "max_drawdown_pct", "max_incidents")
RECONCILIATION = ("max_slippage_vs_backtest_bps", "min_reconciliation_correlation", "max_reconciliation_dtw")


def _criterion(name: str, value, threshold, *, at_least: bool, unit: str) -> dict:
    passed = value is not None and (value >= threshold if at_least else value <= threshold)
    return {"criterion": name, "value": value, "threshold": threshold, "unit": unit, "pass": bool(passed),
            "rule": ">=" if at_least else "<="}


def evidence_hash(evidence: Sequence[dict], comparison: dict | None, rules: dict) -> str:
    blob = json.dumps({"evidence": list(evidence), "comparison": comparison, "rules": rules}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def evaluate(rules: dict, summary: dict, evidence: Sequence[dict] = (), comparison: dict | None = None) -> dict:
    """The evaluation of ``summary`` (the session) with the other ``evidence`` summaries,
    against ``rules`` (``min_days``, ``min_trades``, ``max_breaches``, ``thresholds``)."""
    pool = [summary, *evidence]
    t = rules.get("thresholds") or {}
    periods_per_year = summary["conventions"]["periods_per_year"]

    def days(s: dict) -> float:  # market time run: from the first sample to the as-of time
        first = s.get("first_data") or s.get("started")
        return max(0.0, (s["as_of"] - first) / NS_PER_DAY) if first and s.get("as_of") else 0.0

    trades = sum(s["trades"]["trades"] for s in pool)
    winners = sum(s["trades"]["winners"] for s in pool)
    criteria = [
        _criterion("min_days", sum(days(s) for s in pool), rules["min_days"], at_least=True, unit="days"),
        _criterion("min_trades", trades, rules["min_trades"], at_least=True, unit="trades"),
        _criterion("max_breaches", sum(sum((s["risk"].get("breaches") or {}).values()) for s in pool),
                   rules["max_breaches"], at_least=False, unit="breaches"),
    ]
    moments = summary["returns"].get("moments")
    m = Moments(**moments) if moments else None
    bench = per_period(float(t.get("psr_benchmark_sharpe", 0.0)), periods_per_year)
    if t.get("min_sharpe") is not None:
        criteria.append(_criterion("min_sharpe", summary["returns"]["sharpe"], t["min_sharpe"], at_least=True,
                                   unit="annualised"))
    if t.get("min_hit_rate") is not None:
        criteria.append(_criterion("min_hit_rate", winners / trades if trades else None, t["min_hit_rate"],
                                   at_least=True, unit="fraction"))
    if t.get("max_drawdown_pct") is not None:
        depth = summary["returns"]["max_drawdown"]["depth"]
        criteria.append(_criterion("max_drawdown_pct", None if depth is None else depth * 100, t["max_drawdown_pct"],
                                   at_least=False, unit="%"))
    if t.get("max_mean_slippage_bps") is not None:
        criteria.append(_criterion("max_mean_slippage_bps", summary["execution"]["slippage"]["mean_bps"],
                                   t["max_mean_slippage_bps"], at_least=False, unit="bps"))
    if t.get("max_tracking_error_bps") is not None:
        te = summary["benchmark"].get("tracking_error")
        criteria.append(_criterion("max_tracking_error_bps", None if te is None else te * 1e4,
                                   t["max_tracking_error_bps"], at_least=False, unit="bps"))
    if t.get("min_psr") is not None:
        criteria.append(_criterion("min_psr", probabilistic_sharpe(m, bench) if m else None, t["min_psr"],
                                   at_least=True, unit="probability"))
    if t.get("min_track_record"):
        needed = min_track_record(m, bench, confidence=float(t.get("min_track_record_confidence", 0.95))) \
            if m else None
        c = _criterion("min_track_record", m.n if m else None, needed, at_least=True, unit="returns")
        c["pass"] = bool(m is not None and needed is not None and m.n >= needed)
        criteria.append(c)
    if t.get("max_incidents") is not None:
        criteria.append(_criterion("max_incidents", sum(s["incidents"]["count"] for s in pool), t["max_incidents"],
                                   at_least=False, unit="incidents"))
    if t.get("max_slippage_vs_backtest_bps") is not None:
        ex = (comparison or {}).get("execution") or {}
        devs = [abs(v) for v in ((ex.get("slippage_mean_bps") or {}).get("deviation") or {}).values() if v is not None]
        criteria.append(_criterion("max_slippage_vs_backtest_bps", max(devs) if devs else None,
                                   t["max_slippage_vs_backtest_bps"], at_least=False, unit="bps"))
    curves = (comparison or {}).get("curves") or {}
    if t.get("min_reconciliation_correlation") is not None:
        criteria.append(_criterion("min_reconciliation_correlation", curves.get("correlation"),
                                   t["min_reconciliation_correlation"], at_least=True, unit="correlation"))
    if t.get("max_reconciliation_dtw") is not None:
        criteria.append(_criterion("max_reconciliation_dtw", curves.get("dtw_annualised"),
                                   t["max_reconciliation_dtw"], at_least=False, unit="annualised"))

    failed = [c["criterion"] for c in criteria if not c["pass"]]
    # a return or execution figure that cannot be computed yet (too few returns, no fill) is a
    # short sample too; a reconciliation without a backtest is not (run a shadow backtest)
    # (PSR too: below its threshold with a Sharpe ratio above the benchmark, more returns lift it)
    short = [c["criterion"] for c in criteria if not c["pass"] and (
        c["criterion"] in SAMPLE or (c["value"] is None and c["criterion"] not in RECONCILIATION)
        or (c["criterion"] == "min_psr" and m is not None and m.sharpe > bench))]
    if not failed:
        recommendation = "promote"
    elif any(f in RISK for f in failed):
        recommendation = "downgrade"
    elif len(short) == len(failed):
        recommendation = "extend"
    else:
        recommendation = "hold"
    return {"recommendation": recommendation, "criteria": criteria, "failed": failed,
            "evidence": [{"session_id": s["session_id"], "as_of": s["as_of"], "final": s["final"]} for s in pool],
            "conventions": summary["conventions"], "comparison": None if comparison is None else {
                "backtest_id": comparison.get("backtest_id"), "correlation": curves.get("correlation"),
                "dtw_annualised": curves.get("dtw_annualised")},
            "evidence_hash": evidence_hash(pool, comparison, rules)}
