"""Turn a session definition (from the config files or the database) into an engine setup.

One mapping for both sources, so a strategy replay of a session file and the
real-time session registered from it run the same engine configuration.
Plain Python, no Django.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ifns_paper.engine.controls import CooldownPolicy
from ifns_paper.engine.dra import RiskLimits
from ifns_paper.engine.ei import ExecutionPolicy
from ifns_paper.engine.msi import build_model
from ifns_paper.engine.routes import routes_from_mapping
from ifns_paper.engine.session import SessionSetup


def session_seed(session_id: str) -> int:
    """A stable seed per session id (the broker's seeded failures and touch fills)."""
    return int.from_bytes(session_id.encode()[:8].ljust(8, b"\0"), "big")


def cooldown_policy(cooldown: Mapping | None) -> CooldownPolicy:
    """The engine's cooldown from a lane's ``cooldown`` section (seconds, lane currency).

    ``None`` or missing keys take the documented defaults (``CooldownRules`` in
    ``ifns_paper.config.schema``); a ``max_loss`` of ``None`` turns the loss rule off.
    """
    c = cooldown or {}
    max_loss = c.get("max_loss")
    return CooldownPolicy(
        max_breaches=int(c.get("max_breaches", 3)),
        max_loss=float("inf") if max_loss is None else float(max_loss),
        window_ns=int(c.get("window_s", 60)) * 1_000_000_000,
        duration_ns=int(c.get("duration_s", 300)) * 1_000_000_000,
    )


def build_setup(
    *,
    session_id: str,
    lane: str,
    strategy_id: str,
    capital: float,
    envelope: dict,
    routes: dict[str, dict],
    policy_id: str,
    policy: dict,
    models: Iterable[tuple[str, str, float] | tuple[str, str, float, str]],
    sizing: dict,
    initial_portfolio: dict,
    cooldown: Mapping | None = None,
) -> SessionSetup:
    """``envelope``/``routes``/``policy``/``sizing``/``cooldown`` are shaped as in the config files."""
    limits = RiskLimits(
        capital=float(capital), max_order_notional=float(envelope["max_order_notional"]),
        max_position_notional=float(envelope["max_position_notional_per_symbol"]),
        max_gross_exposure=float(envelope["max_gross_exposure"]),
        max_net_exposure=float(envelope["max_net_exposure"]), max_daily_loss=float(envelope["max_daily_loss"]),
        max_drawdown_pct=float(envelope["max_drawdown_pct"]),
        max_orders_per_minute=int(envelope["max_orders_per_minute"]),
        price_collar_bps=float(envelope["price_collar_bps"]),
    )
    cash, positions = None, {}
    if initial_portfolio.get("kind") == "from_backtest":
        cash = float(initial_portfolio["cash"])
        positions = {p["symbol"]: (float(p["quantity"]), float(p["avg_price"]))
                     for p in initial_portfolio["positions"]}
    return SessionSetup(
        session_id=session_id, lane=lane, strategy_id=strategy_id,
        models=[(build_model(m[0], m[1], callable_path=(m[3] if len(m) > 3 else "") or None), m[2])
                for m in models],
        limits=limits, policy=ExecutionPolicy.from_mapping(policy_id, policy), routes=routes_from_mapping(routes),
        vol_target=float(sizing.get("vol_target", 1e-4)), budget_fraction=float(sizing.get("budget_fraction", 0.25)),
        lot_sizes={k: float(v) for k, v in (sizing.get("lot_sizes") or {}).items()},
        min_change_lots=float(sizing.get("min_change_lots", 1.0)),
        min_interval_ns=int(float(sizing.get("min_interval_s", 1.0)) * 1e9),
        cooldown=cooldown_policy(cooldown),
        starting_cash=cash, initial_positions=positions, seed=session_seed(session_id),
    )


def setup_from_bundle(bundle, session_id: str) -> SessionSetup:
    """The setup of a session defined in a validated config bundle (``ifns_paper.config``)."""
    _, definition = bundle.sessions[session_id]
    lane = bundle.environment.lanes[definition.lane]
    implementations = {(e.registry_id, e.version): e.implementation for e in bundle.registry.entries}
    portfolio = definition.start.portfolio
    if isinstance(portfolio, str):
        initial = {"kind": "flat"}
    else:
        state = bundle.backtest_states[portfolio.from_backtest]
        initial = {"kind": "from_backtest", **state.model_dump(mode="json")}
    policy = bundle.policies.policies[definition.execution_policy].model_dump(mode="json")
    routes = {policy["route"]: bundle.routes.model_dump(mode="json")["routes"][policy["route"]]}
    return build_setup(
        session_id=session_id, lane=definition.lane,
        strategy_id=f"{definition.strategy.registry_id}@{definition.strategy.version}",
        capital=float(lane.capital.amount), envelope=lane.risk_envelope.model_dump(mode="json"), routes=routes,
        policy_id=definition.execution_policy, policy=policy,
        models=[(m.registry_id, m.version, m.weight, implementations.get((m.registry_id, m.version), ""))
                for m in definition.models],
        sizing=definition.sizing.model_dump(mode="json"), initial_portfolio=initial,
        cooldown=lane.cooldown.model_dump(mode="json"),
    )
