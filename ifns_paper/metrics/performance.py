"""P&L metrics of an equity curve (see ``conventions`` for the grid, annualisation and the
risk-free rate). Inputs are plain numpy arrays; outputs are floats, with ``None`` where a
metric is undefined (fewer than two returns, zero dispersion), so they are JSON-safe.

Units: equity and P&L in the account currency; returns, volatility and drawdown depth as
fractions (0.05 = 5 %); durations in seconds; Sharpe and Sortino dimensionless, annualised.
"""

from __future__ import annotations

import math

import numpy as np

from ifns_paper.metrics.conventions import Conventions


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def sample_on_grid(ts_ns: np.ndarray, values: np.ndarray, grid_s: float, *, start_ns: int | None = None,
                   end_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``values`` observed at ``ts_ns`` (non-decreasing) sampled on an epoch-aligned grid of
    ``grid_s`` seconds: at each grid point, the last value at or before it. The grid runs
    from the first point at or after ``start_ns`` (default: the first observation) to the
    last point at or before ``end_ns`` (default: the last observation). Returns
    (grid times ns, sampled values); empty when no grid point is covered."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if len(ts_ns) == 0:
        return np.empty(0, np.int64), np.empty(0)
    step = int(round(grid_s * 1e9))
    lo = int(ts_ns[0] if start_ns is None else max(start_ns, ts_ns[0]))
    hi = int(ts_ns[-1] if end_ns is None else end_ns)
    first = -(-lo // step) * step
    if first > hi:
        return np.empty(0, np.int64), np.empty(0)
    grid = np.arange(first, hi + 1, step, dtype=np.int64)
    idx = np.searchsorted(ts_ns, grid, side="right") - 1
    return grid, values[idx]


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """r_t = e_t / e_{t-1} − 1 for consecutive samples."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) < 2:
        return np.empty(0)
    return equity[1:] / equity[:-1] - 1.0


def annual_volatility(returns: np.ndarray, conv: Conventions) -> float | None:
    """std(returns, ddof=1) × sqrt(periods_per_year); None with fewer than two returns."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return None
    return _finite(float(np.std(r, ddof=1)) * math.sqrt(conv.periods_per_year))


def sharpe(returns: np.ndarray, conv: Conventions) -> float | None:
    """mean(r − rf) / std(r − rf, ddof=1) × sqrt(periods_per_year), rf per period; None when
    there are fewer than two returns or they do not vary."""
    r = np.asarray(returns, dtype=np.float64) - conv.risk_free_per_period
    if len(r) < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None
    return _finite(float(np.mean(r)) / sd * math.sqrt(conv.periods_per_year))


def sortino(returns: np.ndarray, conv: Conventions) -> float | None:
    """mean(r − rf) / sqrt(mean(min(r − rf, 0)²)) × sqrt(periods_per_year) (the downside
    deviation over all periods, target 0 excess); None when nothing was below target."""
    r = np.asarray(returns, dtype=np.float64) - conv.risk_free_per_period
    if len(r) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return _finite(float(np.mean(r)) / downside * math.sqrt(conv.periods_per_year))


def max_drawdown(ts_ns: np.ndarray, equity: np.ndarray) -> dict:
    """The deepest fall of equity from a running peak: ``depth`` (fraction of the peak, ≥ 0),
    ``amount`` (account currency), ``peak_ts`` / ``trough_ts`` (epoch ns), and ``duration_s``
    — from that peak until equity is back at it, or until the last sample if it never is
    (``recovered`` says which). Zeros on a curve that never falls."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    empty = {"depth": 0.0, "amount": 0.0, "peak_ts": None, "trough_ts": None, "duration_s": 0.0,
             "recovered": True}
    if len(e) == 0:
        return empty
    peaks = np.maximum.accumulate(e)
    dd = (peaks - e) / peaks
    trough = int(np.argmax(dd))
    if dd[trough] <= 0:
        return empty
    peak = int(np.flatnonzero(e[:trough + 1] == peaks[trough])[0])
    after = np.flatnonzero(e[trough:] >= peaks[trough])
    recovered = len(after) > 0
    end = trough + int(after[0]) if recovered else len(e) - 1
    return {"depth": float(dd[trough]), "amount": float(peaks[trough] - e[trough]),
            "peak_ts": int(ts_ns[peak]), "trough_ts": int(ts_ns[trough]),
            "duration_s": float(ts_ns[end] - ts_ns[peak]) / 1e9, "recovered": recovered}


def turnover(traded_notional: float, mean_equity: float) -> float | None:
    """Traded notional (both sides, account currency) / mean equity: how many times the
    capital was traded over the period. None without equity."""
    return None if mean_equity <= 0 else float(traded_notional / mean_equity)


def profit_factor(trade_pnls: np.ndarray) -> float | None:
    """Gross profit / gross loss of closed trades (net of fees); None without a losing trade."""
    p = np.asarray(trade_pnls, dtype=np.float64)
    loss = -float(p[p < 0].sum())
    if loss == 0.0:
        return None
    return float(p[p > 0].sum()) / loss


def pnl_summary(*, starting_capital: float, equity: float, realized: float, unrealized: float, fees: float) -> dict:
    """Realized and unrealized (before fees), fees, total (= equity − starting capital) and the
    return on the starting capital (fraction)."""
    total = equity - starting_capital
    return {"realized": realized, "unrealized": unrealized, "fees": fees, "total": total,
            "return": total / starting_capital if starting_capital else None,
            "starting_capital": starting_capital, "equity": equity}
