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
    """A hash chain over the fills in order (LEAN-style order-list hash), in constant memory.

    Each fill contributes ``repr`` of its field values in ``Fill.as_dict()``
    order: ``h = sha256(h + repr(values))``, starting from 32 zero bytes.
    ``repr`` of a float is its shortest round-trip form, so equal hashes mean
    byte-identical fills; the state is 32 bytes (picklable, unlike a running
    ``hashlib`` object), and the hash can be recomputed from ``fills.ndjson``.
    """

    def __init__(self) -> None:
        self._digest = bytes(32)

    def add(self, values: tuple) -> None:
        self._digest = hashlib.sha256(self._digest + repr(values).encode()).digest()

    def hexdigest(self) -> str:
        return self._digest.hex()


def fills_hash(fills: Iterable[dict]) -> str:
    """The hash of fill records as written to ``fills.ndjson``."""
    hasher = FillsHasher()
    for fill in fills:
        hasher.add(tuple(fill.values()))
    return hasher.hexdigest()
