"""One paper session's decision chain: features → MSI → DRA → EI → broker → ledger.

The same object runs a real-time session (a Celery step feeds it the new
stream entries) and a strategy replay (a file fed as fast as possible): only
the clock and the feed differ. It returns telemetry records (spec §6.1) in
time order; the caller numbers and stores them.

Per quote batch of a symbol:
 1. features and MSI signals for every quote (vectorized);
 2. rebalancing points (proposals) found by the blend;
 3. for each proposal, in time order: the broker gets the quotes up to it,
    then the decision is taken at ``quote time + market-data latency`` with
    the position and open orders *then*: the order quantity is the target
    minus position and open orders, rounded to lots; DRA approves, reduces
    or denies it; EI turns an approved quantity into child orders sent at
    their times (TWAP slices later);
 4. the rest of the batch goes to the broker; fills book into the ledger.

Automatic brakes: every DRA breach feeds the cooldown; a drawdown breach
moves the session's kill switch to ``on_drawdown`` (REDUCING by default);
HALTED cancels working orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ifns_paper.engine.broker import DAY_NS, PaperBroker
from ifns_paper.engine.controls import Cooldown, CooldownPolicy, KillSwitches, SwitchState
from ifns_paper.engine.dra import Exposure, OrderIntent, RiskGate, RiskLimits, Verdict
from ifns_paper.engine.ei import ExecutionPolicy, child_orders
from ifns_paper.engine.features import FeatureEngine, FeatureSpec
from ifns_paper.engine.ledger import Ledger
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.msi import Blend, Model, Proposal, Sizing
from ifns_paper.engine.orders import Fill, Incident, Order, OrderEvent, OrderStatus, OrderType, Side
from ifns_paper.engine.replay import ReplayDriver, ScheduledOrder
from ifns_paper.engine.routes import RouteSpec

SERIES_MINUTE_NS = 60_000_000_000  # the series always has a point at every whole minute
DRA_ACTOR = "system:dra"  # the actor of the brakes the engine applies itself (drawdown switch)


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    type: str
    ts: int
    payload: dict


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """The session's state at one equity sample, account currency (``drawdown``: fraction of
    the running peak equity; ``positions``: symbol -> signed quantity, non-zero only)."""

    ts: int
    equity: float
    cash: float
    realized: float
    unrealized: float
    fees: float
    gross: float
    net: float
    drawdown: float
    positions: dict
    marks: dict  # symbol -> last mid delivered (price, quote currency)


@dataclass
class SessionSetup:
    session_id: str
    lane: str
    strategy_id: str
    models: list[tuple[Model, float]]
    limits: RiskLimits
    policy: ExecutionPolicy
    routes: dict[str, RouteSpec]
    vol_target: float = 1e-4
    budget_fraction: float = 0.25  # of lane capital per symbol, capped by the position limit
    lot_sizes: dict[str, float] = field(default_factory=dict)
    default_lot_size: float = 1.0
    min_change_lots: float = 1.0
    min_interval_ns: int = 1_000_000_000
    cooldown: CooldownPolicy = field(default_factory=CooldownPolicy)
    on_drawdown: SwitchState = SwitchState.REDUCING
    features: FeatureSpec = field(default_factory=FeatureSpec)
    starting_cash: float | None = None  # default: the lane capital
    initial_positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 0
    # Equity is sampled on this grid (epoch-aligned): the peak for the drawdown gate, the
    # day's opening equity, the cooldown loss rule. Real time and replay sample alike.
    sample_ns: int = 1_000_000_000


class SessionEngine:
    def __init__(self, setup: SessionSetup) -> None:
        self.setup = setup
        self.features = FeatureEngine(setup.features)
        limits = setup.limits
        budget = min(limits.max_position_notional, setup.budget_fraction * limits.capital)
        self._sizing = {}  # per symbol (lot sizes differ)
        self._budget = budget
        self.blends: dict[str, Blend] = {}
        self.gate = RiskGate(limits)
        self.switches = KillSwitches()
        self.cooldown = Cooldown(setup.cooldown)
        self.broker = PaperBroker(setup.routes, seed=setup.seed)
        cash = limits.capital if setup.starting_cash is None else setup.starting_cash
        self.ledger = Ledger(cash, setup.initial_positions)
        # Real-time engines live for days and are checkpointed: no per-fill lists in the driver.
        self.driver = ReplayDriver(self.broker, self.ledger, keep_slippage=False, on_event=self._on_broker_event,
                                   on_send=self._on_send)
        self.route = setup.routes[setup.policy.route_id]
        self.day = -1
        self.day_start_equity = self.ledger.starting_capital
        self.peak_equity = self.ledger.starting_capital
        self.decisions = 0
        self._next_sample: int | None = None  # the next equity sample time; None before any data
        self._series: list[SeriesPoint] = []  # points sampled, not yet drained
        self._last_quote_ts: dict[str, int] = {}  # symbol -> time of its last quote (data gaps)
        self._bad_run: dict[str, list] = {}  # symbol -> [from_ts, rows, reason] of unusable quotes so far
        self._bad_reports: list[tuple[int, dict]] = []  # bad-quote incidents due with the good quote ending them
        self._out: list[TelemetryRecord] = []
        self._quotes: dict[str, tuple[float, float]] = {}  # symbol -> (bid, ask) last delivered

    def __setstate__(self, state: dict) -> None:
        """Engines checkpointed before the equity grid existed start it at their next data."""
        self.__dict__.update(state)
        self.__dict__.setdefault("_next_sample", None)
        self.__dict__.setdefault("_series", [])
        self.__dict__.setdefault("_last_quote_ts", {})
        self.__dict__.setdefault("_bad_run", {})
        self.__dict__.setdefault("_bad_reports", [])
        if getattr(self.driver, "on_send", None) is None:  # drivers pickled before sends were counted
            self.driver.on_send, self.driver.keep_slippage = self._on_send, False

    # --- feeding ---------------------------------------------------------------------------

    def on_quotes(self, batch: QuoteBatch) -> list[TelemetryRecord]:
        batch = self._screen(batch)
        if len(batch) == 0:
            return []
        self._watermark(int(batch.ts[0]) - 1)
        frame = self.features.update(batch)
        blend = self._blend(batch.symbol)
        cursor = 0
        for proposal in blend.proposals(frame):
            j = proposal.index
            self._deliver(batch.slice(cursor, j + 1))
            cursor = j + 1
            # The other symbols' orders that arrived before this quote are resolved first:
            # the decision sees the fills it would see however the stream was cut.
            self._watermark(proposal.ts - 1)
            self._emit("msi_proposal", proposal.ts, proposal.payload())
            self._decide(proposal, proposal.ts + self.route.market_data_latency_ns)
        if cursor < len(batch):
            self._deliver(batch.slice(cursor, len(batch)))
        return self._drain()

    def on_trades(self, batch: TradeBatch) -> list[TelemetryRecord]:
        if len(batch) == 0:
            return []
        self._watermark(int(batch.ts[0]) - 1)
        self.features.update_trades(batch)
        self._deliver(batch)
        return self._drain()

    def advance_to(self, ts: int) -> list[TelemetryRecord]:
        """A clock: no data at or before ``ts`` will come any more. Child orders due by then
        (TWAP slices) are sent at their own times, arrivals and expiries up to it are
        resolved, and the equity samples up to it are taken, exactly as if data had come."""
        self._watermark(ts)
        return self._drain()

    def compact(self) -> int:
        """Forget finished orders (``PaperBroker.forget_finished``) once their views are no
        longer needed, e.g. after a real-time step has written them: keeps the checkpointed
        state from growing with the number of orders. Returns how many were forgotten."""
        return self.broker.forget_finished()

    def enforce_switches(self, ts: int) -> list[TelemetryRecord]:
        """Apply switch states restored from outside (the database): HALTED cancels working orders."""
        self._apply_switch(ts)
        return self._drain()

    def set_switch(self, scope: str, state: SwitchState | str, *, ts: int, actor: str, reason: str
                   ) -> list[TelemetryRecord]:
        change = self.switches.set(scope, state, ts=ts, actor=actor, reason=reason)
        if change is not None:
            self._emit("kill_switch_change", ts, change.payload())
            self._apply_switch(ts)
        return self._drain()

    def set_cooldown(self, *, active: bool, ts: int, duration_ns: int = 0, actor: str, reason: str
                     ) -> list[TelemetryRecord]:
        """An operator starts (for ``duration_ns``) or ends the cooldown at ``ts``; the change
        is a ``cooldown_state_change`` naming the actor, like the automatic ones."""
        change = self.cooldown.force(ts, active=active, duration_ns=duration_ns, reason=reason)
        if change is not None:
            self._emit("cooldown_state_change", ts, {**change.payload(), "actor": actor})
        return self._drain()

    # --- internals ------------------------------------------------------------------------

    def _blend(self, symbol: str) -> Blend:
        blend = self.blends.get(symbol)
        if blend is None:
            s = self.setup
            lot = s.lot_sizes.get(symbol, s.default_lot_size)
            sizing = Sizing(self._budget, s.vol_target, lot, s.min_change_lots, s.min_interval_ns)
            blend = self.blends[symbol] = Blend(s.models, sizing, id_prefix=f"{s.session_id}-{symbol}")
        return blend

    def _deliver(self, batch: QuoteBatch | TradeBatch) -> None:
        """Give ``batch`` to the broker, taking each equity sample as the data passes its
        grid point (before the first row after it)."""
        ts = batch.ts
        if isinstance(batch, QuoteBatch):
            self._gaps(batch)
            while self._bad_reports and self._bad_reports[0][0] <= int(ts[-1]):
                self._emit("incident", *self._bad_reports.pop(0))
        if self._next_sample is None:  # the first data: the grid starts at or after it
            g = self.setup.sample_ns
            self._next_sample = -(-int(ts[0]) // g) * g
        start, n = 0, len(batch)
        while start < n and int(ts[-1]) > self._next_sample:
            cut = int(ts.searchsorted(self._next_sample, "right"))  # rows at or before the point
            if cut > start:
                self.driver.feed(batch.slice(start, cut))
                start = cut
            self._watermark(int(ts[start]) - 1)
        if start < n:
            self.driver.feed(batch if start == 0 else batch.slice(start, n))
        if isinstance(batch, QuoteBatch):
            i = n - 1
            self._quotes[batch.symbol] = (float(batch.bid[i]), float(batch.ask[i]))

    def _gaps(self, batch: QuoteBatch) -> None:
        """A ``data_gap`` incident for every silence of a symbol's quotes longer than the
        route's stale-quote threshold (orders would be rejected as stale meanwhile), reported
        by the quote that ends it."""
        last = self._last_quote_ts.get(batch.symbol)
        ts = batch.ts.astype(np.int64)
        before = np.concatenate(([last if last is not None else ts[0]], ts[:-1]))
        threshold = self.route.stale_ns
        for i in np.flatnonzero(ts - before > threshold):
            self._emit("incident", int(ts[i]), {
                "kind": "data_gap", "symbol": batch.symbol, "from_ts": int(before[i]), "to_ts": int(ts[i]),
                "gap_ms": (int(ts[i]) - int(before[i])) / 1e6, "threshold_ms": threshold / 1e6})
        self._last_quote_ts[batch.symbol] = int(ts[-1])

    def _screen(self, batch: QuoteBatch) -> QuoteBatch:
        """Feed glitches: rows with a NaN, infinite, zero or negative price are dropped (no
        strategy, mark or fill may see them); crossed quotes stay (the venue was crossed:
        orders arriving meanwhile are rejected). Every run of such rows of a symbol is one
        ``bad_quote`` incident with its span, row count and first reason, reported by the
        first good quote after it (a run may span batches)."""
        bid, ask = batch.bid, batch.ask
        unusable = ~((bid > 0) & (ask > 0) & np.isfinite(bid) & np.isfinite(ask))
        bad = unusable | (bid > ask)
        run = self._bad_run.get(batch.symbol)
        if run is None and not bad.any():
            return batch
        for i in range(len(batch)):
            if bad[i]:
                if run is None:
                    why = ("NaN or infinite price" if not (np.isfinite(bid[i]) and np.isfinite(ask[i])) else
                           "zero or negative price" if unusable[i] else "crossed quote (bid > ask)")
                    run = [int(batch.ts[i]), 0, why]
                run[1] += 1
            elif run is not None:
                self._bad_reports.append((int(batch.ts[i]), {
                    "kind": "bad_quote", "symbol": batch.symbol, "from_ts": run[0], "to_ts": int(batch.ts[i]),
                    "rows": run[1], "reason": run[2]}))
                run = None
        if run is None:
            self._bad_run.pop(batch.symbol, None)
        else:
            self._bad_run[batch.symbol] = run
        if not unusable.any():
            return batch
        keep = np.flatnonzero(~unusable)
        return QuoteBatch(batch.symbol, batch.ts[keep], bid[keep], ask[keep], batch.bid_size[keep],
                          batch.ask_size[keep])

    def _watermark(self, ts: int) -> None:
        """Every row at or before ``ts`` has been delivered: bring the broker (all symbols,
        scheduled sends) to ``ts`` and take the equity samples due by then."""
        g = self.setup.sample_ns
        while self._next_sample is not None and self._next_sample <= ts:
            at = self._next_sample
            self.driver.advance_to(at)
            self._sample(at)
            self._next_sample = at + g
            last = ts // g * g
            if last - at > g and not self.driver.pending() and not self.broker.has_working():
                self._skip_quiet(at, last)
        self.driver.advance_to(ts)

    def _skip_quiet(self, at: int, last: int) -> None:
        """Samples ``at + g`` .. ``last`` when nothing can move the equity in between (no
        data, no working or scheduled orders): the ones that can change state are taken —
        the first after a cooldown ends (a loss check resumes there) and the last; the
        day rolls at a constant equity. Same state as taking every sample. The series gets
        a point at every whole minute in between too, so that its minute grid is complete
        however the stream was cut."""
        g = self.setup.sample_ns
        until = self.cooldown.until
        resume = -(-until // g) * g if until and at < until <= last else None
        equity = self.ledger.equity
        minute = SERIES_MINUTE_NS
        for m in range(-(-(at + 1) // minute) * minute, last, minute):
            if m != resume:
                self._series.append(self._point(m, equity))
        if resume is not None:
            self._sample(resume)
            at = resume
        if last > at:
            self._sample(last)
        self._series.sort(key=lambda p: p.ts)
        self._next_sample = last + g

    def _sample(self, ts: int) -> None:
        """An equity sample on the grid (``SessionSetup.sample_ns``): the day's opening
        equity, the peak (drawdown gate), cooldown expiry and the cooldown loss rule. On a
        fixed grid, so the state does not depend on how the stream was cut into steps."""
        equity = self.ledger.equity
        day = ts // DAY_NS
        if day != self.day:
            self.day = day
            self.day_start_equity = equity
        self.peak_equity = max(self.peak_equity, equity)
        end = self.cooldown.expire(ts)
        if end is not None:
            self._emit("cooldown_state_change", end.ts, end.payload())
        change = self.cooldown.on_equity(ts, equity)
        if change is not None:
            self._emit("cooldown_state_change", ts, change.payload())
        self._series.append(self._point(ts, equity))

    def _point(self, ts: int, equity: float) -> SeriesPoint:
        ledger = self.ledger
        positions = {s: p.quantity for s, p in ledger.positions.items() if p.quantity}
        marks = {s: p.mark for s, p in ledger.positions.items() if p.mark == p.mark}
        return SeriesPoint(ts, equity, ledger.cash, ledger.realized, ledger.unrealized, ledger.fees,
                           ledger.gross_exposure, ledger.net_exposure,
                           (self.peak_equity - equity) / self.peak_equity if self.peak_equity > 0 else 0.0,
                           positions, marks)

    def drain_series(self) -> list[SeriesPoint]:
        """The equity/exposure points sampled since the last call (one per grid sample taken;
        a quiet stretch is represented by its first and last samples: the values between
        are the same). For the series writers (real-time steps, replays)."""
        out, self._series = self._series, []
        return out

    def _exposure(self) -> Exposure:
        positions = {s: p.quantity for s, p in self.ledger.positions.items()}
        marks = {s: p.mark for s, p in self.ledger.positions.items() if not math.isnan(p.mark)}
        open_orders: dict[str, float] = {}
        for view in self.broker.working_orders():
            o = view.order
            open_orders[o.symbol] = open_orders.get(o.symbol, 0.0) + o.side.sign * view.leaves_quantity
        # Slices approved and scheduled but not sent yet (TWAP) are commitments too: a new
        # decision nets them out, and DRA counts them against every exposure limit.
        for item in self.driver.scheduled_orders():
            o = item.order
            open_orders[o.symbol] = open_orders.get(o.symbol, 0.0) + o.side.sign * o.quantity
        equity = self.ledger.equity
        return Exposure(positions, open_orders, marks, equity, self.day_start_equity, self.peak_equity)

    def _decide(self, proposal: Proposal, now: int) -> None:
        s = self.setup
        symbol = proposal.symbol
        end = self.cooldown.expire(now)  # reported before anything that happens after it
        if end is not None:
            self._emit("cooldown_state_change", end.ts, end.payload())
        exposure = self._exposure()
        lot = self._blend(symbol).sizing.lot_size
        delta = proposal.target_qty - exposure.pending(symbol)
        qty = math.floor(abs(delta) / lot + 1e-9) * lot
        if qty <= 0:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        bid, ask = self._quotes[symbol]
        if s.policy.order_type is OrderType.LIMIT:
            offset = s.policy.limit_offset_bps / 1e4
            price = bid * (1 - offset) if side is Side.BUY else ask * (1 + offset)
        else:
            price = ask if side is Side.BUY else bid
        self.decisions += 1
        decision_id = f"{s.session_id}-d{self.decisions}"
        intent = OrderIntent(proposal.proposal_id, symbol, side, qty, price, proposal.mid, now, lot)
        switch = self.switches.effective(lane=s.lane, session=s.session_id)
        decision = self.gate.evaluate(intent, exposure, switch=switch, cooling=self.cooldown.active(now),
                                      decision_id=decision_id)
        self._emit("dra_decision", now, decision.payload())
        for breach in decision.breaches:
            self._emit("risk_breach", now, {"decision_id": decision_id, "symbol": symbol, **breach.payload()})
            change = self.cooldown.on_breach(now)
            if change is not None:
                self._emit("cooldown_state_change", now, change.payload())
                self._emit("incident", now, {"kind": "repeated_envelope_hits", "symbol": symbol,
                                             "breaches": self.setup.cooldown.max_breaches,
                                             "window_s": self.setup.cooldown.window_ns / 1e9,
                                             "last": breach.kind, "cooldown_until_ns": change.until})
            if breach.kind == "max_drawdown":
                self._switch_auto(now, f"drawdown {breach.value:.2f}% >= {breach.limit}%")
        if decision.verdict is Verdict.DENY:
            return
        for child in child_orders(s.policy, decision_id=decision_id, symbol=symbol, side=side,
                                  quantity=decision.approved_quantity, bid=bid, ask=ask, now=now, lot_size=lot,
                                  session_id=s.session_id, lane=s.lane, strategy_id=s.strategy_id):
            self.driver.schedule([ScheduledOrder(child.send_at, child.order)])
        # Children due now go out before any later data.
        self.driver.run_actions(until=now, inclusive=True)

    def _on_send(self, order: Order, ts: int) -> None:
        """Every child order counts for DRA's order-rate and duplicate gates when it is sent,
        not when its decision planned it (a TWAP's later slices count at their own times)."""
        self.gate.record_order(ts, order.symbol, order.side, order.quantity)

    def _switch_auto(self, ts: int, reason: str) -> None:
        change = self.switches.set(f"session:{self.setup.session_id}", self.setup.on_drawdown, ts=ts,
                                   actor=DRA_ACTOR, reason=reason)
        if change is not None:
            self._emit("kill_switch_change", ts, change.payload())
            if change.after is SwitchState.HALTED:
                self._emit("incident", ts, {"kind": "kill_switch_halt", **change.payload()})
            self._apply_switch(ts)

    def _apply_switch(self, ts: int) -> None:
        if self.switches.effective(lane=self.setup.lane, session=self.setup.session_id) is SwitchState.HALTED:
            self.driver.drop_scheduled()  # slices not yet sent are never sent
            for view in self.broker.working_orders():
                self.driver.handle(self.broker.cancel(view.order.client_order_id, max(ts, self.driver.stats.last_ts)))

    def _on_broker_event(self, event) -> None:
        """Broker events → telemetry: orders, fills, rejections; and ``incident`` records for
        what an operator should see — a simulated failure (the broker's incident: rejects,
        disconnects, stale or missing data, with its reason) and a fill whose slippage is
        above its route's ``extreme_slippage_bps``."""
        if isinstance(event, Fill):
            pos = self.ledger.positions[event.symbol]
            self._emit("order_filled", event.ts, {**event.as_dict(), "position": pos.quantity,
                                                  "avg_cost": pos.avg_cost, "cash": self.ledger.cash})
            route = self.setup.routes.get(event.route_id)
            if route is not None and event.slippage_bps > route.extreme_slippage_bps:
                self._emit("incident", event.ts, {
                    "kind": "extreme_slippage", "symbol": event.symbol, "route_id": event.route_id,
                    "client_order_id": event.client_order_id, "fill_id": event.fill_id,
                    "slippage_bps": event.slippage_bps, "threshold_bps": route.extreme_slippage_bps})
        elif isinstance(event, Incident):
            self._emit("incident", event.ts, {**event.as_dict(), "kind": "simulated_failure", "reason": str(event.kind)})
        elif isinstance(event, OrderEvent):
            if event.status is OrderStatus.NEW:
                o = self.broker.order(event.client_order_id).order
                self._emit("order_submitted", event.ts, {
                    "client_order_id": o.client_order_id, "decision_id": o.decision_id, "symbol": o.symbol,
                    "side": str(o.side), "quantity": o.quantity, "type": str(o.order_type),
                    "tif": str(o.time_in_force), "limit_price": o.limit_price, "route_id": o.route_id,
                    "policy_id": o.policy_id})
            elif event.status is OrderStatus.REJECTED:
                self._emit("order_rejected", event.ts, event.as_dict())

    def _emit(self, kind: str, ts: int, payload: dict) -> None:
        self._out.append(TelemetryRecord(kind, ts, payload))

    def _drain(self) -> list[TelemetryRecord]:
        out, self._out = self._out, []
        return out
