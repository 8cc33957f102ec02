"""How many examples a property test draws: its usual number, times ``IFNS_FUZZ_FACTOR``
(1 by default; ``make fuzz`` sets 20 to search far wider than a normal run has time for)."""

from __future__ import annotations

import os


def examples(n: int) -> int:
    return n * max(1, int(os.environ.get("IFNS_FUZZ_FACTOR", "1")))
