"""The Paper Broker: simulated execution behind the ``BrokerAdapter`` contract.

How time works (no look-ahead)
------------------------------
``submit(order, ts)`` records the order as ``new``; it *arrives* at the
venue at ``ts + route.insert_latency``. What happens on arrival is decided
only once market data has moved past the arrival time, against the quote in
force at arrival (the last quote with ``quote.ts <= arrival``). Resting
orders react to later data only. Cancels take effect ``cancel_latency``
after they are sent; fills can happen until then. Data must be fed in
non-decreasing time per symbol; ``advance_to(ts)`` says no data older than
``ts`` will come, which resolves arrivals, cancels, expiries and
participation intervals on quiet markets.

Market-data latency (per route) is the delay with which the venue simulator
receives data: a quote stamped ``t`` by the exchange is seen at ``t + md``.
The quote in force at an arrival is the latest one *seen* by then, resting
orders react (and fill) when a quote is seen, and staleness is measured in
exchange time. A real-time paper run has exactly this delay, so replay and
real time agree.

Fill models (per route, see ``config/policies/execution_routes.json``)
--------------------------------------------------------------------
* touch: market orders take the opposite touch up to its displayed size;
  beyond it, ``walk`` takes further synthetic levels of the same size, each
  ``depth_impact_bps`` worse than the last (at most ``MAX_WALK_LEVELS``; the
  deepest takes whatever is left); ``rest`` leaves the remainder
  working against later quotes' displayed size; ``reject`` refuses orders
  larger than the displayed size.
* vwap: from arrival, time is cut into ``interval`` slices; at the end of
  each, the order fills ``min(leaves, max_participation × traded volume)``
  at the slice's VWAP plus half the spread in force; the remainder carries
  over or expires.
* sqrt_impact: price = mid × (1 ± (half_spread/mid + k·σ_W·sqrt(Q/V_W))),
  σ_W the realized volatility of log mid over the last ``window`` and V_W
  the traded volume over the same window (the square-root law of Almgren,
  Thum, Hauptmann & Li 2005 and Tóth et al. 2011; measuring σ and V on the
  same horizon makes the horizon cancel out).
* limit orders (all routes) rest with a queue ahead of them equal to the
  displayed size at their price on placement (``queue_ahead: displayed``),
  zero when they improve the touch. They fill at their limit (never better)
  when the market trades through the limit, or trades at it after the queue
  ahead has traded; an opposite quote crossing strictly through the limit
  counts as trading through. ``touch_fill_probability`` optionally fills a
  trade at the limit while the queue is not yet exhausted.
* stops trigger when the relevant side (ask for buys, bid for sells) or a
  trade reaches the stop price, then execute as market or limit orders.

Fees: ``bps × notional`` per fill (maker or taker rate), at least
``min_fee`` per fill when a fee is charged (rebates have no minimum).

Failures on arrival, each an ``order_rejected`` with a reason and an
``Incident``: outside trading hours, no quote, stale quote, crossed or
locked quote, zero traded volume (vwap/impact routes), insufficient
displayed liquidity (touch ``reject``), seeded random reject, seeded
random disconnect (which also cancels the route's working orders).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from ifns_paper.engine.determinism import uniform
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.orders import (
    BrokerEvent,
    CancelReason,
    ExpireReason,
    Fill,
    Incident,
    Liquidity,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    OrderView,
    RejectReason,
    Side,
    TimeInForce,
    check_order_transition,
)
from ifns_paper.engine.routes import FillModel, RouteSpec

DAY_NS = 86_400 * 1_000_000_000
#: deepest synthetic level a walking order reaches; what is left fills there
MAX_WALK_LEVELS = 20
_INF = np.iinfo(np.int64).max
_EPS = 1e-12

# Order phases
_PENDING = 0  # submitted, not yet arrived
_WORKING = 1  # accepted, resting / triggering / participating
_DONE = 2


@dataclass(slots=True)
class _QuoteView:
    """The quote in force at some time, with an identity for liquidity bookkeeping."""

    key: int  # running quote number of this symbol
    ts: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@dataclass(slots=True)
class _SymbolState:
    symbol: str
    quote_count: int = 0
    tail: QuoteBatch | None = None  # the latest quotes (enough to look back one market-data latency)
    tail_base: int = 0  # running number of the tail's first quote
    data_ts: int = -1  # latest exchange time covered by data of this symbol
    consumed: dict[int, list[float]] = field(default_factory=dict)  # quote key -> [bid taken, ask taken]
    orders: list[_OrderState] = field(default_factory=list)  # not done, in submission order
    # rolling windows for volume- and volatility-aware routes
    q_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    q_logmid: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    t_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    t_price: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    t_size: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))


@dataclass(slots=True)
class _OrderState:
    order: Order
    route: RouteSpec | None
    seq: int
    submitted_ts: int
    arrival_ts: int
    status: OrderStatus = OrderStatus.NEW
    phase: int = _PENDING
    filled: float = 0.0
    notional: float = 0.0
    n_fills: int = 0
    arrival_mid: float = math.nan
    reason: str = ""
    fills: list[Fill] = field(default_factory=list)
    # working state
    kind: str = ""  # "limit" | "stop" | "rest" | "vwap"
    limit: float = math.nan  # working limit price (limit / triggered stop-limit)
    queue_ahead: float = 0.0
    touch_draws: int = 0
    active_from: int = 0  # react to data with ts > active_from (the arrival or trigger time)
    deadline: int = _INF  # cancel or expiry time
    deadline_is_cancel: bool = False
    vwap_end: int = 0
    vwap_volume: float = 0.0
    vwap_notional: float = 0.0

    @property
    def leaves(self) -> float:
        return self.order.quantity - self.filled


def _by_arrival(orders: list) -> list:
    """A symbol's orders in the order they reached (or reach) the venue, then as sent: they
    take the same liquidity first however the data was cut into batches."""
    return sorted(orders, key=lambda st: (st.arrival_ts, st.seq))


def _digest(order: Order) -> bytes:
    """Stable across processes (unlike hash()): orders are compared after a checkpoint restore."""
    return hashlib.blake2b(repr(order).encode(), digest_size=16).digest()


class PaperBroker:
    """Simulated venue for one account (one paper session). Deterministic for
    the same routes, seed, orders and market data."""

    def __init__(self, routes: dict[str, RouteSpec], *, seed: int = 0) -> None:
        self.routes = routes
        self.seed = seed
        self._orders: dict[str, _OrderState] = {}
        # Finished orders dropped by forget_finished(): client order id -> (digest of the order,
        # final status, symbol, route), all idempotency and late cancels need.
        self._forgotten: dict[str, tuple[bytes, OrderStatus, str, str]] = {}
        self._symbols: dict[str, _SymbolState] = {}
        self._seq = 0
        self._emitted = 0
        self._events: list[tuple[int, int, BrokerEvent]] = []
        windows = [r.window_ns for r in routes.values() if r.model is FillModel.SQRT_IMPACT]
        windows += [10 * r.interval_ns for r in routes.values() if r.model is FillModel.VWAP]
        self._window_ns = max(windows, default=0)
        self._max_md_ns = max((r.market_data_latency_ns for r in routes.values()), default=0)

    # --- the adapter contract -------------------------------------------------------

    def submit(self, order: Order, ts: int) -> list[BrokerEvent]:
        existing = self._orders.get(order.client_order_id)
        forgotten = self._forgotten.get(order.client_order_id)
        if existing is not None or forgotten is not None:
            if existing.order == order if existing is not None else forgotten[0] == _digest(order):
                return []  # idempotent resend: the original stands
            self._emit(ts, Incident(ts, RejectReason.DUPLICATE_CLIENT_ORDER_ID, order.symbol, order.route_id,
                                    order.client_order_id, "a different order already uses this client_order_id"))
            self._emit(ts, OrderEvent(ts, order.client_order_id, OrderStatus.REJECTED,
                                      RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                                      "a different order already uses this client_order_id"))
            return self._drain()
        sym_ts = self._symbols[order.symbol].data_ts if order.symbol in self._symbols else -1
        if ts < sym_ts:
            raise ValueError(
                f"order {order.client_order_id!r} submitted at {ts}, before market data already "
                f"processed for {order.symbol} (up to {sym_ts}): that would be look-ahead"
            )
        route = self.routes.get(order.route_id)
        st = _OrderState(order, route, self._seq, ts, ts + (route.insert_latency_ns if route else 0))
        self._seq += 1
        self._orders[order.client_order_id] = st
        self._emit(ts, OrderEvent(ts, order.client_order_id, OrderStatus.NEW, leaves_quantity=order.quantity))
        problem = order.problem()
        if problem is not None:
            self._reject(st, ts, RejectReason.INVALID_ORDER, problem)
        elif route is None:
            self._reject(st, ts, RejectReason.UNKNOWN_ROUTE, f"unknown route {order.route_id!r}")
        else:
            sym = self._symbol(order.symbol)
            if order.time_in_force is TimeInForce.DAY:
                st.deadline = (ts // DAY_NS + 1) * DAY_NS
            sym.orders.append(st)
            md = route.market_data_latency_ns
            if st.arrival_ts <= sym.data_ts + md:  # the data covering the arrival is already here
                self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts, md))
        return self._drain()

    def cancel(self, client_order_id: str, ts: int) -> list[BrokerEvent]:
        st = self._orders.get(client_order_id)
        forgotten = self._forgotten.get(client_order_id)
        if st is None and forgotten is not None:
            _, status, symbol, route_id = forgotten
            self._emit(ts, Incident(ts, "cancel_rejected", symbol, route_id, client_order_id,
                                    f"order is already {status}"))
            return self._drain()
        if st is None or st.phase == _DONE:
            detail = "unknown order" if st is None else f"order is already {st.status}"
            self._emit(ts, Incident(ts, "cancel_rejected", st.order.symbol if st else "",
                                    st.order.route_id if st else "", client_order_id, detail))
            return self._drain()
        effective = ts + (st.route.cancel_latency_ns if st.route else 0)
        if effective < st.deadline:
            st.deadline, st.deadline_is_cancel = effective, True
        sym = self._symbol(st.order.symbol)
        if st.deadline <= sym.data_ts + self._md(st):
            self._finish_deadline(st)
        return self._drain()

    def on_quotes(self, batch: QuoteBatch) -> list[BrokerEvent]:
        if len(batch) == 0:
            return []
        sym = self._symbol(batch.symbol)
        base = sym.quote_count
        if self._window_ns:  # before the orders: an arrival inside this batch sees the quotes up to it
            self._roll_quotes(sym, batch)
        if sym.consumed:  # liquidity taken from quotes older than the last one is history
            sym.consumed = {k: v for k, v in sym.consumed.items() if k >= base - 1}
        if sym.orders:
            for st in _by_arrival(sym.orders):
                self._run_quotes(st, sym, batch, base)
        n = len(batch)
        self._keep_tail(sym, batch, base)
        sym.quote_count = base + n
        sym.data_ts = max(sym.data_ts, int(batch.ts[-1]))
        return self._drain()

    def on_trades(self, batch: TradeBatch) -> list[BrokerEvent]:
        if len(batch) == 0:
            return []
        sym = self._symbol(batch.symbol)
        if self._window_ns:
            self._roll_trades(sym, batch)
        for st in _by_arrival(sym.orders):
            self._run_trades(st, sym, batch)
        sym.data_ts = max(sym.data_ts, int(batch.ts[-1]))
        return self._drain()

    def advance_to(self, ts: int) -> list[BrokerEvent]:
        for sym in self._symbols.values():
            if ts <= sym.data_ts:
                continue
            for st in _by_arrival(sym.orders):
                self._run_time(st, sym, ts + self._md(st))
            sym.data_ts = ts
        return self._drain()

    def forget_finished(self) -> int:
        """Drop the state of finished orders (their fills and events are already out), keeping
        per client order id a digest of the order and its final status: resends stay
        idempotent and late cancels are still answered. ``order()`` of a forgotten order is
        None. For long real-time sessions, whose state is checkpointed after every step."""
        done = [coid for coid, st in self._orders.items() if st.phase == _DONE]
        for coid in done:
            st = self._orders.pop(coid)
            self._forgotten[coid] = (_digest(st.order), st.status, st.order.symbol, st.order.route_id)
        return len(done)

    def order(self, client_order_id: str) -> OrderView | None:
        st = self._orders.get(client_order_id)
        if st is None:
            return None
        avg = st.notional / st.filled if st.filled > 0 else 0.0
        return OrderView(st.order, st.status, st.filled, avg, st.submitted_ts, st.reason, list(st.fills))

    def has_working(self) -> bool:
        """Whether any order is still pending or working (cheaper than ``working_orders``)."""
        return any(sym.orders for sym in self._symbols.values())

    def working_orders(self) -> list[OrderView]:
        return [self.order(s.order.client_order_id) for sym in self._symbols.values() for s in sym.orders]

    # --- per-order processing ------------------------------------------------------------

    def _run_quotes(self, st: _OrderState, sym: _SymbolState, batch: QuoteBatch, base: int) -> None:
        # Work in the time the venue simulator sees each quote: exchange time + market-data latency.
        md = self._md(st)
        if md:
            batch = QuoteBatch(batch.symbol, batch.ts + md, batch.bid, batch.ask, batch.bid_size, batch.ask_size)
        ts = batch.ts
        t_end = int(ts[-1])
        start = 0
        if st.phase == _PENDING:
            if st.arrival_ts > t_end:
                return
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)  # cancelled before it reached the venue
                return
            i = int(np.searchsorted(ts, st.arrival_ts, "right")) - 1
            quote = self._batch_quote(batch, base, i) if i >= 0 else self._visible_quote(sym, st.arrival_ts, md)
            self._resolve_arrival(st, sym, quote)
            start = i + 1
        while st.phase == _WORKING:
            stop = int(np.searchsorted(ts, st.deadline, "left")) if st.deadline <= t_end else len(ts)
            lo = max(start, int(np.searchsorted(ts, st.active_from, "right")))
            if lo < stop:
                if st.kind == "limit":
                    self._limit_vs_quotes(st, batch, base, lo, stop)
                elif st.kind == "stop":
                    self._stop_vs_quotes(st, sym, batch, base, lo, stop)
                    if st.phase == _WORKING and st.kind != "stop":
                        start = lo
                        continue  # triggered: the new working kind reacts to the following quotes
                elif st.kind == "rest":
                    self._rest_vs_quotes(st, batch, base, lo, stop)
            if st.kind == "vwap" and st.phase == _WORKING:
                self._vwap_close_intervals(st, sym, min(t_end, st.deadline - 1), batch=batch, base=base)
            break
        if st.phase == _WORKING and st.deadline <= t_end:
            self._finish_deadline(st)

    def _run_trades(self, st: _OrderState, sym: _SymbolState, batch: TradeBatch) -> None:
        md = self._md(st)
        if md:
            batch = TradeBatch(batch.symbol, batch.ts + md, batch.price, batch.size, batch.aggressor)
        t_end = int(batch.ts[-1])
        if st.phase == _PENDING:
            if st.arrival_ts > t_end:
                return
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)
                return
            self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts, md))
        if st.phase != _WORKING:
            return
        limit_ts = min(t_end, st.deadline - 1)
        lo = int(np.searchsorted(batch.ts, st.active_from, "right"))
        hi = int(np.searchsorted(batch.ts, limit_ts, "right"))
        if st.kind == "vwap":
            self._vwap_add_trades(st, sym, batch, lo, hi)
        elif lo < hi:
            if st.kind == "limit":
                self._limit_vs_trades(st, batch, lo, hi)
            elif st.kind == "stop":
                self._stop_vs_trades(st, sym, batch, lo, hi)
        if st.phase == _WORKING and st.deadline <= t_end:
            self._finish_deadline(st)

    def _run_time(self, st: _OrderState, sym: _SymbolState, now: int) -> None:
        if st.phase == _PENDING and st.arrival_ts <= now:
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)
                return
            self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts, self._md(st)))
        if st.phase == _WORKING and st.kind == "vwap":
            self._vwap_close_intervals(st, sym, min(now, st.deadline - 1))
        if st.phase == _WORKING and st.deadline <= now:
            self._finish_deadline(st)

    # --- arrival ------------------------------------------------------------------------------

    def _resolve_arrival(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView | None) -> None:
        order, route, now = st.order, st.route, st.arrival_ts
        assert route is not None
        if route.trading_hours is not None and not route.trading_hours.is_open(now):
            return self._reject(st, now, RejectReason.OUTSIDE_TRADING_HOURS, "the route is closed at arrival")
        if quote is None:
            return self._reject(st, now, RejectReason.NO_MARKET_DATA, f"no quote for {order.symbol} at arrival")
        age = now - (quote.ts - route.market_data_latency_ns)  # exchange-time age of the quote
        if age > route.stale_ns:
            return self._reject(st, now, RejectReason.STALE_QUOTE,
                                f"quote is {age / 1e6:.0f} ms old (limit {route.stale_ns / 1e6:.0f} ms)")
        if quote.bid > quote.ask:
            return self._reject(st, now, RejectReason.CROSSED_QUOTE, f"bid {quote.bid} > ask {quote.ask}")
        if quote.bid == quote.ask:
            return self._reject(st, now, RejectReason.LOCKED_QUOTE, f"bid == ask == {quote.bid}")
        st.arrival_mid = quote.mid
        needs_volume = route.model in (FillModel.VWAP, FillModel.SQRT_IMPACT) and order.order_type is OrderType.MARKET
        seen = now - route.market_data_latency_ns  # exchange time of the newest data seen at arrival
        if needs_volume and self._window_volume(sym, seen, self._volume_window(route)) <= 0:
            return self._reject(st, now, RejectReason.ZERO_VOLUME, "no traded volume in the model window")
        if route.reject_probability and uniform(self.seed, order.client_order_id, "reject") < route.reject_probability:
            return self._reject(st, now, RejectReason.SIMULATED_REJECT, "seeded random reject")
        if route.disconnect_probability and (
            uniform(self.seed, order.client_order_id, "disconnect") < route.disconnect_probability
        ):
            self._reject(st, now, RejectReason.SIMULATED_DISCONNECT, "seeded random disconnect")
            return self._disconnect(route.route_id, now)
        if order.order_type is OrderType.MARKET and route.model is FillModel.TOUCH and route.beyond_displayed == "reject":
            available = self._available(sym, quote, order.side)
            if order.quantity > available + _EPS:
                return self._reject(st, now, RejectReason.INSUFFICIENT_LIQUIDITY,
                                    f"{order.quantity:g} > displayed {available:g}")
        self._transition(st, now, OrderStatus.ACCEPTED)
        st.phase = _WORKING
        st.active_from = now
        kind = order.order_type
        if kind is OrderType.MARKET:
            self._execute_market(st, sym, quote, now)
        elif kind is OrderType.LIMIT:
            self._execute_limit(st, sym, quote, now, order.limit_price)
        else:
            st.kind = "stop"
            if self._stop_triggered(order, quote.bid, quote.ask):
                self._trigger(st, sym, quote, now)

    def _execute_market(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int) -> None:
        route = st.route
        assert route is not None
        tif = st.order.time_in_force
        if route.model is FillModel.SQRT_IMPACT:
            price = self._impact_price(st, sym, quote, now)
            self._fill(st, now, st.leaves, price, Liquidity.TAKER)
        elif route.model is FillModel.VWAP:
            st.kind = "vwap"
            st.vwap_end = now + route.interval_ns
        else:
            walk = route.beyond_displayed == "walk"
            if tif is TimeInForce.FOK and not walk and self._available(sym, quote, st.order.side) < st.leaves - _EPS:
                return self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
            self._take(st, sym, quote, now, limit=None, walk=walk)
            if st.phase == _WORKING:
                if tif in (TimeInForce.IOC, TimeInForce.FOK):
                    self._cancel(st, now, CancelReason.IOC_REMAINDER)
                else:
                    st.kind = "rest"
        if st.phase == _WORKING and st.kind == "vwap" and tif is TimeInForce.FOK:
            self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)

    def _execute_limit(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int, limit: float) -> None:
        route = st.route
        assert route is not None
        side, tif = st.order.side, st.order.time_in_force
        marketable = quote.ask <= limit if side is Side.BUY else quote.bid >= limit
        if tif is TimeInForce.FOK:
            fillable = self._fillable_within(sym, quote, side, limit, walk=route.beyond_displayed == "walk",
                                             depth_bps=route.depth_impact_bps)
            if fillable < st.leaves - _EPS:
                return self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
        if marketable:
            self._take(st, sym, quote, now, limit=limit, walk=route.beyond_displayed == "walk")
        if st.phase != _WORKING:
            return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            return self._cancel(st, now, CancelReason.IOC_REMAINDER)
        st.kind, st.limit = "limit", limit
        own_touch = quote.bid if side is Side.BUY else quote.ask
        own_size = quote.bid_size if side is Side.BUY else quote.ask_size
        improves = limit > own_touch if side is Side.BUY else limit < own_touch
        st.queue_ahead = 0.0 if (marketable or improves or route.queue_ahead == "none") else own_size

    # --- taking liquidity ------------------------------------------------------------------------

    def _available(self, sym: _SymbolState, quote: _QuoteView, side: Side) -> float:
        taken = sym.consumed.get(quote.key)
        if side is Side.BUY:
            return max(0.0, quote.ask_size - (taken[1] if taken else 0.0))
        return max(0.0, quote.bid_size - (taken[0] if taken else 0.0))

    def _consume(self, sym: _SymbolState, quote: _QuoteView, side: Side, qty: float) -> None:
        taken = sym.consumed.setdefault(quote.key, [0.0, 0.0])
        taken[1 if side is Side.BUY else 0] += qty

    def _fillable_within(self, sym: _SymbolState, quote: _QuoteView, side: Side, limit: float, *,
                         walk: bool, depth_bps: float) -> float:
        """Quantity that could be taken on arrival without going beyond ``limit``."""
        available = self._available(sym, quote, side)
        touch = quote.ask if side is Side.BUY else quote.bid
        if (touch - limit) * side.sign > 0:
            return 0.0
        if not walk:
            return available
        size = quote.ask_size if side is Side.BUY else quote.bid_size
        step = touch * depth_bps / 1e4
        if size <= 0:
            return available
        levels = math.floor(abs(limit - touch) / step + 1e-9) if step > 0 else math.inf
        if levels >= MAX_WALK_LEVELS:
            return math.inf  # the deepest level takes any remainder
        return available + levels * size

    def _take(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int, *,
              limit: float | None, walk: bool) -> None:
        """Take displayed liquidity (and deeper synthetic levels when walking), within ``limit``."""
        route = st.route
        assert route is not None
        side = st.order.side
        touch = quote.ask if side is Side.BUY else quote.bid
        available = self._available(sym, quote, side)
        if available <= 0 and not walk:
            return
        if limit is not None and (touch - limit) * side.sign > 0:
            return
        qty = min(st.leaves, available)
        if qty > 0:
            self._consume(sym, quote, side, qty)
            self._fill(st, now, qty, touch, Liquidity.TAKER)
        if not walk or st.phase != _WORKING:
            return
        size = quote.ask_size if side is Side.BUY else quote.bid_size
        if size <= 0:
            return
        step = touch * route.depth_impact_bps / 1e4
        level = 1
        while st.phase == _WORKING:
            price = touch + side.sign * step * level
            if limit is not None and (price - limit) * side.sign > 0:
                break
            # The deepest synthetic level (or any level when walking costs nothing) takes the rest.
            last = step <= 0 or level >= MAX_WALK_LEVELS
            self._fill(st, now, st.leaves if last else min(st.leaves, size), price, Liquidity.TAKER)
            level += 1

    def _rest_vs_quotes(self, st: _OrderState, batch: QuoteBatch, base: int, lo: int, stop: int) -> None:
        """A market remainder takes each later quote's displayed size until done."""
        sizes = batch.ask_size if st.order.side is Side.BUY else batch.bid_size
        prices = batch.ask if st.order.side is Side.BUY else batch.bid
        sym = self._symbols[st.order.symbol]
        for j in np.flatnonzero(sizes[lo:stop] > 0) + lo:
            quote = self._batch_quote(batch, base, int(j))
            available = self._available(sym, quote, st.order.side)
            if available <= 0:
                continue
            qty = min(st.leaves, available)
            self._consume(sym, quote, st.order.side, qty)
            self._fill(st, int(batch.ts[j]), qty, float(prices[j]), Liquidity.TAKER)
            if st.phase != _WORKING:
                return

    # --- resting limits ----------------------------------------------------------------------------

    def _limit_vs_quotes(self, st: _OrderState, batch: QuoteBatch, base: int, lo: int, stop: int) -> None:
        """An opposite quote strictly through the limit fills the whole remainder at the limit."""
        if st.order.side is Side.BUY:
            through = np.flatnonzero(batch.ask[lo:stop] < st.limit)
        else:
            through = np.flatnonzero(batch.bid[lo:stop] > st.limit)
        if len(through):
            j = lo + int(through[0])
            self._fill(st, int(batch.ts[j]), st.leaves, st.limit, Liquidity.MAKER)

    def _limit_vs_trades(self, st: _OrderState, batch: TradeBatch, lo: int, hi: int) -> None:
        side, limit = st.order.side, st.limit
        price, agg = batch.price[lo:hi], batch.aggressor[lo:hi]
        # Trades that can reach a resting buy are sells (or unknown) at or below the limit.
        if side is Side.BUY:
            relevant = np.flatnonzero((price <= limit) & (agg <= 0))
        else:
            relevant = np.flatnonzero((price >= limit) & (agg >= 0))
        for k in relevant:
            j = lo + int(k)
            p, size, ts = float(batch.price[j]), float(batch.size[j]), int(batch.ts[j])
            through = p < limit if side is Side.BUY else p > limit
            if through:
                self._fill(st, ts, st.leaves, limit, Liquidity.MAKER)
            elif st.queue_ahead >= size:
                st.queue_ahead -= size
                prob = st.route.touch_fill_probability if st.route else 0.0
                if prob and uniform(self.seed, st.order.client_order_id, "touch", st.touch_draws) < prob:
                    self._fill(st, ts, min(st.leaves, size), limit, Liquidity.MAKER)
                st.touch_draws += 1
            else:
                excess = size - st.queue_ahead
                st.queue_ahead = 0.0
                self._fill(st, ts, min(st.leaves, excess), limit, Liquidity.MAKER)
            if st.phase != _WORKING:
                return

    # --- stops --------------------------------------------------------------------------------------

    @staticmethod
    def _stop_triggered(order: Order, bid: float, ask: float) -> bool:
        stop = order.stop_price
        return ask >= stop if order.side is Side.BUY else bid <= stop

    def _stop_vs_quotes(self, st: _OrderState, sym: _SymbolState, batch: QuoteBatch, base: int, lo: int, stop: int) -> None:
        if st.order.side is Side.BUY:
            hit = np.flatnonzero(batch.ask[lo:stop] >= st.order.stop_price)
        else:
            hit = np.flatnonzero(batch.bid[lo:stop] <= st.order.stop_price)
        if len(hit):
            j = lo + int(hit[0])
            self._trigger(st, sym, self._batch_quote(batch, base, j), int(batch.ts[j]))

    def _stop_vs_trades(self, st: _OrderState, sym: _SymbolState, batch: TradeBatch, lo: int, hi: int) -> None:
        price = batch.price[lo:hi]
        hit = np.flatnonzero(price >= st.order.stop_price if st.order.side is Side.BUY else price <= st.order.stop_price)
        if len(hit):
            j = lo + int(hit[0])
            self._trigger(st, sym, self._visible_quote(sym, int(batch.ts[j]), self._md(st)), int(batch.ts[j]))

    def _trigger(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView | None, now: int) -> None:
        """A triggered stop executes on the venue at once (no insert latency)."""
        self._emit(now, Incident(now, "stop_triggered", st.order.symbol, st.order.route_id,
                                 st.order.client_order_id, f"stop {st.order.stop_price}"))
        st.active_from = now
        if quote is None:
            st.kind = "rest" if st.order.order_type is OrderType.STOP else "limit"
            st.limit = st.order.limit_price if st.order.limit_price is not None else math.nan
            return
        if math.isnan(st.arrival_mid):
            st.arrival_mid = quote.mid
        if st.order.order_type is OrderType.STOP:
            self._execute_market(st, sym, quote, now)
        else:
            self._execute_limit(st, sym, quote, now, st.order.limit_price)

    # --- volume participation ----------------------------------------------------------------------

    def _vwap_add_trades(self, st: _OrderState, sym: _SymbolState, batch: TradeBatch, lo: int, hi: int) -> None:
        ts = batch.ts
        j = lo
        while j < hi and st.phase == _WORKING:
            k = int(np.searchsorted(ts, st.vwap_end, "left"))  # trades before this interval's end
            k = min(max(k, j), hi)
            if k > j:
                st.vwap_volume += float(batch.size[j:k].sum())
                st.vwap_notional += float((batch.size[j:k] * batch.price[j:k]).sum())
            if k >= hi:
                break
            self._vwap_close_interval(st, sym)
            j = k

    def _vwap_close_intervals(self, st: _OrderState, sym: _SymbolState, upto: int, *, batch=None, base=0) -> None:
        while st.phase == _WORKING and st.vwap_end <= upto:
            quote = None
            if batch is not None:
                i = int(np.searchsorted(batch.ts, st.vwap_end, "right")) - 1
                quote = self._batch_quote(batch, base, i) if i >= 0 else None
            self._vwap_close_interval(st, sym, quote)

    def _vwap_close_interval(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView | None = None) -> None:
        route = st.route
        assert route is not None
        end = st.vwap_end
        quote = quote or self._visible_quote(sym, end, self._md(st))
        if st.vwap_volume > 0 and quote is not None:
            qty = min(st.leaves, route.max_participation * st.vwap_volume)
            vwap = st.vwap_notional / st.vwap_volume
            half_spread = (quote.ask - quote.bid) / 2.0
            if qty > 0:
                self._fill(st, end, qty, vwap + st.order.side.sign * half_spread, Liquidity.TAKER)
        st.vwap_volume = st.vwap_notional = 0.0
        st.vwap_end = end + route.interval_ns
        if st.phase == _WORKING and (route.remainder == "expire" or st.order.time_in_force is TimeInForce.IOC):
            if route.remainder == "expire":
                self._expire(st, end, ExpireReason.PARTICIPATION_REMAINDER)
            else:
                self._cancel(st, end, CancelReason.IOC_REMAINDER)

    # --- square-root impact --------------------------------------------------------------------------

    def _volume_window(self, route: RouteSpec) -> int:
        return route.window_ns if route.model is FillModel.SQRT_IMPACT else 10 * route.interval_ns

    def _window_volume(self, sym: _SymbolState, now: int, window: int) -> float:
        lo = int(np.searchsorted(sym.t_ts, now - window, "right"))
        hi = int(np.searchsorted(sym.t_ts, now, "right"))
        return float(sym.t_size[lo:hi].sum())

    def _impact_price(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int) -> float:
        route = st.route
        assert route is not None
        window = route.window_ns
        now -= route.market_data_latency_ns  # only data seen by the arrival time counts
        lo = int(np.searchsorted(sym.q_ts, now - window, "right"))
        hi = int(np.searchsorted(sym.q_ts, now, "right"))
        logmid = sym.q_logmid[lo:hi]
        realized_var = float(np.square(np.diff(logmid)).sum()) if len(logmid) > 1 else 0.0
        volume = self._window_volume(sym, now, window)
        mid = quote.mid
        half_spread_frac = (quote.ask - quote.bid) / 2.0 / mid
        impact_frac = route.impact_k * math.sqrt(realized_var * st.leaves / volume) if volume > 0 else 0.0
        return mid * (1.0 + st.order.side.sign * (half_spread_frac + impact_frac))

    def _roll_quotes(self, sym: _SymbolState, batch: QuoteBatch) -> None:
        cut = int(batch.ts[0]) - self._window_ns - self._max_md_ns
        keep = int(np.searchsorted(sym.q_ts, cut, "right"))
        mids = np.log((batch.bid + batch.ask) / 2.0)
        sym.q_ts = np.concatenate((sym.q_ts[keep:], batch.ts))
        sym.q_logmid = np.concatenate((sym.q_logmid[keep:], mids))

    def _roll_trades(self, sym: _SymbolState, batch: TradeBatch) -> None:
        cut = int(batch.ts[0]) - self._window_ns - self._max_md_ns
        keep = int(np.searchsorted(sym.t_ts, cut, "right"))
        sym.t_ts = np.concatenate((sym.t_ts[keep:], batch.ts))
        sym.t_price = np.concatenate((sym.t_price[keep:], batch.price))
        sym.t_size = np.concatenate((sym.t_size[keep:], batch.size))

    # --- state changes -----------------------------------------------------------------------------

    def _fill(self, st: _OrderState, ts: int, qty: float, price: float, liquidity: Liquidity) -> None:
        route = st.route
        assert route is not None
        leaves = st.leaves
        if qty >= leaves - _EPS * max(1.0, st.order.quantity):
            qty = leaves
        if qty <= 0:
            return
        side = st.order.side
        notional = qty * price
        bps = route.maker_bps if liquidity is Liquidity.MAKER else route.taker_bps
        fee = notional * bps / 1e4
        if fee > 0:
            fee = max(fee, route.min_fee)
        mid = st.arrival_mid
        slippage = side.sign * (price - mid) / mid * 1e4 if mid > 0 else 0.0
        st.n_fills += 1
        fill = Fill(f"{st.order.client_order_id}-{st.n_fills}", st.order.client_order_id, st.order.symbol, side,
                    ts, qty, price, mid, slippage, fee, liquidity, route.route_id)
        complete = qty == leaves
        st.filled = st.order.quantity if complete else st.filled + qty
        st.notional += notional
        st.fills.append(fill)
        self._emit(ts, fill)
        status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
        self._transition(st, ts, status)
        if complete:
            self._done(st)

    def _transition(self, st: _OrderState, ts: int, status: OrderStatus, reason: str = "", detail: str = "") -> None:
        check_order_transition(st.order.client_order_id, st.status, status)
        st.status = status
        if reason:
            st.reason = reason
        leaves = 0.0 if status in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                   OrderStatus.EXPIRED) else st.leaves
        self._emit(ts, OrderEvent(ts, st.order.client_order_id, status, reason, detail, st.filled, leaves))

    def _reject(self, st: _OrderState, ts: int, reason: RejectReason, detail: str) -> None:
        self._emit(ts, Incident(ts, reason, st.order.symbol, st.order.route_id, st.order.client_order_id, detail))
        self._transition(st, ts, OrderStatus.REJECTED, reason, detail)
        self._done(st)

    def _cancel(self, st: _OrderState, ts: int, reason: CancelReason) -> None:
        self._transition(st, ts, OrderStatus.CANCELLED, reason)
        self._done(st)

    def _expire(self, st: _OrderState, ts: int, reason: ExpireReason) -> None:
        self._transition(st, ts, OrderStatus.EXPIRED, reason)
        self._done(st)

    def _finish_deadline(self, st: _OrderState) -> None:
        if st.deadline_is_cancel:
            self._cancel(st, st.deadline, CancelReason.REQUESTED)
        else:
            self._expire(st, st.deadline, ExpireReason.END_OF_DAY)

    def _disconnect(self, route_id: str, ts: int) -> None:
        for sym in self._symbols.values():
            for other in list(sym.orders):
                if other.order.route_id == route_id and other.phase != _DONE:
                    if other.status is OrderStatus.NEW:
                        self._reject(other, ts, RejectReason.SIMULATED_DISCONNECT, "route disconnected")
                    else:
                        self._cancel(other, ts, CancelReason.DISCONNECT)

    def _done(self, st: _OrderState) -> None:
        st.phase = _DONE
        sym = self._symbols.get(st.order.symbol)
        if sym is not None and st in sym.orders:
            sym.orders.remove(st)

    # --- helpers ---------------------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> _SymbolState:
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = _SymbolState(symbol)
        return sym

    @staticmethod
    def _batch_quote(batch: QuoteBatch, base: int, i: int) -> _QuoteView:
        return _QuoteView(base + i, int(batch.ts[i]), float(batch.bid[i]), float(batch.ask[i]),
                          float(batch.bid_size[i]), float(batch.ask_size[i]))

    @staticmethod
    def _md(st: _OrderState) -> int:
        return st.route.market_data_latency_ns if st.route else 0

    def _keep_tail(self, sym: _SymbolState, batch: QuoteBatch, base: int) -> None:
        """Keep the quotes needed to answer "which quote was visible at t" one latency back."""
        if sym.tail is None or self._max_md_ns == 0:
            merged, merged_base = batch, base
        else:
            t = sym.tail
            merged = QuoteBatch(batch.symbol, np.concatenate((t.ts, batch.ts)), np.concatenate((t.bid, batch.bid)),
                                np.concatenate((t.ask, batch.ask)), np.concatenate((t.bid_size, batch.bid_size)),
                                np.concatenate((t.ask_size, batch.ask_size)))
            merged_base = sym.tail_base
        n = len(merged)
        # the quote in force at (last - max latency) and everything after it
        first = int(np.searchsorted(merged.ts, int(merged.ts[-1]) - self._max_md_ns, "right")) - 1
        first = min(max(first, 0), n - 1)
        sym.tail = merged.slice(first, n)
        sym.tail_base = merged_base + first

    @staticmethod
    def _visible_quote(sym: _SymbolState, t: int, md: int) -> _QuoteView | None:
        """The latest quote the venue simulator had received by ``t`` (exchange ts + ``md`` <= t),
        with its time expressed in that same received-time scale."""
        tail = sym.tail
        if tail is None:
            return None
        i = int(np.searchsorted(tail.ts, t - md, "right")) - 1
        if i < 0:
            return None
        return _QuoteView(sym.tail_base + i, int(tail.ts[i]) + md, float(tail.bid[i]), float(tail.ask[i]),
                          float(tail.bid_size[i]), float(tail.ask_size[i]))

    def _emit(self, ts: int, event: BrokerEvent) -> None:
        self._events.append((ts, self._emitted, event))
        self._emitted += 1

    def _drain(self) -> list[BrokerEvent]:
        events = self._events
        self._events = []
        events.sort(key=lambda e: (e[0], e[1]))
        return [e[2] for e in events]
