"""Execution quality: slippage, implementation shortfall, fill and reject rates.

**Slippage** of a fill, in bps, against the mid when its order arrived at the venue,
signed so that a positive number is a cost: buy ``(price − arrival_mid) / arrival_mid ×
1e4``, sell the opposite. The broker reports it per fill (``slippage_bps``); statistics
weight each fill once (not by size).

**Implementation shortfall** of a parent decision (Perold 1988; Wagner's decomposition):
the DRA-approved intent, decided at ``decision_price`` (the mid the decision saw) for
``quantity`` (the requested quantity), and the child orders EI sent for it. With side
s = +1 buy / −1 sell, executed quantity X at average price P, ``arrival_price`` the mid
when the first child reached the venue, ``end_price`` the mid at the end of the horizon
(the last child finished):

* delay cost = s × X × (arrival − decision): the market moved before we got there;
* trading cost = s × X × (P − arrival): what executing cost against the arrival mid;
* opportunity cost = s × (quantity − X) × (end − decision): what the unfilled part missed;
* fees.

Total = the sum: the difference between the paper portfolio traded at the decision price
and what was achieved. Each part in the account currency and in bps of the decision
notional (quantity × decision price).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

HISTOGRAM_EDGES_BPS = (-20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


def slippage_stats(values_bps: Sequence[float]) -> dict:
    """Count, mean, p50, p90, p99 and worst (largest cost) in bps, and a histogram on
    ``HISTOGRAM_EDGES_BPS`` (bins: below the first edge, between edges, from the last on)."""
    v = np.asarray([x for x in values_bps if x == x], dtype=np.float64)  # NaN: no arrival mid
    if len(v) == 0:
        return {"count": 0, "mean_bps": None, "p50_bps": None, "p90_bps": None, "p99_bps": None,
                "worst_bps": None, "histogram": {"edges_bps": list(HISTOGRAM_EDGES_BPS), "counts": []}}
    edges = np.asarray(HISTOGRAM_EDGES_BPS)
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return {"count": int(len(v)), "mean_bps": float(v.mean()), "p50_bps": float(np.percentile(v, 50)),
            "p90_bps": float(np.percentile(v, 90)), "p99_bps": float(np.percentile(v, 99)),
            "worst_bps": float(v.max()),
            "histogram": {"edges_bps": list(HISTOGRAM_EDGES_BPS), "counts": [int(c) for c in counts]}}


def slippage_by(fills: Iterable[dict], key: str) -> dict[str, dict]:
    """``slippage_stats`` per value of ``key`` (``route_id``, ``symbol``, ``strategy_id``)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for f in fills:
        groups[str(f[key])].append(float(f["slippage_bps"]))
    return {k: slippage_stats(v) for k, v in sorted(groups.items())}


class ChildFill(NamedTuple):
    quantity: float
    price: float
    fee: float


def implementation_shortfall(*, side: int, quantity: float, decision_price: float, arrival_price: float | None,
                             end_price: float, fills: Sequence[ChildFill]) -> dict:
    """The Perold/Wagner decomposition of one parent decision (see the module docstring)."""
    executed = paid = fees = 0.0
    for q, price, fee in fills:
        executed += q
        paid += q * price
        fees += fee
    avg = paid / executed if executed > 0 else 0.0
    arrival = decision_price if arrival_price is None else arrival_price
    delay = side * executed * (arrival - decision_price)
    trading = side * executed * (avg - arrival) if executed > 0 else 0.0
    opportunity = side * (quantity - executed) * (end_price - decision_price)
    total = delay + trading + opportunity + fees
    notional = quantity * decision_price
    per_bp = 1e4 / notional if notional else None

    def bps(x: float) -> float | None:
        return x * per_bp if per_bp is not None else None

    return {"quantity": quantity, "executed": executed, "fill_ratio": executed / quantity if quantity else None,
            "decision_price": decision_price, "arrival_price": arrival, "average_price": avg if executed else None,
            "end_price": end_price,
            "delay": delay, "trading": trading, "opportunity": opportunity, "fees": fees, "total": total,
            "delay_bps": bps(delay), "trading_bps": bps(trading), "opportunity_bps": bps(opportunity),
            "fees_bps": bps(fees), "total_bps": bps(total)}


def order_outcomes(orders: Iterable[dict]) -> dict[str, dict]:
    """Per route: orders sent, fill rate (orders with any fill / sent), reject rate, rejects by
    reason, and time to first fill (median and p90, ms) from ``submitted_ns`` / ``first_fill_ns``.
    ``orders``: dicts with ``route_id``, ``status``, ``reason``, ``filled_quantity``,
    ``submitted_ns`` and ``first_fill_ns`` (None when unfilled)."""
    by_route: dict[str, list[dict]] = defaultdict(list)
    for o in orders:
        by_route[o["route_id"]].append(o)
    out = {}
    for route, rows in sorted(by_route.items()):
        n = len(rows)
        filled = [o for o in rows if o["filled_quantity"] > 0]
        rejected = [o for o in rows if o["status"] == "rejected"]
        reasons: dict[str, int] = defaultdict(int)
        for o in rejected:
            reasons[o["reason"] or "unknown"] += 1
        # at the microsecond, as event times are stored: a replay and the database agree
        waits = np.asarray([(o["first_fill_ns"] // 1000 - o["submitted_ns"] // 1000) / 1e3 for o in filled
                            if o.get("first_fill_ns") is not None], dtype=np.float64)
        out[route] = {"orders": n, "fill_rate": len(filled) / n, "reject_rate": len(rejected) / n,
                      "rejects_by_reason": dict(sorted(reasons.items())),
                      "time_to_fill_ms_p50": float(np.percentile(waits, 50)) if len(waits) else None,
                      "time_to_fill_ms_p90": float(np.percentile(waits, 90)) if len(waits) else None}
    return out
