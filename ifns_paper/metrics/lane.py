"""Lane-level evidence: sessions' summaries aggregated over a lane, and each session's progress
against its lane's promotion criteria (the promotion funnel). Pure functions over summary
objects (``metrics.summary``) and plain criteria dicts.

Promotion criteria (a lane's ``promotion`` section in ``paper.yaml``): ``min_days`` (days run,
from start to the summary's as-of time), ``min_trades`` (closed round trips), ``max_breaches``
(risk breaches, all kinds), and ``thresholds``: ``min_sharpe``, ``min_hit_rate`` (a fraction),
``max_drawdown_pct`` (percent), ``max_mean_slippage_bps`` and ``max_tracking_error_bps`` (bps
of annualised tracking error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

NS_PER_DAY = 86_400 * 1_000_000_000


def _progress(name: str, required, actual, *, at_least: bool, unit: str) -> dict:
    """One criterion: ``met`` and ``progress`` (0..1, for a bar: how far towards a minimum, or
    1 while a maximum holds and 0 once it is broken)."""
    if actual is None:
        return {"criterion": name, "required": required, "actual": None, "unit": unit, "met": False, "progress": 0.0}
    if at_least:
        met = actual >= required
        progress = 1.0 if met or required <= 0 else max(0.0, actual / required)
    else:
        met = actual <= required
        progress = 1.0 if met else 0.0
    return {"criterion": name, "required": required, "actual": actual, "unit": unit, "met": met,
            "progress": progress}


def promotion_progress(promotion: dict, summary: dict | None) -> dict:
    """Each criterion of ``promotion`` against ``summary``; ``ready`` when all are met."""
    if summary is None:
        return {"ready": False, "criteria": [], "why": "no summary yet"}
    started, as_of = summary.get("first_data") or summary.get("started"), summary["as_of"]
    days = (as_of - started) / NS_PER_DAY if started is not None and as_of is not None else None
    breaches = sum((summary["risk"].get("breaches") or {}).values())
    t = promotion.get("thresholds") or {}
    te = summary["benchmark"].get("tracking_error")
    criteria = [
        _progress("min_days", promotion["min_days"], days, at_least=True, unit="days"),
        _progress("min_trades", promotion["min_trades"], summary["trades"]["trades"], at_least=True, unit="trades"),
        _progress("max_breaches", promotion["max_breaches"], breaches, at_least=False, unit="breaches"),
    ]
    if t.get("min_sharpe") is not None:
        criteria.append(_progress("min_sharpe", t["min_sharpe"], summary["returns"]["sharpe"], at_least=True,
                                  unit="annualised"))
    if t.get("min_hit_rate") is not None:
        criteria.append(_progress("min_hit_rate", t["min_hit_rate"], summary["trades"]["hit_rate"], at_least=True,
                                  unit="fraction"))
    if t.get("max_drawdown_pct") is not None:
        depth = summary["returns"]["max_drawdown"]["depth"]
        criteria.append(_progress("max_drawdown_pct", t["max_drawdown_pct"], None if depth is None else depth * 100,
                                  at_least=False, unit="%"))
    if t.get("max_mean_slippage_bps") is not None:
        criteria.append(_progress("max_mean_slippage_bps", t["max_mean_slippage_bps"],
                                  summary["execution"]["slippage"]["mean_bps"], at_least=False, unit="bps"))
    if t.get("max_tracking_error_bps") is not None:
        criteria.append(_progress("max_tracking_error_bps", t["max_tracking_error_bps"],
                                  None if te is None else te * 1e4, at_least=False, unit="bps"))
    return {"ready": all(c["met"] for c in criteria), "criteria": criteria,
            "met": sum(c["met"] for c in criteria), "of": len(criteria)}


def lane_aggregate(summaries: Sequence[dict]) -> dict:
    """The lane's totals over its sessions' summaries (one per session, the newest in the
    window): P&L summed (account currency), fills and trades summed, hit rate over all trades,
    fill-weighted mean slippage, breaches and incidents by kind summed; and the sessions' key
    figures side by side."""
    trades = sum(s["trades"]["trades"] for s in summaries)
    winners = sum(s["trades"]["winners"] for s in summaries)
    fills = sum(s["execution"]["slippage"]["count"] for s in summaries)
    slip = sum((s["execution"]["slippage"]["mean_bps"] or 0.0) * s["execution"]["slippage"]["count"]
               for s in summaries)
    breaches: Counter[str] = Counter()
    incidents: Counter[str] = Counter()
    for s in summaries:
        breaches.update(s["risk"].get("breaches") or {})
        incidents.update(s["incidents"].get("by_kind") or {})
    return {
        "sessions": len(summaries),
        "pnl": {k: sum(s["pnl"][k] for s in summaries) for k in ("total", "realized", "unrealized", "fees")},
        "starting_capital": sum(s["pnl"]["starting_capital"] for s in summaries),
        "trades": trades, "winners": winners, "hit_rate": winners / trades if trades else None,
        "fills": fills, "mean_slippage_bps": slip / fills if fills else None,
        "breaches": dict(sorted(breaches.items())), "incidents": dict(sorted(incidents.items())),
        "by_session": [{"session_id": s["session_id"], "as_of": s["as_of"], "final": s["final"],
                        "pnl": s["pnl"]["total"], "return": s["pnl"]["return"], "sharpe": s["returns"]["sharpe"],
                        "max_drawdown": s["returns"]["max_drawdown"]["depth"], "trades": s["trades"]["trades"],
                        "hit_rate": s["trades"]["hit_rate"],
                        "mean_slippage_bps": s["execution"]["slippage"]["mean_bps"],
                        "incidents": s["incidents"]["count"]} for s in summaries],
    }
