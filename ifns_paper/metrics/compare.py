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
    Flags name each score beyond its threshold (``correlation_below``, ``dtw_above``)."""
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
    if out["correlation"] is None or out["correlation"] < min_correlation:
        out["flags"].append("correlation_below")
    if out["dtw_annualised"] > max_dtw:
        out["flags"].append("dtw_above")
    return out
