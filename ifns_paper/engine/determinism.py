"""Seeded randomness that does not depend on processing order.

A draw is a pure function of (seed, order id, purpose, counter): the same
inputs give the same fills whether data arrives in one batch or in many,
in replay or in real time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

_SCALE = float(1 << 64)


def uniform(seed: int, key: str, purpose: str, n: int = 0) -> float:
    """A number in [0, 1) fixed by its arguments."""
    digest = hashlib.blake2b(f"{seed}|{key}|{purpose}|{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def fills_hash(fills: Iterable[dict]) -> str:
    """sha256 over canonical fill records (LEAN-style order-list hash).

    Floats are written with ``repr`` (shortest round-trip form), so equal
    hashes mean byte-identical fills.
    """
    h = hashlib.sha256()
    for fill in fills:
        h.update(json.dumps(fill, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()
