"""Performance against a benchmark's returns on the same grid (see ``conventions``).

Active returns a_t = r_t − b_t. Tracking error = std(a, ddof=1) × sqrt(periods_per_year)
(a fraction, annualised); information ratio = mean(a) × periods_per_year / tracking error.
A ``buy_and_hold:SYMBOL`` benchmark holds the session's starting capital in SYMBOL from the
first grid point: its returns are the mid's simple returns.
"""

from __future__ import annotations

import math

import numpy as np

from ifns_paper.metrics.conventions import Conventions


def tracking(returns: np.ndarray, benchmark_returns: np.ndarray, conv: Conventions) -> dict:
    """``tracking_error`` and ``information_ratio`` (None with fewer than two periods or no
    dispersion of the active returns)."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark_returns, dtype=np.float64)
    if len(r) != len(b):
        raise ValueError(f"returns and benchmark returns differ in length: {len(r)} vs {len(b)}")
    if len(r) < 2:
        return {"tracking_error": None, "information_ratio": None, "periods": int(len(r))}
    a = r - b
    te = float(np.std(a, ddof=1)) * math.sqrt(conv.periods_per_year)
    ir = float(np.mean(a)) * conv.periods_per_year / te if te > 0 else None
    return {"tracking_error": te, "information_ratio": ir, "periods": int(len(r))}
