"""The paper position registry of one session: positions, cash, P&L.

Average-cost accounting per symbol, in the account currency (quote currency
of every instrument is assumed to be the account currency; a cross-currency
instrument needs a conversion the caller applies before it gets here).

* A fill in the position's direction (or from flat) moves the average cost
  to the quantity-weighted mean of the old position and the fill.
* A fill against the position realizes ``closed × (price − avg) × sign``;
  the average cost of what remains is unchanged. A fill larger than the
  position flips it: the excess opens a new position at the fill price.
* Unrealized P&L is ``position × (mark − avg)``, marked at the mid.
* Fees reduce cash and are reported separately (``realized`` is before fees).

Invariant, at every event (checked by ``check_invariant``)::

    cash + Σ position × mark == starting_capital + realized + unrealized − fees
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ifns_paper.engine.orders import Fill
from ifns_paper.engine.trades import RoundTripMatcher


@dataclass(slots=True)
class Position:
    symbol: str
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    mark: float = math.nan
    bought: float = 0.0  # gross quantities traded, for reports
    sold: float = 0.0

    @property
    def unrealized(self) -> float:
        if self.quantity == 0.0 or math.isnan(self.mark):
            return 0.0
        return self.quantity * (self.mark - self.avg_cost)

    @property
    def market_value(self) -> float:
        mark = self.avg_cost if math.isnan(self.mark) else self.mark
        return self.quantity * mark

    def as_dict(self) -> dict:
        return {"symbol": self.symbol, "quantity": self.quantity, "avg_cost": self.avg_cost,
                "realized": self.realized, "unrealized": self.unrealized, "fees": self.fees,
                "mark": None if math.isnan(self.mark) else self.mark, "market_value": self.market_value,
                "bought": self.bought, "sold": self.sold}


class LedgerInvariantError(AssertionError):
    pass


class Ledger:
    def __init__(self, starting_cash: float, positions: dict[str, tuple[float, float]] | None = None) -> None:
        """``positions``: symbol -> (quantity, average cost) carried in, e.g. a backtest end state.

        Starting capital is the cash plus the carried positions at their cost.
        """
        self.cash = float(starting_cash)
        self.positions: dict[str, Position] = {}
        for symbol, (qty, avg) in (positions or {}).items():
            self.positions[symbol] = Position(symbol, float(qty), float(avg) if qty else 0.0)
        self.starting_capital = self.cash + sum(p.quantity * p.avg_cost for p in self.positions.values())
        self.fees = 0.0
        self.fill_count = 0
        self.round_trips = RoundTripMatcher()  # closed trades (``engine.trades``): ``round_trips.closed``
        for symbol, pos in self.positions.items():
            self.round_trips.carry(symbol, pos.quantity, pos.avg_cost)

    def __setstate__(self, state: dict) -> None:
        """Checkpoints written before round trips were counted restore with none closed."""
        self.__dict__.update(state)
        if "round_trips" not in state:
            self.round_trips = RoundTripMatcher()
            for symbol, pos in self.positions.items():
                self.round_trips.carry(symbol, pos.quantity, pos.avg_cost)

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def apply_fill(self, fill: Fill) -> Position:
        pos = self.position(fill.symbol)
        sign = fill.side.sign
        qty, price = fill.quantity, fill.price
        self.cash -= sign * qty * price + fill.fee
        self.fees += fill.fee
        pos.fees += fill.fee
        if sign > 0:
            pos.bought += qty
        else:
            pos.sold += qty
        held = pos.quantity
        if held == 0.0 or (held > 0) == (sign > 0):
            new = held + sign * qty
            pos.avg_cost = (abs(held) * pos.avg_cost + qty * price) / abs(new)
            pos.quantity = new
        else:
            closed = min(qty, abs(held))
            pos.realized += closed * (price - pos.avg_cost) * (1.0 if held > 0 else -1.0)
            rest = qty - closed
            if rest > 0:  # flipped: the excess opens at the fill price
                pos.quantity = sign * rest
                pos.avg_cost = price
            else:
                pos.quantity = held + sign * qty
                if abs(pos.quantity) <= 1e-12 * max(1.0, qty):
                    pos.quantity, pos.avg_cost = 0.0, 0.0
        if math.isnan(pos.mark):
            pos.mark = price
        self.fill_count += 1
        self.round_trips.on_fill(fill.symbol, sign, qty, price, fill.fee, fill.ts)
        return pos

    @property
    def trades(self) -> int:
        """Closed round trips so far (the definition of a trade: ``engine.trades``)."""
        return self.round_trips.closed

    def mark(self, symbol: str, price: float) -> None:
        self.position(symbol).mark = float(price)

    # --- figures ------------------------------------------------------------------------------

    @property
    def realized(self) -> float:
        return sum(p.realized for p in self.positions.values())

    @property
    def unrealized(self) -> float:
        return sum(p.unrealized for p in self.positions.values())

    @property
    def equity(self) -> float:
        return self.cash + sum(p.market_value for p in self.positions.values())

    @property
    def gross_exposure(self) -> float:
        return sum(abs(p.market_value) for p in self.positions.values())

    @property
    def net_exposure(self) -> float:
        return sum(p.market_value for p in self.positions.values())

    @property
    def pnl(self) -> float:
        """Total P&L after fees."""
        return self.realized + self.unrealized - self.fees

    def check_invariant(self, *, rel_tol: float = 1e-9) -> None:
        # one pass over the positions (run after every fill): the same sums as the properties
        held = realized = unrealized = gross = 0.0
        for p in self.positions.values():
            value = p.market_value
            held += value
            gross += abs(value)
            realized += p.realized
            unrealized += p.unrealized
        left = self.cash + held
        right = self.starting_capital + realized + unrealized - self.fees
        scale = max(1.0, abs(self.starting_capital), gross)
        if abs(left - right) > rel_tol * scale:
            raise LedgerInvariantError(
                f"cash + positions = {left!r} but capital + realized + unrealized - fees = {right!r}"
            )

    def snapshot(self) -> dict:
        return {
            "starting_capital": self.starting_capital, "cash": self.cash, "equity": self.equity,
            "realized": self.realized, "unrealized": self.unrealized, "fees": self.fees, "pnl": self.pnl,
            "gross_exposure": self.gross_exposure, "net_exposure": self.net_exposure,
            "fill_count": self.fill_count, "trades": self.trades,
            "positions": {s: p.as_dict() for s, p in sorted(self.positions.items())},
        }
