"""Canonical market data (Stage 02) inside the engine.

Time is ``int64`` nanoseconds since the Unix epoch, UTC. Prices and sizes are
``float64``. Single records (``Quote``, ``Trade``, ``Bar``) are for APIs and
tests; the engine consumes *batches*: one symbol, columns as numpy arrays,
time non-decreasing — the shape a feed step or a file chunk naturally has,
and what lets the broker touch only the rows that matter.

Validation lives here too, so every path into the engine (file importers,
live feeds, tests) refuses the same bad data with the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000


class Aggressor(StrEnum):
    BUY = "buy"  # the taker bought (lifted the ask)
    SELL = "sell"  # the taker sold (hit the bid)
    UNKNOWN = "unknown"


AGGRESSOR_CODES = {Aggressor.BUY: 1, Aggressor.SELL: -1, Aggressor.UNKNOWN: 0}


@dataclass(frozen=True, slots=True)
class Quote:
    ts: int
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@dataclass(frozen=True, slots=True)
class Trade:
    ts: int
    symbol: str
    price: float
    size: float
    aggressor: Aggressor = Aggressor.UNKNOWN


@dataclass(frozen=True, slots=True)
class Bar:
    ts: int  # bar close time
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class MarketDataError(ValueError):
    """Bad market data: names the source, the line (1-based in the file, the
    header being line 1; None for a whole-file problem) and why."""

    def __init__(self, source: str, row: int | None, reason: str) -> None:
        where = f"{source}:line {row}" if row is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.row = row
        self.reason = reason


def _f64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def _i64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


class _Reasons:
    """The first reason each row is bad for ("" while it is fine)."""

    def __init__(self, n: int) -> None:
        self.reasons = np.full(n, "", dtype=object)

    def mark(self, mask: np.ndarray, reason: str) -> None:
        self.reasons[mask & (self.reasons == "")] = reason

    def time_order(self, ts: np.ndarray, *, strict: bool = False) -> None:
        if len(ts) > 1:
            back = np.zeros(len(ts), dtype=bool)
            back[1:] = ts[1:] <= ts[:-1] if strict else ts[1:] < ts[:-1]
            self.mark(back, "time does not increase" if strict else "time goes backwards")

    def result(self) -> tuple[np.ndarray, list[str]]:
        bad = self.reasons != ""
        return bad, [str(r) for r in self.reasons[bad]]


@dataclass(frozen=True, slots=True)
class QuoteBatch:
    """Top-of-book quotes of one symbol, time non-decreasing."""

    symbol: str
    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray

    @classmethod
    def from_arrays(cls, symbol, ts, bid, ask, bid_size, ask_size) -> QuoteBatch:
        return cls(symbol, _i64(ts), _f64(bid), _f64(ask), _f64(bid_size), _f64(ask_size))

    @classmethod
    def from_quotes(cls, quotes: list[Quote]) -> QuoteBatch:
        if not quotes:
            raise ValueError("a batch needs at least one quote")
        symbol = quotes[0].symbol
        return cls.from_arrays(
            symbol,
            [q.ts for q in quotes],
            [q.bid for q in quotes],
            [q.ask for q in quotes],
            [q.bid_size for q in quotes],
            [q.ask_size for q in quotes],
        )

    def __len__(self) -> int:
        return len(self.ts)

    def quote(self, i: int) -> Quote:
        return Quote(int(self.ts[i]), self.symbol, float(self.bid[i]), float(self.ask[i]),
                     float(self.bid_size[i]), float(self.ask_size[i]))

    def slice(self, start: int, stop: int) -> QuoteBatch:
        return QuoteBatch(self.symbol, self.ts[start:stop], self.bid[start:stop], self.ask[start:stop],
                          self.bid_size[start:stop], self.ask_size[start:stop])

    def problems(self) -> tuple[np.ndarray, list[str]]:
        """Row mask of bad rows and the reason per bad row (first reason wins)."""
        r = _Reasons(len(self))
        fields = (self.bid, self.ask, self.bid_size, self.ask_size)
        r.mark(np.logical_or.reduce([~np.isfinite(a) for a in fields]), "NaN or infinite value")
        r.mark((self.bid <= 0) | (self.ask <= 0), "zero or negative price")
        # A zero displayed size is legal (an empty side); the broker treats it as no liquidity.
        r.mark((self.bid_size < 0) | (self.ask_size < 0), "negative size")
        r.mark(self.bid > self.ask, "crossed quote (bid > ask)")
        r.time_order(self.ts)
        return r.result()


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """Trades of one symbol, time non-decreasing. ``aggressor``: +1 buy, -1 sell, 0 unknown."""

    symbol: str
    ts: np.ndarray
    price: np.ndarray
    size: np.ndarray
    aggressor: np.ndarray

    @classmethod
    def from_arrays(cls, symbol, ts, price, size, aggressor=None) -> TradeBatch:
        ts = _i64(ts)
        agg = np.zeros(len(ts), dtype=np.int8) if aggressor is None else np.ascontiguousarray(aggressor, dtype=np.int8)
        return cls(symbol, ts, _f64(price), _f64(size), agg)

    @classmethod
    def from_trades(cls, trades: list[Trade]) -> TradeBatch:
        if not trades:
            raise ValueError("a batch needs at least one trade")
        return cls.from_arrays(
            trades[0].symbol,
            [t.ts for t in trades],
            [t.price for t in trades],
            [t.size for t in trades],
            [AGGRESSOR_CODES[Aggressor(t.aggressor)] for t in trades],
        )

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> TradeBatch:
        return TradeBatch(self.symbol, self.ts[start:stop], self.price[start:stop], self.size[start:stop],
                          self.aggressor[start:stop])

    def problems(self) -> tuple[np.ndarray, list[str]]:
        r = _Reasons(len(self))
        r.mark(~np.isfinite(self.price) | ~np.isfinite(self.size), "NaN or infinite value")
        r.mark(self.price <= 0, "zero or negative price")
        r.mark(self.size <= 0, "zero or negative size")  # a print of nothing is not a trade
        r.mark((self.aggressor < -1) | (self.aggressor > 1), "aggressor must be -1, 0 or 1")
        r.time_order(self.ts)
        return r.result()


@dataclass(frozen=True, slots=True)
class BarBatch:
    """OHLCV bars of one symbol; ``ts`` is the bar's close time."""

    symbol: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_arrays(cls, symbol, ts, open_, high, low, close, volume) -> BarBatch:
        return cls(symbol, _i64(ts), _f64(open_), _f64(high), _f64(low), _f64(close), _f64(volume))

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> BarBatch:
        return BarBatch(self.symbol, self.ts[start:stop], self.open[start:stop], self.high[start:stop],
                        self.low[start:stop], self.close[start:stop], self.volume[start:stop])

    def problems(self) -> tuple[np.ndarray, list[str]]:
        r = _Reasons(len(self))
        fields = (self.open, self.high, self.low, self.close, self.volume)
        r.mark(np.logical_or.reduce([~np.isfinite(a) for a in fields]), "NaN or infinite value")
        r.mark((self.open <= 0) | (self.high <= 0) | (self.low <= 0) | (self.close <= 0), "zero or negative price")
        r.mark(self.volume < 0, "negative volume")
        r.mark((self.high < np.maximum(self.open, self.close)) | (self.low > np.minimum(self.open, self.close)),
               "high/low do not contain open/close")
        r.time_order(self.ts, strict=True)
        return r.result()


def bars_to_quotes_and_trades(bars: BarBatch, *, spread_bps: float, displayed_size: float) -> tuple[QuoteBatch, TradeBatch]:
    """Synthesize L1 data from bars (bars carry no spread).

    Bars must have strictly increasing close times (one bar per interval),
    unlike quotes and trades, which may share a timestamp.

    Assumptions (documented, per bar): one quote at the bar close time,
    centred on the close, with a constant spread of ``spread_bps`` and
    ``displayed_size`` on each side; one trade of the bar's whole volume at
    the typical price (H+L+C)/3 at the same time, aggressor unknown. A
    volume given in quote currency must be converted by the caller.
    """
    half = bars.close * spread_bps / 2e4
    quotes = QuoteBatch.from_arrays(bars.symbol, bars.ts, bars.close - half, bars.close + half,
                                    np.full(len(bars), displayed_size), np.full(len(bars), displayed_size))
    typical = (bars.high + bars.low + bars.close) / 3.0
    traded = bars.volume > 0  # a bar without volume had no trade
    trades = TradeBatch.from_arrays(bars.symbol, bars.ts[traded], typical[traded], bars.volume[traded])
    return quotes, trades
