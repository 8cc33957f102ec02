"""DRA (decision & risk architecture): gates between an MSI proposal and EI.

``RiskGate.evaluate`` returns ALLOW, REDUCE (with the approved quantity) or
DENY, with machine-readable reasons and one ``Breach`` per limit hit. Open
orders count against every exposure limit (a working buy of 10 is treated as
if filled). An order is *risk-reducing* when it moves the symbol's position
plus open orders towards zero; such orders pass the loss, drawdown, cooldown
and REDUCING kill-switch gates, but never flip the position.

Gates, in order:
 1. kill switch HALTED → deny; REDUCING → deny unless risk-reducing
 2. cooldown → deny unless risk-reducing
 3. price collar: |price − mid| / mid > ``price_collar_bps`` → deny
 4. duplicate: same symbol, side and quantity within ``duplicate_window_ns`` → deny
 5. order-rate throttle: ``max_orders_per_minute`` orders in the last 60 s → deny
 6. daily loss: equity − day-start equity ≤ −``max_daily_loss`` → deny unless reducing
 7. drawdown: (peak − equity) / peak ≥ ``max_drawdown_pct`` → deny unless reducing
 8. sizes (reduce): max order notional and quantity; then, unless reducing, max
    position notional per symbol, gross and net exposure, capital budget
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.orders import Side

MINUTE_NS = 60 * 1_000_000_000
# A position plus open orders smaller than this many lots is flat: partial fills of fractional
# sizes (participation slices) leave float residue such as 1e-17 that must not make an order
# "risk-reducing" (and be capped to nothing) depending on the order the fills were summed in.
DUST_LOTS = 1e-6


class Verdict(StrEnum):
    ALLOW = "ALLOW"
    REDUCE = "REDUCE"
    DENY = "DENY"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """A lane's risk envelope in engine units (account currency, percent, bps)."""

    capital: float
    max_order_notional: float
    max_position_notional: float
    max_gross_exposure: float
    max_net_exposure: float
    max_daily_loss: float
    max_drawdown_pct: float
    max_orders_per_minute: int
    price_collar_bps: float
    max_order_quantity: float = math.inf
    duplicate_window_ns: int = 1_000_000_000


@dataclass(frozen=True, slots=True)
class OrderIntent:
    intent_id: str
    symbol: str
    side: Side
    quantity: float
    price: float  # expected execution price: the touch for market orders, the limit for limit orders
    mid: float
    ts: int
    lot_size: float = 1.0


@dataclass
class Exposure:
    """The portfolio as DRA sees it. Quantities signed (+ long)."""

    positions: dict[str, float] = field(default_factory=dict)
    open_orders: dict[str, float] = field(default_factory=dict)  # signed remaining quantity
    marks: dict[str, float] = field(default_factory=dict)
    equity: float = 0.0
    day_start_equity: float = 0.0
    peak_equity: float = 0.0

    def pending(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0) + self.open_orders.get(symbol, 0.0)

    def others(self, symbol: str) -> tuple[float, float]:
        """Gross and net notional of every other symbol (positions plus open orders)."""
        gross = net = 0.0
        for sym in set(self.positions) | set(self.open_orders):
            if sym == symbol:
                continue
            value = self.pending(sym) * self.marks.get(sym, 0.0)
            gross += abs(value)
            net += value
        return gross, net


@dataclass(frozen=True, slots=True)
class Breach:
    kind: str
    limit: float
    value: float
    detail: str

    def payload(self) -> dict:
        return {"kind": self.kind, "limit": self.limit, "value": self.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    intent: OrderIntent
    verdict: Verdict
    approved_quantity: float
    reasons: tuple[str, ...]
    breaches: tuple[Breach, ...]
    risk_reducing: bool

    def payload(self) -> dict:
        i = self.intent
        return {"decision_id": self.decision_id, "intent_id": i.intent_id, "symbol": i.symbol, "side": str(i.side),
                "requested_quantity": i.quantity, "approved_quantity": self.approved_quantity,
                "verdict": str(self.verdict), "reasons": list(self.reasons), "price": i.price, "mid": i.mid,
                "risk_reducing": self.risk_reducing}


def _floor_lot(qty: float, lot: float) -> float:
    return math.floor(qty / lot + 1e-9) * lot if qty > 0 else 0.0


class RiskGate:
    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._orders: deque[tuple[int, str, Side, float]] = deque()  # (ts, symbol, side, qty) sent

    def record_order(self, ts: int, symbol: str, side: Side, quantity: float) -> None:
        """Count an order that was actually sent (for the throttle and duplicate gates)."""
        self._orders.append((ts, symbol, side, quantity))

    def evaluate(self, intent: OrderIntent, exposure: Exposure, *, switch: SwitchState, cooling: bool,
                 decision_id: str) -> Decision:
        lim = self.limits
        sign = intent.side.sign
        pre = exposure.pending(intent.symbol)
        if abs(pre) < intent.lot_size * DUST_LOTS:  # float residue of partial fills: flat
            pre = 0.0
        reducing = pre != 0 and sign * pre < 0
        qty = intent.quantity
        reasons: list[str] = []
        breaches: list[Breach] = []

        def decide(verdict: Verdict, approved: float) -> Decision:
            return Decision(decision_id, intent, verdict, approved, tuple(reasons), tuple(breaches), reducing)

        def deny(reason: str, breach: Breach | None = None) -> Decision:
            reasons.append(reason)
            if breach is not None:
                breaches.append(breach)
            return decide(Verdict.DENY, 0.0)

        while self._orders and self._orders[0][0] <= intent.ts - max(MINUTE_NS, lim.duplicate_window_ns):
            self._orders.popleft()

        # 1-2. brakes
        if switch is SwitchState.HALTED:
            return deny("kill_switch_halted")
        if switch is SwitchState.REDUCING and not reducing:
            return deny("kill_switch_reducing")
        if cooling and not reducing:
            return deny("cooldown")
        # 3. collar
        deviation_bps = abs(intent.price - intent.mid) / intent.mid * 1e4
        if deviation_bps > lim.price_collar_bps:
            return deny("price_collar", Breach("price_collar", lim.price_collar_bps, deviation_bps,
                                               f"{intent.price} is {deviation_bps:.1f} bps from mid {intent.mid}"))
        # 4. duplicates
        for ts, symbol, side, q in self._orders:
            if (symbol, side, q) == (intent.symbol, intent.side, qty) and ts > intent.ts - lim.duplicate_window_ns:
                return deny("duplicate_order")
        # 5. throttle
        recent = sum(1 for ts, *_ in self._orders if ts > intent.ts - MINUTE_NS)
        if recent >= lim.max_orders_per_minute:
            return deny("order_rate", Breach("order_rate", lim.max_orders_per_minute, recent + 1,
                                             "orders in the last 60 s"))
        # 6-7. losses
        day_pnl = exposure.equity - exposure.day_start_equity
        if day_pnl <= -lim.max_daily_loss and not reducing:
            return deny("daily_loss_limit", Breach("daily_loss_limit", lim.max_daily_loss, -day_pnl,
                                                   "loss since the start of the day"))
        drawdown = (exposure.peak_equity - exposure.equity) / exposure.peak_equity * 100 if exposure.peak_equity > 0 else 0.0
        if drawdown >= lim.max_drawdown_pct and not reducing:
            return deny("max_drawdown", Breach("max_drawdown", lim.max_drawdown_pct, drawdown,
                                               "percent below the equity peak"))

        # 8. sizes: the largest quantity every gate allows
        price = intent.price
        caps: list[tuple[str, float, float, float]] = [  # (gate, max qty, limit, value if fully allowed)
            ("max_order_notional", lim.max_order_notional / price, lim.max_order_notional, qty * price),
            ("max_order_quantity", lim.max_order_quantity, lim.max_order_quantity, qty),
        ]
        approved_cap = abs(pre) if reducing else math.inf  # reducing orders never flip: a cap, not a breach
        if not reducing:
            gross_other, net_other = exposure.others(intent.symbol)
            post_value = abs(pre + sign * qty) * price
            caps += [
                ("max_position_notional", lim.max_position_notional / price - sign * pre,
                 lim.max_position_notional, post_value),
                ("max_gross_exposure", (lim.max_gross_exposure - gross_other) / price - sign * pre,
                 lim.max_gross_exposure, gross_other + post_value),
                ("max_net_exposure", (lim.max_net_exposure - sign * net_other) / price - sign * pre,
                 lim.max_net_exposure, abs(net_other + (pre + sign * qty) * price)),
                ("capital_budget", (lim.capital - gross_other) / price - sign * pre,
                 lim.capital, gross_other + post_value),
            ]
        approved = min(qty, approved_cap)
        for gate, cap, limit, value in caps:
            if qty > cap + 1e-9 * max(1.0, qty):
                reasons.append(gate)
                breaches.append(Breach(gate, limit, value, f"requested {qty:g} > allowed {max(cap, 0.0):g}"))
                approved = min(approved, max(cap, 0.0))
        if approved < qty:
            if approved_cap < qty:
                reasons.append("reduce_only_to_flat")
            approved = _floor_lot(approved, intent.lot_size)
            if approved <= 0:
                return decide(Verdict.DENY, 0.0)
            return decide(Verdict.REDUCE, approved)
        return decide(Verdict.ALLOW, qty)

    def state(self) -> dict:
        return {"orders": [[ts, s, str(side), q] for ts, s, side, q in self._orders]}

    def restore(self, state: dict) -> None:
        self._orders = deque((int(ts), s, Side(side), float(q)) for ts, s, side, q in state.get("orders", []))
