"""Trades: closed round trips, matched FIFO per symbol — the one definition of "a trade".

A *fill* is an execution reported by the broker. A *trade* (round trip) is a
quantity that was opened and then closed again: each closing fill is matched
against the oldest open lots of the symbol first (FIFO), and every (open lot,
closing fill) pair it consumes, wholly or partly, is one trade. A fill that
flips a position closes the old lots and opens a new lot with the rest.

So a buy of 10 closed by two sells of 5 is two trades (5 and 5); a buy of 4
and a buy of 6 closed by one sell of 10 are two trades (4 and 6). Session end
targets (``end.target.trades``), lane promotion rules (``min_trades``) and the
hit rate all count these.

P&L of a trade, in the account currency: ``quantity × (exit − entry) × direction``
(direction +1 for a long round trip, −1 for a short one), before fees; the fees
of the opening and closing fills are apportioned by quantity and reported beside it.
Quantities smaller than ``1e-12`` of the fill are float residue and ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    direction: int  # +1 long (bought, then sold), -1 short
    quantity: float
    entry_ts: int  # epoch ns of the opening fill (0 for a position carried in)
    exit_ts: int
    entry_price: float
    exit_price: float
    fees: float  # the share of both fills' fees, account currency

    @property
    def pnl(self) -> float:
        """Gross P&L, account currency (before ``fees``)."""
        return self.quantity * (self.exit_price - self.entry_price) * self.direction

    @property
    def net_pnl(self) -> float:
        return self.pnl - self.fees


@dataclass(slots=True)
class _Lot:
    quantity: float  # signed: + long, - short
    price: float
    ts: int
    fee_per_unit: float


@dataclass
class RoundTripMatcher:
    """Incremental FIFO matching; keeps only the open lots."""

    open_lots: dict[str, deque[_Lot]] = field(default_factory=dict)
    closed: int = 0  # round trips closed so far

    def carry(self, symbol: str, quantity: float, price: float) -> None:
        """A position carried in (e.g. a backtest end state), opened at ``price`` at time 0."""
        if abs(quantity) > _EPS:
            self.open_lots.setdefault(symbol, deque()).append(_Lot(quantity, price, 0, 0.0))

    def on_fill(self, symbol: str, sign: int, quantity: float, price: float, fee: float, ts: int
                ) -> list[RoundTrip]:
        """Book one fill (``sign`` +1 buy, −1 sell); returns the round trips it closed."""
        lots = self.open_lots.get(symbol)
        if lots is None:
            lots = self.open_lots[symbol] = deque()
        fee_per_unit = fee / quantity if quantity > 0 else 0.0
        left = quantity
        out: list[RoundTrip] = []
        while left > _EPS * max(1.0, quantity) and lots and (lots[0].quantity > 0) != (sign > 0):
            lot = lots[0]
            take = min(left, abs(lot.quantity))
            direction = 1 if lot.quantity > 0 else -1
            out.append(RoundTrip(symbol, direction, take, lot.ts, ts, lot.price, price,
                                 take * (lot.fee_per_unit + fee_per_unit)))
            left -= take
            lot.quantity -= direction * take
            if abs(lot.quantity) <= _EPS * max(1.0, take):
                lots.popleft()
        if left > _EPS * max(1.0, quantity):
            lots.append(_Lot(sign * left, price, ts, fee_per_unit))
        self.closed += len(out)
        return out


class RoundTripBook:
    """Round trips of fills fed in time order, a few at a time (a live session's summary
    refreshes): after ``add``, ``trips`` is what ``round_trips`` of all the fills so far gives."""

    def __init__(self, carried: dict[str, tuple[float, float]] | None = None) -> None:
        self.matcher = RoundTripMatcher()
        for symbol, (qty, avg) in (carried or {}).items():
            self.matcher.carry(symbol, qty, avg)
        self.trips: list[RoundTrip] = []
        self.last_ts: int | None = None

    def add(self, fills: Iterable[dict]) -> bool:
        """Book ``fills`` (time order); False, booking none, when one is older than a fill
        booked before: the caller starts a new book from all the fills."""
        fills = list(fills)
        if fills and self.last_ts is not None and min(int(f["ts"]) for f in fills) < self.last_ts:
            return False
        for f in sorted(fills, key=lambda f: f["ts"]):
            sign = 1 if f["side"] == "buy" else -1
            self.trips += self.matcher.on_fill(f["symbol"], sign, float(f["quantity"]), float(f["price"]),
                                               float(f["fee"]), int(f["ts"]))
            self.last_ts = int(f["ts"])
        return True


def round_trips(fills: Iterable[dict], carried: dict[str, tuple[float, float]] | None = None) -> list[RoundTrip]:
    """The round trips of fill records (``symbol``, ``side``, ``quantity``, ``price``, ``fee``,
    ``ts``), in time order; ``carried``: symbol -> (quantity, average price) held at the start."""
    book = RoundTripBook(carried)
    book.add(fills)
    return book.trips
