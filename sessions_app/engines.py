"""Session engines from the database: one mapping of a session row (with its lane,
envelope, execution policy and models) to a fresh ``SessionEngine``."""

from __future__ import annotations

from broker_app.models import ExecutionPolicy as PolicyRow
from broker_app.selectors import route_configs
from ifns_paper.engine.session import SessionEngine
from ifns_paper.session_setup import build_setup
from sessions_app.models import Lane, PaperSession


def build_engine(session: PaperSession, *, zero_latency: bool = False) -> SessionEngine:
    """A fresh engine for a session, from its definition and lane as they are in the database;
    ``zero_latency``: the route's latencies (order insert, cancel, market data) set to 0 (a
    shadow backtest's "as a backtest would have it")."""
    lane = session.lane
    env = lane.risk_envelope
    envelope = {f: getattr(env, f) for f in (
        "max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
        "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute", "price_collar_bps")}
    row: PolicyRow = session.execution_policy
    # Only the route the session's policy uses: others would keep rolling windows for nothing.
    routes = route_configs(route_ids=[row.route.route_id])
    if zero_latency:
        for route in routes.values():
            route["latency"] = {**route["latency"], "order_insert_ms": 0, "cancel_ms": 0, "market_data_ms": 0}
    policy = {"order_type": row.order_type, "time_in_force": row.time_in_force, "route": row.route.route_id,
              "slicing": row.slicing, "limit_offset_bps": row.limit_offset_bps}
    models = [(link.entry.registry_id, link.entry.version, link.weight, link.entry.implementation)
              for link in session.model_links.select_related("entry")]
    return SessionEngine(build_setup(
        session_id=session.session_id, lane=lane.name, strategy_id=str(session.strategy),
        capital=float(lane.capital_amount), envelope=envelope, routes=routes, policy_id=row.policy_id,
        policy=policy, models=models, sizing=session.sizing or {},
        initial_portfolio=session.initial_portfolio or {"kind": "flat"}, cooldown=lane_cooldown(lane),
    ))


def lane_cooldown(lane: Lane) -> dict:
    """A lane's cooldown rules shaped as its ``cooldown`` section in ``paper.yaml``."""
    p = lane.policy
    return {"max_breaches": p.cooldown_max_breaches, "window_s": p.cooldown_window_s,
            "duration_s": p.cooldown_duration_s, "max_loss": p.cooldown_max_loss}
