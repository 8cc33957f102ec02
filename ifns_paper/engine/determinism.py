"""Seeded randomness that does not depend on processing order.

A draw is a pure function of (seed, order id, purpose, counter): the same
inputs give the same fills whether data arrives in one batch or in many,
in replay or in real time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SCALE = float(1 << 64)


def uniform(seed: int, key: str, purpose: str, n: int = 0) -> float:
    """A number in [0, 1) fixed by its arguments."""
    digest = hashlib.blake2b(f"{seed}|{key}|{purpose}|{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class FillsHasher:
    """sha256 over the fills in order (LEAN-style order-list hash), in constant memory.

    Each fill contributes ``repr`` of its field values in ``Fill.as_dict()``
    order plus a newline; ``repr`` of a float is its shortest round-trip form,
    so equal hashes mean byte-identical fills, and the hash can be recomputed
    from ``fills.ndjson``.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, values: tuple) -> None:
        self._h.update(repr(values).encode())
        self._h.update(b"\n")

    def hexdigest(self) -> str:
        return self._h.copy().hexdigest()


def fills_hash(fills: Iterable[dict]) -> str:
    """The hash of fill records as written to ``fills.ndjson``."""
    hasher = FillsHasher()
    for fill in fills:
        hasher.add(tuple(fill.values()))
    return hasher.hexdigest()
