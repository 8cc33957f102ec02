"""Order contracts (Stage 05) shared by the Paper Broker and any live adapter.

Prices and quantities are ``float64`` (quantity in base units, price in quote
currency per unit); time is epoch nanoseconds (UTC). The broker never rounds
prices to a tick: it fills at market prices it has seen or at the order's
own limit, plus documented model costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "DAY"  # expires at the end of the UTC day it was submitted in
    GTC = "GTC"
    IOC = "IOC"  # fill what is possible on arrival, cancel the rest
    FOK = "FOK"  # fill all on arrival or nothing


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


_S = OrderStatus
#: status -> statuses it may move to
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.ACCEPTED, _S.REJECTED, _S.CANCELLED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}
TERMINAL_ORDER_STATUSES = frozenset(s for s, nxt in ORDER_TRANSITIONS.items() if not nxt)


class IllegalOrderTransition(RuntimeError):
    pass


def check_order_transition(client_order_id: str, current: OrderStatus, new: OrderStatus) -> None:
    if new not in ORDER_TRANSITIONS[current]:
        raise IllegalOrderTransition(f"order {client_order_id!r}: {current} -> {new} is not allowed")


class RejectReason(StrEnum):
    """Machine-readable reasons an order is rejected."""

    INVALID_ORDER = "invalid_order"
    UNKNOWN_ROUTE = "unknown_route"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    NO_MARKET_DATA = "no_market_data"
    STALE_QUOTE = "stale_quote"
    CROSSED_QUOTE = "crossed_quote"
    LOCKED_QUOTE = "locked_quote"
    ZERO_VOLUME = "zero_volume"
    OUTSIDE_TRADING_HOURS = "outside_trading_hours"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    SIMULATED_REJECT = "simulated_reject"
    SIMULATED_DISCONNECT = "simulated_disconnect"


class CancelReason(StrEnum):
    REQUESTED = "requested"
    IOC_REMAINDER = "ioc_remainder"
    FOK_NOT_FILLABLE = "fok_not_fillable"
    DISCONNECT = "disconnect"


class ExpireReason(StrEnum):
    END_OF_DAY = "end_of_day"
    PARTICIPATION_REMAINDER = "participation_remainder"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Order:
    """An order as EI sends it; ``client_order_id`` is the idempotency key."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    route_id: str = "SIM_TOUCH"
    limit_price: float | None = None
    stop_price: float | None = None
    session_id: str = ""
    lane: str = ""
    env: str = "paper"
    strategy_id: str = ""
    decision_id: str = ""
    policy_id: str = ""

    def problem(self) -> str | None:
        """Why this order is malformed, or None."""
        if (self.order_type is OrderType.MARKET and self.limit_price is None and self.stop_price is None
                and self.client_order_id and type(self.quantity) is float and 0.0 < self.quantity < math.inf):
            return None  # the usual market order (the checks below, answered at once)
        if not self.client_order_id:
            return "client_order_id is empty"
        if not (isinstance(self.quantity, int | float) and math.isfinite(self.quantity) and self.quantity > 0):
            return f"quantity must be a positive number, got {self.quantity!r}"
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        for name, value, needed in (("limit_price", self.limit_price, needs_limit),
                                    ("stop_price", self.stop_price, needs_stop)):
            if needed and (value is None or not math.isfinite(value) or value <= 0):
                return f"{self.order_type} order needs a positive {name}"
            if not needed and value is not None:
                return f"{self.order_type} order takes no {name}"
        if self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and self.time_in_force in (
            TimeInForce.IOC, TimeInForce.FOK
        ):
            return f"{self.order_type} order cannot be {self.time_in_force}"
        return None


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``slippage_bps`` is signed cost vs the arrival mid
    (positive = worse than mid for the order's side)."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    ts: int
    quantity: float
    price: float
    arrival_mid: float
    slippage_bps: float
    fee: float
    liquidity: Liquidity
    route_id: str

    def values(self) -> tuple:
        """Field values in ``as_dict`` order (enums as their strings)."""
        return (self.fill_id, self.client_order_id, self.symbol, self.side._value_, self.ts, self.quantity,
                self.price, self.arrival_mid, self.slippage_bps, self.fee, self.liquidity._value_, self.route_id)

    def as_dict(self) -> dict:
        return {
            "fill_id": self.fill_id, "client_order_id": self.client_order_id, "symbol": self.symbol,
            "side": str(self.side), "ts": self.ts, "quantity": self.quantity, "price": self.price,
            "arrival_mid": self.arrival_mid, "slippage_bps": self.slippage_bps, "fee": self.fee,
            "liquidity": str(self.liquidity), "route_id": self.route_id,
        }


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A change of an order's status (``status`` is the new one)."""

    ts: int
    client_order_id: str
    status: OrderStatus
    reason: str = ""
    detail: str = ""
    filled_quantity: float = 0.0
    leaves_quantity: float = 0.0

    def as_dict(self) -> dict:
        return {"ts": self.ts, "client_order_id": self.client_order_id, "status": str(self.status),
                "reason": self.reason, "detail": self.detail, "filled_quantity": self.filled_quantity,
                "leaves_quantity": self.leaves_quantity}


@dataclass(frozen=True, slots=True)
class Incident:
    """A simulated failure or data anomaly worth an operator's attention."""

    ts: int
    kind: str
    symbol: str
    route_id: str
    client_order_id: str = ""
    detail: str = ""

    def as_dict(self) -> dict:
        return {"ts": self.ts, "kind": self.kind, "symbol": self.symbol, "route_id": self.route_id,
                "client_order_id": self.client_order_id, "detail": self.detail}


BrokerEvent = OrderEvent | Fill | Incident


@dataclass(slots=True)
class OrderView:
    """What a caller may know about an order it sent."""

    order: Order
    status: OrderStatus
    filled_quantity: float = 0.0
    average_price: float = 0.0
    submitted_ts: int = 0
    reason: str = ""
    fills: list[Fill] = field(default_factory=list)

    @property
    def leaves_quantity(self) -> float:
        return 0.0 if self.status in TERMINAL_ORDER_STATUSES else self.order.quantity - self.filled_quantity


@runtime_checkable
class BrokerAdapter(Protocol):
    """The order interface EI talks to; the Paper Broker and a live adapter both implement it.

    Methods return the events they caused, in time order. Market data goes
    in through ``on_quotes``/``on_trades`` (a live adapter would forward it
    to its venue connection's bookkeeping or ignore it); ``advance_to``
    tells the adapter that no data older than ``ts`` will arrive any more.
    """

    def submit(self, order: Order, ts: int) -> list[BrokerEvent]: ...

    def cancel(self, client_order_id: str, ts: int) -> list[BrokerEvent]: ...

    def on_quotes(self, batch: QuoteBatch) -> list[BrokerEvent]: ...

    def on_trades(self, batch: TradeBatch) -> list[BrokerEvent]: ...

    def advance_to(self, ts: int) -> list[BrokerEvent]: ...

    def order(self, client_order_id: str) -> OrderView | None: ...

    def working_orders(self) -> list[OrderView]: ...
