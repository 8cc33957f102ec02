"""Risk envelope usage: how close a session came to each limit, and how long it stayed there.

A quantity observed at times t_0 < t_1 < … holds its value until the next observation (a
step function); over [t_0, end] its **peak** utilisation is max |v| / limit and its
**time-weighted mean** utilisation is Σ |v_i| × (t_{i+1} − t_i) / (end − t_0) / limit, both
fractions of the limit (1.0 = at the limit). Limits are those of the lane's envelope in
the same units as the values (account currency, percent, orders per minute).
"""

from __future__ import annotations

import numpy as np


def utilisation(ts_ns: np.ndarray, values: np.ndarray, limit: float, *, end_ns: int | None = None) -> dict:
    """``peak`` and ``time_weighted_mean`` of |values| / ``limit`` (None without data or limit)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    v = np.abs(np.asarray(values, dtype=np.float64))
    if len(v) == 0 or not limit or limit <= 0:
        return {"peak": None, "time_weighted_mean": None, "limit": limit}
    end = int(ts[-1] if end_ns is None else max(end_ns, ts[-1]))
    durations = np.diff(np.append(ts, end)).astype(np.float64)
    span = float(end - ts[0])
    twm = float(np.dot(v, durations) / span) if span > 0 else float(v[-1])
    return {"peak": float(v.max() / limit), "time_weighted_mean": twm / limit, "limit": limit}


def order_rate_per_minute(send_ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At each send, how many orders were sent in the 60 s up to and including it (the DRA's
    order-rate window): (times ns, counts)."""
    ts = np.sort(np.asarray(send_ts_ns, dtype=np.int64))
    first = np.searchsorted(ts, ts - 60_000_000_000, side="right")
    return ts, (np.arange(len(ts)) - first + 1).astype(np.float64)
