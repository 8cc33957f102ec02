"""Writes to broker_app's tables: routes and policies as loaded, and the paper orders,
fills and positions a real-time step produced.

Callers pass plain rows (no engine objects): ``sessions_app.steps`` builds them
from the engine's telemetry and state, and this module alone turns them into
``PaperOrder`` / ``PaperFill`` / ``PaperPosition`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from broker_app.models import ExecutionPolicy, ExecutionRoute, PaperFill, PaperOrder, PaperPosition


@dataclass(frozen=True, slots=True)
class OrderRow:
    """The current state of one order of a session (``session_pk``: the PaperSession row)."""

    session_pk: int
    client_order_id: str
    decision_id: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    time_in_force: str
    limit_price: float | None
    stop_price: float | None
    route_id: str
    policy_id: str
    status: str
    filled_quantity: float
    average_price: float
    reason: str
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class FillRow:
    session_pk: int
    client_order_id: str
    fill_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    arrival_mid: float
    slippage_bps: float
    fee: float
    liquidity: str
    route_id: str
    event_time: datetime


@dataclass(frozen=True, slots=True)
class PositionRow:
    session_pk: int
    symbol: str
    quantity: float
    avg_cost: float
    realized: float
    unrealized: float
    fees: float
    mark: float | None


@dataclass
class ExecutionRows:
    orders: list[OrderRow] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)

    def extend(self, other: ExecutionRows) -> None:
        self.orders += other.orders
        self.fills += other.fills
        self.positions += other.positions


_ORDER_UPDATE = ("decision_id", "symbol", "side", "quantity", "order_type", "time_in_force", "limit_price",
                 "stop_price", "route_id", "policy_id", "status", "filled_quantity", "average_price", "reason",
                 "submitted_at", "updated_at")
_POSITION_UPDATE = ("quantity", "avg_cost", "realized", "unrealized", "fees", "mark")


def execution_rows_write(*, rows: ExecutionRows) -> int:
    """Upsert orders (by client order id), insert fills, upsert positions (by session and
    symbol), with one statement each; returns the number of fills written.

    Precondition: inside the caller's transaction, with the sessions' rows locked (a
    step): a fill's order is written in the same call or an earlier one. A fill id
    written twice raises (``fill_id`` is unique): steps are idempotent by checkpoint."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("execution_rows_write must run inside the step's transaction")
    if rows.orders:
        PaperOrder.objects.bulk_create(
            [PaperOrder(session_id=o.session_pk, client_order_id=o.client_order_id, decision_id=o.decision_id,
                        symbol=o.symbol, side=o.side, quantity=o.quantity, order_type=o.order_type,
                        time_in_force=o.time_in_force, limit_price=o.limit_price, stop_price=o.stop_price,
                        route_id=o.route_id, policy_id=o.policy_id, status=o.status,
                        filled_quantity=o.filled_quantity, average_price=o.average_price, reason=o.reason,
                        submitted_at=o.submitted_at) for o in rows.orders],
            update_conflicts=True, unique_fields=["client_order_id"], update_fields=list(_ORDER_UPDATE))
    if rows.fills:
        order_pks = dict(PaperOrder.objects.filter(client_order_id__in={f.client_order_id for f in rows.fills})
                         .values_list("client_order_id", "pk"))
        PaperFill.objects.bulk_create([
            PaperFill(session_id=f.session_pk, order_id=order_pks[f.client_order_id], fill_id=f.fill_id,
                      symbol=f.symbol, side=f.side, quantity=f.quantity, price=f.price, arrival_mid=f.arrival_mid,
                      slippage_bps=f.slippage_bps, fee=f.fee, liquidity=f.liquidity, route_id=f.route_id,
                      event_time=f.event_time) for f in rows.fills])
    if rows.positions:
        PaperPosition.objects.bulk_create(
            [PaperPosition(session_id=p.session_pk, symbol=p.symbol, quantity=p.quantity, avg_cost=p.avg_cost,
                           realized=p.realized, unrealized=p.unrealized, fees=p.fees, mark=p.mark)
             for p in rows.positions],
            update_conflicts=True, unique_fields=["session", "symbol"], update_fields=list(_POSITION_UPDATE))
    return len(rows.fills)


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What applying one route or policy did: ``created`` or ``updated`` (fields that changed)."""

    kind: str  # "execution_route" | "execution_policy"
    key: str
    created: bool
    before: dict[str, Any] | None
    after: dict[str, Any]


def _upsert(model, lookup: dict, values: dict, *, kind: str, key: str, plain) -> tuple[Any, ConfigChange | None]:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        obj = model.objects.create(**lookup, **values)
        return obj, ConfigChange(kind, key, True, None, plain({**lookup, **values}))
    before = {k: plain(getattr(obj, k)) for k in values}
    after = {k: plain(v) for k, v in values.items()}
    changed = [k for k in values if before[k] != after[k]]
    if not changed:
        return obj, None
    for k in changed:
        setattr(obj, k, values[k])
    obj.save()
    return obj, ConfigChange(kind, key, False, {k: before[k] for k in changed}, {k: after[k] for k in changed})


def execution_config_apply(*, routes: dict, policies: dict, plain) -> tuple[list[ConfigChange], int]:
    """Bring routes and policies in line with validated ``execution_routes.json`` /
    ``execution_policies.json`` models; idempotent. ``plain`` makes a value JSON-safe and
    comparable. Returns the changes (the caller records them) and the unchanged count."""
    changes: list[ConfigChange] = []
    unchanged = 0
    by_id: dict[str, ExecutionRoute] = {}
    for route_id, route in routes.items():
        dumped = route.model_dump(mode="json")
        by_id[route_id], change = _upsert(
            ExecutionRoute, {"route_id": route_id},
            {"description": route.description, "fill_model": route.simulation.model,
             "simulation": dumped["simulation"], "latency": dumped["latency"], "fees": dumped["fees"],
             "stale_quote_ms": route.stale_quote_ms, "failures": dumped["failures"],
             "trading_hours": dumped["trading_hours"], "extreme_slippage_bps": route.extreme_slippage_bps},
            kind="execution_route", key=route_id, plain=plain)
        changes += [change] if change else []
        unchanged += change is None
    for policy_id, policy in policies.items():
        _, change = _upsert(
            ExecutionPolicy, {"policy_id": policy_id},
            {"description": policy.description, "urgency": policy.urgency, "order_type": policy.order_type,
             "time_in_force": policy.time_in_force, "route": by_id[policy.route],
             "limit_offset_bps": policy.limit_offset_bps, "slicing": policy.slicing.model_dump(mode="json")},
            kind="execution_policy", key=policy_id, plain=plain)
        changes += [change] if change else []
        unchanged += change is None
    return changes, unchanged


POLICY_FIELDS = ("description", "urgency", "order_type", "time_in_force", "route", "limit_offset_bps", "slicing")


def policy_values(*, policy_id: str) -> dict | None:
    """An execution policy as ``execution_policies.json`` spells it (``route`` = route id)."""
    row = ExecutionPolicy.objects.select_related("route").filter(policy_id=policy_id).first()
    if row is None:
        return None
    return {"description": row.description, "urgency": row.urgency, "order_type": row.order_type,
            "time_in_force": row.time_in_force, "route": row.route.route_id, "limit_offset_bps": row.limit_offset_bps,
            "slicing": row.slicing}


def policy_update(*, policy_id: str, values: dict) -> None:
    """Set already validated ``values`` (file spelling) on a policy; raises ``LookupError``
    for an unknown policy or route. Precondition: inside the caller's transaction."""
    row = ExecutionPolicy.objects.select_for_update().get(policy_id=policy_id)
    for name, value in values.items():
        if name == "route":
            row.route = ExecutionRoute.objects.get(route_id=value)
        elif name in POLICY_FIELDS:
            setattr(row, name, value)
        else:
            raise LookupError(f"unknown policy field {name!r}")
    row.save()
