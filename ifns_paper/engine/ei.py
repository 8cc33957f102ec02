"""EI (execution intelligence): an approved decision → child orders per the
session's execution policy (``config/policies/execution_policies.json``).

* ``none`` slicing: one order of the policy's type and time in force.
* ``twap``: ``slices`` equal child orders (rounded down to lots, the last
  takes the remainder), one every ``duration_s / slices``, the first at once.
* ``participation``: one order on the policy's (volume participation) route;
  the route caps each interval at its participation rate.

Limit prices for limit policies sit ``limit_offset_bps`` on the passive side
of the touch (buy: bid × (1 − offset); sell: ask × (1 + offset)).
Child ids are ``<decision id>-<n>``, so a re-run of the same decision sends
the same ids and the broker's idempotency holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ifns_paper.engine.orders import Order, OrderType, Side, TimeInForce

NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    policy_id: str
    order_type: OrderType
    time_in_force: TimeInForce
    route_id: str
    slicing: str = "none"  # none | twap | participation
    twap_duration_s: int = 0
    twap_slices: int = 1
    limit_offset_bps: float = 0.0

    @classmethod
    def from_mapping(cls, policy_id: str, policy: dict) -> ExecutionPolicy:
        slicing = policy["slicing"]
        return cls(
            policy_id=policy_id,
            order_type=OrderType(policy["order_type"]),
            time_in_force=TimeInForce(policy["time_in_force"]),
            route_id=policy["route"],
            slicing=slicing["kind"],
            twap_duration_s=int(slicing.get("duration_s", 0)),
            twap_slices=int(slicing.get("slices", 1)),
            limit_offset_bps=float(policy.get("limit_offset_bps") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class ChildOrder:
    send_at: int  # epoch ns
    order: Order


def child_orders(policy: ExecutionPolicy, *, decision_id: str, symbol: str, side: Side, quantity: float,
                 bid: float, ask: float, now: int, lot_size: float, session_id: str = "", lane: str = "",
                 strategy_id: str = "") -> list[ChildOrder]:
    """The orders that carry out one approved decision, with their send times."""
    limit = None
    if policy.order_type is OrderType.LIMIT:
        offset = policy.limit_offset_bps / 1e4
        limit = bid * (1 - offset) if side is Side.BUY else ask * (1 + offset)

    def make(n: int, qty: float, at: int) -> ChildOrder:
        return ChildOrder(at, Order(
            f"{decision_id}-{n}", symbol, side, qty, policy.order_type, policy.time_in_force, policy.route_id,
            limit, None, session_id, lane, "paper", strategy_id, decision_id, policy.policy_id,
        ))

    if policy.slicing != "twap" or policy.twap_slices <= 1:
        return [make(1, quantity, now)]
    n = policy.twap_slices
    piece = math.floor(quantity / n / lot_size + 1e-9) * lot_size
    step = policy.twap_duration_s * NS_PER_SECOND // n
    children: list[ChildOrder] = []
    sent = 0.0
    for k in range(n):
        qty = quantity - sent if k == n - 1 else piece
        if qty <= 0:
            continue
        children.append(make(k + 1, qty, now + k * step))
        sent += qty
    return children
