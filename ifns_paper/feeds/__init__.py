"""Market-data feed sources (plain Python, no Django).

* ``synthetic``: a seeded, deterministic, live-like multi-symbol market with
  regimes, an intraday volume curve and injectable feed glitches.
* ``binance``: parsing of Binance combined-stream frames into canonical
  records, and an asyncio WebSocket client with staleness detection and
  reconnection (imports ``websockets``; import it as ``ifns_paper.feeds.binance``).

Both emit the engine's canonical records (``ifns_paper.engine.marketdata``)
and never clean the data: validation (``QuoteBatch.problems()``) is downstream.
"""

from ifns_paper.feeds.synthetic import (
    DEFAULT_REGIMES,
    EXAMPLE_SYMBOLS,
    NO_GLITCHES,
    Glitch,
    GlitchKind,
    GlitchSpec,
    RegimeSpec,
    SymbolSpec,
    SyntheticMarket,
)

__all__ = [
    "DEFAULT_REGIMES",
    "EXAMPLE_SYMBOLS",
    "NO_GLITCHES",
    "Glitch",
    "GlitchKind",
    "GlitchSpec",
    "RegimeSpec",
    "SymbolSpec",
    "SyntheticMarket",
]
