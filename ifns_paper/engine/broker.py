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

Market-data latency (per route) delays only what the *strategy* sees: the
session engine stamps a decision taken on data of time ``t`` at ``t + md``
(``SessionEngine``). The venue is not late: orders fill against the true
market at their arrival (exchange time), resting orders react to data at
its exchange time, cancels take effect ``cancel_latency`` after they are
sent, and staleness is ``arrival − quote time``.

Fill models (per route, see ``config/policies/execution_routes.json``)
--------------------------------------------------------------------
* touch: an order takes from a finite book per quote: the displayed size
  at the touch, then ``depth_levels`` synthetic levels, each
  ``depth_impact_bps`` (of the touch) worse than the last and as large as
  the side's *typical* displayed size — the median of its size at the end
  of each of the last ``depth_window`` whole seconds and of the current
  quote's (sampled once a second: independent of batching). ``walk`` takes
  that book; ``rest`` only the displayed size; ``reject`` refuses orders
  larger than what is displayed. What one quote's book cannot give is not
  filled there: a DAY/GTC market order's remainder takes later quotes' books
  the same way, IOC cancels it, FOK fills nothing unless all of it fits.
* liquidity taken stays taken: per symbol and side the broker remembers how
  much was taken at which touch price; later quotes at that price show that
  much less (from the top of the book), refilling linearly over
  ``refill`` since the last take; a new touch price is a new level (nothing
  taken). Marketable limits take the same book up to their limit.
* vwap: from arrival, time is cut into ``interval`` slices; at the end of
  each, the order fills ``min(leaves, max_participation × volume traded in
  the slice after arrival)`` at the slice's VWAP plus half the spread in
  force; the remainder carries over or expires.
* sqrt_impact: price = mid × (1 ± (half_spread/mid + k·σ_W·sqrt(Q/V_W))),
  σ_W the realized volatility of log mid over the last ``window`` and V_W
  the traded volume over the same window (the square-root law of Almgren,
  Thum, Hauptmann & Li 2005 and Tóth et al. 2011; measuring σ and V on the
  same horizon makes the horizon cancel out). One fill takes at most
  ``max_window_share × V_W``; a DAY/GTC remainder fills at the end of each
  ``interval`` at most that share of the slice's volume, at the impact
  price of that child; IOC cancels it, FOK fills nothing. A marketable
  limit pays the same impact for the largest quantity whose price stays
  within its limit, and rests with the rest.
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
import statistics
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from ifns_paper.engine.determinism import uniform
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.orders import (
    TERMINAL_ORDER_STATUSES,
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
SECOND_NS = 1_000_000_000
_INF = np.iinfo(np.int64).max
_EPS = 1e-12

# Order phases
_PENDING = 0  # submitted, not yet arrived
_WORKING = 1  # accepted, resting / triggering / participating
_DONE = 2

_BID, _ASK = 0, 1  # the side an order takes: sells take the bid, buys the ask


@dataclass(slots=True)
class _QuoteView:
    """The quote in force at some time."""

    ts: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@dataclass(slots=True)
class _Taken:
    """Liquidity taken from one side of a symbol's book: ``amount`` at touch ``price`` as of
    ``ts`` (after the last take); it refills linearly from there."""

    price: float
    amount: float
    ts: int


@dataclass(slots=True)
class _SymbolState:
    symbol: str
    tail: QuoteBatch | None = None  # the latest quotes (the one in force at any time one interval back)
    data_ts: int = -1  # latest exchange time covered by data of this symbol
    taken: list = field(default_factory=lambda: [None, None])  # per side (_BID, _ASK): _Taken | None
    orders: list[_OrderState] = field(default_factory=list)  # not done, in submission order
    # displayed sizes at the end of each whole second (typical sizes of the synthetic depth)
    s_sec: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    s_bid: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    s_ask: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    # rolling windows for volume- and volatility-aware routes
    q_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    q_logmid: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    t_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    t_price: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    t_size: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    # Checkpoints hold this state: by field name, so that a field added later gets its default.
    def __getstate__(self) -> dict:
        return _state_of(self)

    def __setstate__(self, state: dict | tuple) -> None:
        _restore(self, state)


def _state_of(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _restore(obj, state: dict | tuple) -> None:
    """A checkpointed state by field name; pickled by slot before (``(dict or None, slots)``).
    A field added since gets its default; one no longer kept is dropped."""
    if isinstance(state, tuple):
        state = {**(state[0] or {}), **state[1]}
    for f in fields(obj):
        if f.name in state:
            value = state[f.name]
        else:
            value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        object.__setattr__(obj, f.name, value)


@dataclass(slots=True, eq=False)  # an order's state is itself: compared (and removed from lists) by identity
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
    kind: str = ""  # "limit" | "stop" | "rest" | "vwap" | "impact"
    limit: float = math.nan  # working limit price (limit / triggered stop-limit)
    queue_ahead: float = 0.0
    touch_draws: int = 0
    active_from: int = 0  # react to data with ts > active_from (the arrival or trigger time)
    deadline: int = _INF  # cancel or expiry time
    deadline_is_cancel: bool = False
    vwap_end: int = 0  # end of the current participation interval (vwap, impact)

    @property
    def leaves(self) -> float:
        return self.order.quantity - self.filled

    def __getstate__(self) -> dict:
        return _state_of(self)

    def __setstate__(self, state: dict | tuple) -> None:
        _restore(self, state)


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
        self._windows(routes)

    def _windows(self, routes: dict[str, RouteSpec]) -> None:
        """How much history the models need: the impact/participation windows, the quotes one
        interval back (the quote in force at an interval's end), whole seconds of sizes."""
        windows = [r.window_ns for r in routes.values() if r.model is FillModel.SQRT_IMPACT]
        windows += [10 * r.interval_ns for r in routes.values() if r.model is FillModel.VWAP]
        self._window_ns = max(windows, default=0)
        self._tail_ns = max((r.interval_ns for r in routes.values()
                             if r.model in (FillModel.VWAP, FillModel.SQRT_IMPACT)), default=0)
        self._size_window_s = max((max(1, r.depth_window_ns // SECOND_NS) for r in routes.values()), default=1)

    def __setstate__(self, state: dict) -> None:
        """Brokers checkpointed before market-data latency left the venue side get the
        windows the routes need now (``_SymbolState`` converts its own state)."""
        self.__dict__.update(state)
        self.__dict__.pop("_max_md_ns", None)
        if "_tail_ns" not in state:
            self._windows(self.routes)

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
        known = self._symbols.get(order.symbol)
        sym_ts = known.data_ts if known is not None else -1
        if ts < sym_ts:
            raise ValueError(
                f"order {order.client_order_id!r} submitted at {ts}, before market data already "
                f"processed for {order.symbol} (up to {sym_ts}): that would be look-ahead"
            )
        route = self.routes.get(order.route_id)
        st = _OrderState(order, route, self._seq, ts, ts + (route.insert_latency_ns if route else 0))
        self._seq += 1
        self._orders[order.client_order_id] = st
        self._emit(ts, OrderEvent(ts, order.client_order_id, OrderStatus.NEW, "", "", 0.0, order.quantity))
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
            if st.arrival_ts <= sym.data_ts:  # the data covering the arrival is already here
                self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts))
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
        if st.deadline <= sym.data_ts:
            self._finish_deadline(st)
        return self._drain()

    def on_quotes(self, batch: QuoteBatch) -> list[BrokerEvent]:
        if len(batch) == 0:
            return []
        sym = self._symbol(batch.symbol)
        # before the orders: an arrival inside this batch sees the data up to it (never after)
        if self._window_ns:
            self._roll_quotes(sym, batch)
        self._roll_sizes(sym, batch)
        if sym.orders:
            takers = sum(1 for st in sym.orders if st.phase == _PENDING or st.kind in ("rest", "stop"))
            if takers > 1:
                # Orders that may take liquidity compete for each quote's book and for what
                # earlier quotes left of it: in time order, quote by quote — the arrivals before
                # a quote first, then the quote for each order, the first to reach the venue first.
                for j in range(len(batch)):
                    t = int(batch.ts[j])
                    for st in _by_arrival(sym.orders):
                        if st.phase == _PENDING and st.arrival_ts < t:
                            self._run_time(st, sym, t - 1)
                    one = batch.slice(j, j + 1)
                    for st in _by_arrival(sym.orders):
                        self._run_quotes(st, sym, one)
                    self._keep_tail(sym, one)
                sym.data_ts = max(sym.data_ts, int(batch.ts[-1]))
                return self._drain()
            for st in _by_arrival(sym.orders):
                self._run_quotes(st, sym, batch)
        self._keep_tail(sym, batch)
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
                self._run_time(st, sym, ts)
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

    def _run_quotes(self, st: _OrderState, sym: _SymbolState, batch: QuoteBatch) -> None:
        ts = batch.ts
        t_end = int(ts[-1])
        start = 0
        if st.phase == _PENDING:
            if st.arrival_ts > t_end:
                return
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)  # cancelled before it reached the venue
                return
            i = int(ts.searchsorted(st.arrival_ts, "right")) - 1
            quote = self._batch_quote(batch, i) if i >= 0 else self._visible_quote(sym, st.arrival_ts)
            self._resolve_arrival(st, sym, quote)
            start = i + 1
        while st.phase == _WORKING:
            stop = int(ts.searchsorted(st.deadline, "left")) if st.deadline <= t_end else len(ts)
            lo = max(start, int(ts.searchsorted(st.active_from, "right")))
            if lo < stop:
                if st.kind == "limit":
                    self._limit_vs_quotes(st, batch, lo, stop)
                elif st.kind == "stop":
                    self._stop_vs_quotes(st, sym, batch, lo, stop)
                    if st.phase == _WORKING and st.kind != "stop":
                        start = lo
                        continue  # triggered: the new working kind reacts to the following quotes
                elif st.kind == "rest":
                    self._rest_vs_quotes(st, sym, batch, lo, stop)
            if st.kind in ("vwap", "impact") and st.phase == _WORKING:
                self._close_intervals(st, sym, min(t_end, st.deadline - 1), batch=batch)
            break
        if st.phase == _WORKING and st.deadline <= t_end:
            self._finish_deadline(st)

    def _run_trades(self, st: _OrderState, sym: _SymbolState, batch: TradeBatch) -> None:
        t_end = int(batch.ts[-1])
        if st.phase == _PENDING:
            if st.arrival_ts > t_end:
                return
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)
                return
            self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts))
        if st.phase != _WORKING:
            return
        limit_ts = min(t_end, st.deadline - 1)
        hi = int(batch.ts.searchsorted(limit_ts, "right"))
        while st.phase == _WORKING:
            # prints at or before arrival (or a stop's trigger) do not count
            lo = int(batch.ts.searchsorted(st.active_from, "right"))
            if st.kind in ("vwap", "impact"):
                self._close_intervals(st, sym, limit_ts)  # the trades are in the rolling window already
            elif lo < hi:
                if st.kind == "limit":
                    self._limit_vs_trades(st, batch, lo, hi)
                elif st.kind == "stop":
                    self._stop_vs_trades(st, sym, batch, lo, hi)
                    if st.phase == _WORKING and st.kind != "stop":
                        continue  # triggered: the new working kind reacts to the prints after the trigger
            break
        if st.phase == _WORKING and st.deadline <= t_end:
            self._finish_deadline(st)

    def _run_time(self, st: _OrderState, sym: _SymbolState, now: int) -> None:
        if st.phase == _PENDING and st.arrival_ts <= now:
            if st.deadline <= st.arrival_ts and st.deadline_is_cancel:
                self._finish_deadline(st)
                return
            self._resolve_arrival(st, sym, self._visible_quote(sym, st.arrival_ts))
        if st.phase == _WORKING and st.kind in ("vwap", "impact"):
            self._close_intervals(st, sym, min(now, st.deadline - 1))
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
        age = now - quote.ts
        if age > route.stale_ns:
            return self._reject(st, now, RejectReason.STALE_QUOTE,
                                f"quote is {age / 1e6:.0f} ms old (limit {route.stale_ns / 1e6:.0f} ms)")
        if quote.bid > quote.ask:
            return self._reject(st, now, RejectReason.CROSSED_QUOTE, f"bid {quote.bid} > ask {quote.ask}")
        if quote.bid == quote.ask:
            return self._reject(st, now, RejectReason.LOCKED_QUOTE, f"bid == ask == {quote.bid}")
        st.arrival_mid = quote.mid
        needs_volume = route.model in (FillModel.VWAP, FillModel.SQRT_IMPACT) and order.order_type is OrderType.MARKET
        if needs_volume and self._window_volume(sym, now, self._volume_window(route)) <= 0:
            return self._reject(st, now, RejectReason.ZERO_VOLUME, "no traded volume in the model window")
        if route.reject_probability and uniform(self.seed, order.client_order_id, "reject") < route.reject_probability:
            return self._reject(st, now, RejectReason.SIMULATED_REJECT, "seeded random reject")
        if route.disconnect_probability and (
            uniform(self.seed, order.client_order_id, "disconnect") < route.disconnect_probability
        ):
            self._reject(st, now, RejectReason.SIMULATED_DISCONNECT, "seeded random disconnect")
            return self._disconnect(route.route_id, now)
        if order.order_type is OrderType.MARKET and route.model is FillModel.TOUCH and route.beyond_displayed == "reject":
            available = self._displayed_left(sym, quote, order.side, now, route)
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
            self._impact_take(st, sym, quote, now, limit=None)
            if st.phase == _WORKING:
                st.kind = "impact"
                st.vwap_end = now + route.interval_ns
        elif route.model is FillModel.VWAP:
            st.kind = "vwap"
            st.vwap_end = now + route.interval_ns
            if tif is TimeInForce.FOK:
                self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
        else:
            walk = route.beyond_displayed == "walk"
            if tif is TimeInForce.FOK and self._fillable(sym, quote, st.order.side, now, route, None, walk) < st.leaves - _EPS:
                return self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
            self._take(st, sym, quote, now, limit=None, walk=walk)
            if st.phase == _WORKING:
                if tif in (TimeInForce.IOC, TimeInForce.FOK):
                    self._cancel(st, now, CancelReason.IOC_REMAINDER)
                else:
                    st.kind = "rest"

    def _execute_limit(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int, limit: float) -> None:
        route = st.route
        assert route is not None
        side, tif = st.order.side, st.order.time_in_force
        marketable = quote.ask <= limit if side is Side.BUY else quote.bid >= limit
        if route.model is FillModel.SQRT_IMPACT:
            if marketable:
                self._impact_take(st, sym, quote, now, limit=limit)
        else:
            walk = route.beyond_displayed == "walk"
            if tif is TimeInForce.FOK and self._fillable(sym, quote, side, now, route, limit, walk) < st.leaves - _EPS:
                return self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
            if marketable:
                self._take(st, sym, quote, now, limit=limit, walk=walk)
        if st.phase != _WORKING:
            return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            return self._cancel(st, now, CancelReason.IOC_REMAINDER)
        st.kind, st.limit = "limit", limit
        own_touch = quote.bid if side is Side.BUY else quote.ask
        own_size = quote.bid_size if side is Side.BUY else quote.ask_size
        improves = limit > own_touch if side is Side.BUY else limit < own_touch
        st.queue_ahead = 0.0 if (marketable or improves or route.queue_ahead == "none") else own_size

    # --- taking liquidity: a finite book per quote, taken liquidity remembered ------------------

    def _taken_now(self, sym: _SymbolState, side: Side, touch: float, now: int, route: RouteSpec) -> float:
        """How much of the book at ``touch`` is still gone at ``now`` (refilling linearly)."""
        taken = sym.taken[_ASK if side is Side.BUY else _BID]
        if taken is None or taken.price != touch or route.refill_ns <= 0:
            return 0.0
        left = 1.0 - (now - taken.ts) / route.refill_ns
        return taken.amount * left if left > 0 else 0.0

    def _typical_size(self, sym: _SymbolState, quote: _QuoteView, side: Side, route: RouteSpec) -> float:
        """The size of one synthetic level: the median of the side's displayed size at the end
        of each of the last ``depth_window`` whole seconds and of this quote's."""
        own = quote.ask_size if side is Side.BUY else quote.bid_size
        sec = quote.ts // SECOND_NS
        lo = int(sym.s_sec.searchsorted(sec - max(1, route.depth_window_ns // SECOND_NS), "left"))
        hi = int(sym.s_sec.searchsorted(sec, "left"))
        if hi <= lo:
            return own
        sizes = (sym.s_ask if side is Side.BUY else sym.s_bid)[lo:hi].tolist()
        sizes.append(own)
        return statistics.median(sizes)

    def _segments(self, sym: _SymbolState, quote: _QuoteView, side: Side, route: RouteSpec, walk: bool,
                  start: float, limit: float | None):
        """One quote's book on ``side`` from ``start`` (what is already taken) down, within
        ``limit``: ``(price, quantity)`` per level — the displayed size at the touch, then
        (walking) ``depth_levels`` synthetic levels of the typical size, each ``depth_impact_bps``
        worse. Lazy: the typical size is only looked up when an order goes beyond the touch."""
        sign = side.sign
        touch = quote.ask if side is Side.BUY else quote.bid
        displayed = max(quote.ask_size if side is Side.BUY else quote.bid_size, 0.0)
        if start < displayed:
            if limit is not None and (touch - limit) * sign > 0:
                return
            yield touch, displayed - start
            start = displayed
        levels = route.depth_levels if walk else 0
        if levels <= 0:
            return
        size = max(self._typical_size(sym, quote, side, route), 0.0)
        step = touch * route.depth_impact_bps / 1e4
        if size <= 0:
            return
        k = int((start - displayed) // size) + 1
        while k <= levels:
            price = touch + sign * step * k
            if limit is not None and (price - limit) * sign > 0:
                return
            left = displayed + k * size - start
            if left > _EPS * max(1.0, size):
                yield price, left
                start += left
            k += 1

    def _fillable(self, sym: _SymbolState, quote: _QuoteView, side: Side, now: int, route: RouteSpec,
                  limit: float | None, walk: bool) -> float:
        """What one quote's book could give an order now (within ``limit``)."""
        touch = quote.ask if side is Side.BUY else quote.bid
        start = self._taken_now(sym, side, touch, now, route)
        return sum(q for _, q in self._segments(sym, quote, side, route, walk, start, limit))

    def _displayed_left(self, sym: _SymbolState, quote: _QuoteView, side: Side, now: int, route: RouteSpec) -> float:
        return self._fillable(sym, quote, side, now, route, None, walk=False)

    def _take(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int, *,
              limit: float | None, walk: bool) -> None:
        """Take one quote's book (displayed size, then synthetic levels when walking) from
        what is already gone, within ``limit``; remember what was taken."""
        route = st.route
        assert route is not None
        side = st.order.side
        touch = quote.ask if side is Side.BUY else quote.bid
        start = self._taken_now(sym, side, touch, now, route)
        displayed = quote.ask_size if side is Side.BUY else quote.bid_size
        if st.leaves <= displayed - start and (limit is None or (touch - limit) * side.sign <= 0):
            took = st.leaves  # the usual case: the displayed size is enough
            self._fill(st, now, took, touch, Liquidity.TAKER)
            sym.taken[_ASK if side is Side.BUY else _BID] = _Taken(touch, start + took, now)
            return
        took = 0.0
        for price, available in self._segments(sym, quote, side, route, walk, start, limit):
            qty = min(st.leaves, available)
            took += qty
            self._fill(st, now, qty, price, Liquidity.TAKER)
            if st.phase != _WORKING:
                break
        if took > 0:
            sym.taken[_ASK if side is Side.BUY else _BID] = _Taken(touch, start + took, now)

    def _rest_vs_quotes(self, st: _OrderState, sym: _SymbolState, batch: QuoteBatch, lo: int, stop: int) -> None:
        """A market remainder takes each later quote's book (what is left of it) until done."""
        route = st.route
        assert route is not None
        walk = route.beyond_displayed == "walk"
        sizes = batch.ask_size if st.order.side is Side.BUY else batch.bid_size
        tradable = batch.bid[lo:stop] < batch.ask[lo:stop]  # no trading on a crossed or locked book
        candidates = np.flatnonzero(tradable if walk else tradable & (sizes[lo:stop] > 0)) + lo
        for j in candidates:
            self._take(st, sym, self._batch_quote(batch, int(j)), int(batch.ts[j]), limit=None, walk=walk)
            if st.phase != _WORKING:
                return

    # --- resting limits ----------------------------------------------------------------------------

    def _limit_vs_quotes(self, st: _OrderState, batch: QuoteBatch, lo: int, stop: int) -> None:
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

    def _stop_vs_quotes(self, st: _OrderState, sym: _SymbolState, batch: QuoteBatch, lo: int, stop: int) -> None:
        if st.order.side is Side.BUY:
            hit = np.flatnonzero(batch.ask[lo:stop] >= st.order.stop_price)
        else:
            hit = np.flatnonzero(batch.bid[lo:stop] <= st.order.stop_price)
        if len(hit):
            j = lo + int(hit[0])
            self._trigger(st, sym, self._batch_quote(batch, j), int(batch.ts[j]))

    def _stop_vs_trades(self, st: _OrderState, sym: _SymbolState, batch: TradeBatch, lo: int, hi: int) -> None:
        price = batch.price[lo:hi]
        hit = np.flatnonzero(price >= st.order.stop_price if st.order.side is Side.BUY else price <= st.order.stop_price)
        if len(hit):
            j = lo + int(hit[0])
            self._trigger(st, sym, self._visible_quote(sym, int(batch.ts[j])), int(batch.ts[j]))

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

    # --- participation intervals (vwap; the remainder of an impact order) -------------------------

    def _close_intervals(self, st: _OrderState, sym: _SymbolState, upto: int, *, batch=None) -> None:
        while st.phase == _WORKING and st.vwap_end <= upto:
            quote = None
            if batch is not None:
                i = int(batch.ts.searchsorted(st.vwap_end, "right")) - 1
                quote = self._batch_quote(batch, i) if i >= 0 else None
            self._close_interval(st, sym, quote)

    def _close_interval(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView | None = None) -> None:
        route = st.route
        assert route is not None
        end = st.vwap_end
        quote = quote or self._visible_quote(sym, end)
        # the interval's prints: from its start (after arrival) to before its end, read from the
        # rolling window (the same sums however the trades came in batches)
        lo = max(int(sym.t_ts.searchsorted(end - route.interval_ns, "left")),
                 int(sym.t_ts.searchsorted(st.active_from, "right")))
        hi = int(sym.t_ts.searchsorted(end, "left"))
        volume = float(sym.t_size[lo:hi].sum()) if hi > lo else 0.0
        if volume > 0 and quote is not None:
            if st.kind == "impact":
                qty = min(st.leaves, route.max_window_share * volume)
                if qty > 0:
                    self._fill(st, end, qty, self._impact_price(sym, quote, end, route, st.order.side, qty),
                               Liquidity.TAKER)
            else:
                qty = min(st.leaves, route.max_participation * volume)
                vwap = float((sym.t_size[lo:hi] * sym.t_price[lo:hi]).sum()) / volume
                half_spread = (quote.ask - quote.bid) / 2.0
                if qty > 0:
                    self._fill(st, end, qty, vwap + st.order.side.sign * half_spread, Liquidity.TAKER)
        st.vwap_end = end + route.interval_ns
        if st.kind == "vwap" and st.phase == _WORKING and (
                route.remainder == "expire" or st.order.time_in_force is TimeInForce.IOC):
            if route.remainder == "expire":
                self._expire(st, end, ExpireReason.PARTICIPATION_REMAINDER)
            else:
                self._cancel(st, end, CancelReason.IOC_REMAINDER)

    # --- square-root impact --------------------------------------------------------------------------

    def _volume_window(self, route: RouteSpec) -> int:
        return route.window_ns if route.model is FillModel.SQRT_IMPACT else 10 * route.interval_ns

    def _window_volume(self, sym: _SymbolState, now: int, window: int) -> float:
        lo = int(sym.t_ts.searchsorted(now - window, "right"))
        hi = int(sym.t_ts.searchsorted(now, "right"))
        return float(sym.t_size[lo:hi].sum())

    def _impact_inputs(self, sym: _SymbolState, now: int, window: int) -> tuple[float, float]:
        """Realized variance of log mid and traded volume over ``(now - window, now]``."""
        lo = int(sym.q_ts.searchsorted(now - window, "right"))
        hi = int(sym.q_ts.searchsorted(now, "right"))
        logmid = sym.q_logmid[lo:hi]
        realized_var = float(np.square(np.diff(logmid)).sum()) if len(logmid) > 1 else 0.0
        return realized_var, self._window_volume(sym, now, window)

    def _impact_price(self, sym: _SymbolState, quote: _QuoteView, now: int, route: RouteSpec, side: Side,
                      qty: float) -> float:
        realized_var, volume = self._impact_inputs(sym, now, route.window_ns)
        mid = quote.mid
        half_spread_frac = (quote.ask - quote.bid) / 2.0 / mid
        impact_frac = route.impact_k * math.sqrt(realized_var * qty / volume) if volume > 0 else 0.0
        return mid * (1.0 + side.sign * (half_spread_frac + impact_frac))

    def _impact_take(self, st: _OrderState, sym: _SymbolState, quote: _QuoteView, now: int, *,
                     limit: float | None) -> None:
        """The arrival fill on an impact route: at most ``max_window_share`` of the window's
        volume and, for a limit, no more than keeps the impact price within it. FOK: all or
        nothing; IOC: the rest is cancelled."""
        route = st.route
        assert route is not None
        side, tif = st.order.side, st.order.time_in_force
        realized_var, volume = self._impact_inputs(sym, now, route.window_ns)
        qty = min(st.leaves, route.max_window_share * volume)
        if limit is not None:
            mid = quote.mid
            room = side.sign * (limit / mid - 1.0) - (quote.ask - quote.bid) / 2.0 / mid
            if room < 0:
                qty = 0.0
            elif realized_var > 0 and route.impact_k > 0:
                qty = min(qty, volume * (room / route.impact_k) ** 2 / realized_var)
        if tif is TimeInForce.FOK and qty < st.leaves - _EPS * max(1.0, st.order.quantity):
            return self._cancel(st, now, CancelReason.FOK_NOT_FILLABLE)
        if qty > 0:
            price = self._impact_price(sym, quote, now, route, side, qty)
            if limit is not None and (price - limit) * side.sign > 0:
                price = limit  # the bound above, up to rounding
            self._fill(st, now, qty, price, Liquidity.TAKER)
        if st.phase == _WORKING and tif is TimeInForce.IOC:
            self._cancel(st, now, CancelReason.IOC_REMAINDER)

    def _roll_quotes(self, sym: _SymbolState, batch: QuoteBatch) -> None:
        cut = self._history_cut(sym, int(batch.ts[0]))
        keep = int(sym.q_ts.searchsorted(cut, "right"))
        mids = np.log((batch.bid + batch.ask) / 2.0)
        sym.q_ts = np.concatenate((sym.q_ts[keep:], batch.ts))
        sym.q_logmid = np.concatenate((sym.q_logmid[keep:], mids))

    def _roll_trades(self, sym: _SymbolState, batch: TradeBatch) -> None:
        cut = self._history_cut(sym, int(batch.ts[0]))
        keep = int(sym.t_ts.searchsorted(cut, "right"))
        sym.t_ts = np.concatenate((sym.t_ts[keep:], batch.ts))
        sym.t_price = np.concatenate((sym.t_price[keep:], batch.price))
        sym.t_size = np.concatenate((sym.t_size[keep:], batch.size))

    def _history_cut(self, sym: _SymbolState, first_ts: int) -> int:
        """Data older than this is no longer needed: one window before the new data, or
        before the start of an interval still to close (its fill looks at the window then)."""
        start = first_ts
        for st in sym.orders:
            if st.kind in ("vwap", "impact") and st.route is not None:
                start = min(start, st.vwap_end - st.route.interval_ns)
        return start - self._window_ns

    def _roll_sizes(self, sym: _SymbolState, batch: QuoteBatch) -> None:
        """Each whole second's last displayed sizes (the typical sizes of the synthetic
        depth); a second still open is replaced when more of it comes."""
        first, last_sec = int(batch.ts[0]) // SECOND_NS, int(batch.ts[-1]) // SECOND_NS
        if first == last_sec and len(sym.s_sec) and int(sym.s_sec[-1]) == last_sec:
            sym.s_bid[-1], sym.s_ask[-1] = batch.bid_size[-1], batch.ask_size[-1]  # the same second, further
            return
        secs = batch.ts // SECOND_NS
        ends = np.flatnonzero(secs[1:] != secs[:-1])
        last = np.append(ends, len(secs) - 1)
        new_sec, new_bid, new_ask = secs[last], batch.bid_size[last], batch.ask_size[last]
        old = len(sym.s_sec)
        if old and sym.s_sec[-1] >= new_sec[0]:
            old -= 1  # the same second, seen further now
        keep = int(sym.s_sec[:old].searchsorted(int(new_sec[-1]) - self._size_window_s, "left"))
        sym.s_sec = np.concatenate((sym.s_sec[keep:old], new_sec))
        sym.s_bid = np.concatenate((sym.s_bid[keep:old], new_bid))
        sym.s_ask = np.concatenate((sym.s_ask[keep:old], new_ask))

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
        leaves = 0.0 if status in TERMINAL_ORDER_STATUSES else st.order.quantity - st.filled
        self._events.append((ts, self._emitted,
                             OrderEvent(ts, st.order.client_order_id, status, reason, detail, st.filled, leaves)))
        self._emitted += 1

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
        if sym is not None and st in sym.orders:  # by identity (eq=False)
            sym.orders.remove(st)

    # --- helpers ---------------------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> _SymbolState:
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = _SymbolState(symbol)
        return sym

    @staticmethod
    def _batch_quote(batch: QuoteBatch, i: int) -> _QuoteView:
        return _QuoteView(int(batch.ts[i]), float(batch.bid[i]), float(batch.ask[i]),
                          float(batch.bid_size[i]), float(batch.ask_size[i]))

    def _keep_tail(self, sym: _SymbolState, batch: QuoteBatch) -> None:
        """Keep the quotes needed to answer "which quote was in force at t" for t one
        participation interval back (the end of an interval closed by later data)."""
        if self._tail_ns == 0:  # only the last quote is ever asked for
            n = len(batch)
            sym.tail = batch.slice(n - 1, n)
            return
        if sym.tail is None:
            merged = batch
        else:
            t = sym.tail
            merged = QuoteBatch(batch.symbol, np.concatenate((t.ts, batch.ts)), np.concatenate((t.bid, batch.bid)),
                                np.concatenate((t.ask, batch.ask)), np.concatenate((t.bid_size, batch.bid_size)),
                                np.concatenate((t.ask_size, batch.ask_size)))
        n = len(merged)
        # the quote in force at (last - interval) and everything after it
        first = int(merged.ts.searchsorted(int(merged.ts[-1]) - self._tail_ns, "right")) - 1
        first = min(max(first, 0), n - 1)
        sym.tail = merged.slice(first, n)

    @staticmethod
    def _visible_quote(sym: _SymbolState, t: int) -> _QuoteView | None:
        """The quote in force at ``t`` (the latest with ``ts <= t``)."""
        tail = sym.tail
        if tail is None:
            return None
        i = int(tail.ts.searchsorted(t, "right")) - 1
        if i < 0:
            return None
        return _QuoteView(int(tail.ts[i]), float(tail.bid[i]), float(tail.ask[i]),
                          float(tail.bid_size[i]), float(tail.ask_size[i]))

    def _emit(self, ts: int, event: BrokerEvent) -> None:
        self._events.append((ts, self._emitted, event))
        self._emitted += 1

    def _drain(self) -> list[BrokerEvent]:
        events = self._events
        if not events:
            return []
        self._events = []
        events.sort()  # by time, then emission order (unique: the events are never compared)
        return [e[2] for e in events]
