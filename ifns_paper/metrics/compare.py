"""Triangulation: how far a paper session's curve is from a backtest's (or a live run's).

Both equity curves are sampled on one grid (``performance.sample_on_grid``: the last value
at or before each point, over the span both cover) and compared through their simple
returns on that grid:

* **returns correlation**: Pearson's r of the two return series (None when either is flat);
* **tracking error**: ``std(a − b, ddof=1) × √periods_per_year`` of the return difference;
* **DTW distance** (dynamic time warping, squared-difference cost):
  ``D = min over warping paths P of Σ_{(i,j)∈P} (a_i − b_j)²``, paths from (0, 0) to
  (n−1, m−1) with steps (1,0), (0,1), (1,1), within a Sakoe–Chiba band ``|i − j| ≤ window``
  (None: no band). ``dtw_distance`` returns √D, the Euclidean DTW of the literature
  (``dtaidistance.dtw.distance``);
* **annualised DTW**: ``√(D / n) × √periods_per_year`` — the root-mean-square return
  difference along the best alignment, annualised like a volatility: the yearly
  difference in the magnitude of returns that remains after allowing small time shifts.
  Without warping and with a zero-mean difference it equals the tracking error. The default
  thresholds after QuantConnect's reconciliation: correlation ≥ 0.8 "good", annualised
  DTW < 0.2 "decent";
* **equity deviation**: paper − other equity at each grid point (account currency), and
  its largest absolute value.

The DTW runs row by row with numpy: within a row, ``x_j = min(a_j, x_{j−1} + c_j)`` (a_j
the best of the cells above and diagonal plus the cell's cost c_j) unrolls to
``x_j = S_j + min_{k≤j}(a_k − S_k)`` with S the running sum of c — a cumulative minimum,
so each row is a handful of vector operations over the band.

Plain numpy, no Django.
"""

from __future__ import annotations

import math

import numpy as np

from ifns_paper.metrics.conventions import Conventions
from ifns_paper.metrics.performance import sample_on_grid, simple_returns

GOOD_CORRELATION = 0.8
DECENT_DTW = 0.2
GAP_LOOKBACK_NS = 60_000_000_000  # a data gap this recent is the likely cause of a divergence


def dtw_squared(a: np.ndarray, b: np.ndarray, window: int | None = None) -> float:
    """``D`` of the module docstring: the least sum of squared differences over the warping
    paths in the band (``window`` cells either side of the diagonal, widened to |n − m| so a
    path exists); inf when either series is empty."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return math.inf
    w = max(n, m) if window is None else max(int(window), abs(n - m))
    # Two rows of the cumulative cost, column j+1 for b[j] (column 0: the border, 0 only
    # before the first row); only the band of each row is written, the rest stays inf.
    prev, cur = np.full(m + 1, math.inf), np.full(m + 1, math.inf)
    prev[0] = 0.0
    band_of_cur = band_of_prev = (0, 0)  # the columns each row array holds
    for i in range(n):
        lo, hi = max(0, i - w), min(m, i + w + 1)
        cost = (a[i] - b[lo:hi]) ** 2
        above_diag = np.minimum(prev[lo + 1:hi + 1], prev[lo:hi]) + cost
        running = np.cumsum(cost)
        cur[band_of_cur[0] + 1:band_of_cur[1] + 1] = math.inf
        cur[lo + 1:hi + 1] = running + np.minimum.accumulate(above_diag - running)
        cur[0] = math.inf
        prev, cur = cur, prev
        band_of_cur, band_of_prev = band_of_prev, (lo, hi)
    return float(prev[m])


def dtw_distance(a: np.ndarray, b: np.ndarray, window: int | None = None) -> float:
    """√D: the Euclidean DTW distance."""
    return math.sqrt(dtw_squared(a, b, window))


def annualised_dtw(a: np.ndarray, b: np.ndarray, conv: Conventions, window: int | None = None) -> float | None:
    """``√(D / n) × √periods_per_year`` for two return series on the same grid (n = the
    longer one's length); None when either is empty."""
    n = max(len(a), len(b))
    if len(a) == 0 or len(b) == 0:
        return None
    return math.sqrt(dtw_squared(a, b, window) / n * conv.periods_per_year)


def returns_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson's r; None with fewer than two returns or when either series does not move."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"returns differ in length: {len(a)} vs {len(b)}")
    if len(a) < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / denominator if denominator > 0 else None


def tracking_error(a: np.ndarray, b: np.ndarray, conv: Conventions) -> float | None:
    """``std(a − b, ddof=1) × √periods_per_year``; None with fewer than two returns."""
    if len(a) != len(b):
        raise ValueError(f"returns differ in length: {len(a)} vs {len(b)}")
    if len(a) < 2:
        return None
    return float(np.std(np.asarray(a) - np.asarray(b), ddof=1)) * math.sqrt(conv.periods_per_year)


def compare_curves(paper_ts: np.ndarray, paper_equity: np.ndarray, other_ts: np.ndarray,
                   other_equity: np.ndarray, conv: Conventions, *, window: int | None = 60,
                   min_correlation: float = GOOD_CORRELATION, max_dtw: float = DECENT_DTW) -> dict:
    """The two curves on ``conv``'s grid over the span both cover, their scores and flags.

    ``window``: the DTW band in grid periods (60 one-minute periods = an hour of shift).
    Flags name each score beyond its threshold (``correlation_below``, ``dtw_above``), and
    ``correlation_undefined`` (fewer than two returns, or a flat curve) or ``no_overlap``."""
    paper_ts = np.asarray(paper_ts, dtype=np.int64)
    other_ts = np.asarray(other_ts, dtype=np.int64)
    out = {"grid_s": conv.grid_s, "periods": 0, "from_ns": None, "to_ns": None, "correlation": None,
           "tracking_error": None, "dtw": None, "dtw_annualised": None, "dtw_window": window,
           "equity_deviation": {"last": None, "max_abs": None}, "thresholds":
               {"min_correlation": min_correlation, "max_dtw_annualised": max_dtw}, "flags": []}
    if len(paper_ts) == 0 or len(other_ts) == 0:
        out["flags"].append("no_overlap")
        return out
    start, end = max(int(paper_ts[0]), int(other_ts[0])), min(int(paper_ts[-1]), int(other_ts[-1]))
    step = int(conv.grid_s * 1e9)
    if end - start < step:
        out["flags"].append("no_overlap")
        return out
    grid_p, eq_p = sample_on_grid(paper_ts, np.asarray(paper_equity, dtype=np.float64), conv.grid_s)
    grid_o, eq_o = sample_on_grid(other_ts, np.asarray(other_equity, dtype=np.float64), conv.grid_s)
    common = np.intersect1d(grid_p[(grid_p >= start) & (grid_p <= end)], grid_o)
    if len(common) < 2:
        out["flags"].append("no_overlap")
        return out
    p = eq_p[np.searchsorted(grid_p, common)]
    o = eq_o[np.searchsorted(grid_o, common)]
    rp, ro = simple_returns(p), simple_returns(o)
    deviation = p - o
    d2 = dtw_squared(rp, ro, window)
    out |= {"periods": int(len(rp)), "from_ns": int(common[0]), "to_ns": int(common[-1]),
            "correlation": returns_correlation(rp, ro), "tracking_error": tracking_error(rp, ro, conv),
            "dtw": math.sqrt(d2), "dtw_annualised": math.sqrt(d2 / len(rp) * conv.periods_per_year),
            "equity_deviation": {"last": float(deviation[-1]), "max_abs": float(np.max(np.abs(deviation)))}}
    if out["correlation"] is None:  # fewer than two returns, or a curve that does not move
        out["flags"].append("correlation_undefined")
    elif out["correlation"] < min_correlation:
        out["flags"].append("correlation_below")
    if out["dtw_annualised"] > max_dtw:
        out["flags"].append("dtw_above")
    return out


def _same_decision(a: dict, b: dict) -> bool:
    return (a.get("symbol"), a.get("side"), a.get("verdict")) == (b.get("symbol"), b.get("side"), b.get("verdict")) \
        and math.isclose(float(a.get("approved_quantity") or 0.0), float(b.get("approved_quantity") or 0.0),
                         rel_tol=1e-9, abs_tol=1e-12)


def decision_agreement(paper: list[dict], other: list[dict], *, paper_fills: list[dict] = (),
                       other_fills: list[dict] = (), gaps: list[dict] = (), latency: str | None = None) -> dict:
    """How far two runs on the same data decided alike. ``paper``/``other``: DRA decisions
    (``ts`` ns, ``symbol``, ``side``, ``verdict``, ``approved_quantity``) in time order.

    Two decisions agree when they are at the same time (to the microsecond, the resolution
    of stored event times) for the same symbol with the same
    side, verdict and approved quantity. ``share`` = agreeing / the larger count (1.0 for
    two empty runs). The **first divergence** is the earliest decision either side has
    without an agreeing twin, with both sides' records at that time and a likely cause:
    ``data gap`` (a ``data_gap``/``bad_quote`` incident of that symbol in ``gaps`` spans a
    time within ``GAP_LOOKBACK_NS`` before it, or it), ``fill`` (the fills before it already differ: a position or price the
    decision sized from; ``latency`` when the other run had zero latency), or ``unknown``
    (e.g. a configuration difference)."""
    def key(d: dict) -> tuple:  # at the microsecond, as event times are stored
        return int(d["ts"]) // 1000 * 1000, str(d.get("symbol"))

    by_key_other: dict[tuple, list[dict]] = {}
    for d in other:
        by_key_other.setdefault(key(d), []).append(d)
    by_key_paper: dict[tuple, list[dict]] = {}
    for d in paper:
        by_key_paper.setdefault(key(d), []).append(d)
    agree = 0
    lonely: list[tuple[int, str, dict | None, dict | None]] = []
    for k in sorted(set(by_key_paper) | set(by_key_other)):
        ps, os_ = by_key_paper.get(k, []), list(by_key_other.get(k, []))
        for p in ps:
            twin = next((o for o in os_ if _same_decision(p, o)), None)
            if twin is not None:
                os_.remove(twin)
                agree += 1
            else:
                lonely.append((k[0], k[1], p, os_[0] if os_ else None))
        lonely += [(k[0], k[1], None, o) for o in os_ if not any(_same_decision(o, p) for p in ps)]
    total = max(len(paper), len(other))
    out = {"paper": len(paper), "other": len(other), "agreeing": agree, "share": agree / total if total else 1.0,
           "first_divergence": None}
    if not lonely:
        return out
    ts, symbol, p, o = min(lonely, key=lambda x: x[0])

    def fills_before(fills):
        return sorted((int(f["ts"]) // 1000 * 1000, f["symbol"], f["side"], round(float(f["quantity"]), 9),
                       round(float(f["price"]), 12)) for f in fills if int(f["ts"]) // 1000 * 1000 < ts)

    def near(g: dict) -> bool:  # the gap overlaps [ts − lookback, ts]
        end = int(g.get("to_ts", g.get("ts", 0)))
        return int(g.get("from_ts", end)) <= ts and end >= ts - GAP_LOOKBACK_NS

    if any(g.get("symbol") == symbol and near(g) for g in gaps):
        cause = "data gap"
    elif fills_before(paper_fills) != fills_before(other_fills):
        cause = "latency" if latency == "zero" else "fill"
    else:
        cause = "unknown"
    out["first_divergence"] = {"ts": ts, "symbol": symbol, "paper": p, "other": o, "likely_cause": cause}
    return out
