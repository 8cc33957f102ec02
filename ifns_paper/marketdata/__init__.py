"""Market data outside the engine: importers of recorded files (plain Python, no Django).

See ``importers`` for the canonical file formats and every assumption made
about the shipped files in ``data/market/``.
"""

from ifns_paper.marketdata.importers import (
    BAR_COLUMNS,
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    ImportOptions,
    ImportResult,
    QuoteChunks,
    bars_to_l1,
    detect_kind,
    iter_quote_chunks,
    read_any,
    read_bars,
    read_quotes,
    read_trades,
)

__all__ = [
    "BAR_COLUMNS",
    "QUOTE_COLUMNS",
    "TRADE_COLUMNS",
    "ImportOptions",
    "ImportResult",
    "QuoteChunks",
    "bars_to_l1",
    "detect_kind",
    "iter_quote_chunks",
    "read_any",
    "read_bars",
    "read_quotes",
    "read_trades",
]
