"""A user model (loaded by dotted path, like any user's code) that works for a while and then
raises: the fault-isolation tests give it to one session among healthy ones."""

from __future__ import annotations

import os

import numpy as np

_seen = 0  # quotes seen by this process


def momentum_then_raise(frame):
    """The sign of the last return, until ``IFNS_POISON_AFTER_QUOTES`` quotes (default 400) have
    gone through this process; then a ``RuntimeError`` on every call."""
    global _seen
    _seen += len(frame)
    limit = int(os.environ.get("IFNS_POISON_AFTER_QUOTES", "400"))
    if _seen > limit:
        raise RuntimeError(f"poisoned model: {_seen} quotes seen (limit {limit})")
    return np.where(frame.vol > 0, np.sign(frame.ret), 0.0)
