"""Real-time session steps: new market data → the session engine → the database.

``session_step`` is the unit of work of the Celery step task. In one
transaction it locks the session row (so steps of one session never run
concurrently), reads every stream entry after the checkpoint, runs the
engine, and writes orders, fills, positions, telemetry events and the new
checkpoint. A step that dies before committing leaves nothing behind; the
redelivered step starts from the same checkpoint and, the engine being
deterministic, produces the same results. Unique keys (client order id,
fill id, event sequence) back this up.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction

from broker_app.models import ExecutionPolicy as PolicyRow
from broker_app.models import ExecutionRoute, PaperFill, PaperOrder, PaperPosition
from ifns_paper import marketbus
from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.engine.session import SessionEngine, TelemetryRecord
from ifns_paper.session_setup import build_setup
from sessions_app.models import KillSwitch, PaperSession, SessionCheckpoint
from telemetry_app.models import TelemetryEvent
from telemetry_app.sinks import publish_committed

MAX_ENTRIES_PER_STEP = 20_000


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def build_engine(session: PaperSession) -> SessionEngine:
    """A fresh engine for a session, from its definition and lane as they are in the database."""
    lane = session.lane
    env = lane.risk_envelope
    envelope = {f: getattr(env, f) for f in (
        "max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
        "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute", "price_collar_bps")}
    row: PolicyRow = session.execution_policy
    # Only the route the session's policy uses: others would keep rolling windows for nothing.
    routes = {r.route_id: {"simulation": r.simulation, "latency": r.latency, "fees": r.fees,
                           "stale_quote_ms": r.stale_quote_ms, "failures": r.failures,
                           "trading_hours": r.trading_hours}
              for r in ExecutionRoute.objects.filter(pk=row.route_id)}
    policy = {"order_type": row.order_type, "time_in_force": row.time_in_force, "route": row.route.route_id,
              "slicing": row.slicing, "limit_offset_bps": row.limit_offset_bps}
    models = [(link.entry.registry_id, link.entry.version, link.weight)
              for link in session.model_links.select_related("entry")]
    return SessionEngine(build_setup(
        session_id=session.session_id, lane=lane.name, strategy_id=str(session.strategy),
        capital=float(lane.capital_amount), envelope=envelope, routes=routes, policy_id=row.policy_id,
        policy=policy, models=models, sizing=session.sizing or {},
        initial_portfolio=session.initial_portfolio or {"kind": "flat"}, max_breaches=lane.policy.max_breaches,
    ))


@dataclass
class StepResult:
    session_id: str
    rows: int = 0
    events: int = 0
    fills: int = 0
    skipped: str = ""
    bad_entries: list[str] = field(default_factory=list)


def _switch_states(session: PaperSession) -> dict:
    scopes = ["global", f"lane:{session.lane.name}", f"session:{session.session_id}"]
    return {k.scope: k.state for k in KillSwitch.objects.filter(scope__in=scopes)}


def session_step(*, session_id: str, client, max_entries: int = MAX_ENTRIES_PER_STEP) -> StepResult:
    """Process the new market data of one running session (see the module docstring)."""
    result = StepResult(session_id)
    with transaction.atomic():
        session = (PaperSession.objects.select_for_update(of=("self",)).select_related("lane", "lane__risk_envelope",
                                                                          "lane__policy", "execution_policy__route",
                                                                          "strategy")
                   .filter(session_id=session_id).first())
        if session is None or session.status != "running":
            result.skipped = "not running"
            return result
        checkpoint = SessionCheckpoint.objects.filter(session=session).first()
        engine = pickle.loads(checkpoint.engine_state) if checkpoint else build_engine(session)
        engine.switches.restore(_switch_states(session))
        offsets = dict(checkpoint.offsets) if checkpoint else {}
        records: list[TelemetryRecord] = []
        if checkpoint is not None:
            records += engine.enforce_switches(checkpoint.data_ts)

        key = marketbus.stream_key(session.feed)
        read = marketbus.read(client, key, set(session.symbols), after=offsets.get(key), count=max_entries)
        if read.last_id:
            offsets[key] = read.last_id
        batches = read.batches
        result.rows += read.rows
        result.bad_entries += read.bad
        if not batches and checkpoint is not None and not records:
            result.skipped = "no new data"
            return result

        data_ts = checkpoint.data_ts if checkpoint else 0
        for batch in batches:  # already in the feed's time order
            if int(batch.ts[0]) < data_ts:
                # Data older than what this session already consumed (a feed restarted with an
                # older clock): never fed backwards, reported once per step.
                result.bad_entries.append(f"{batch.symbol}: {len(batch)} rows older than the checkpoint")
                continue
            if isinstance(batch, QuoteBatch):
                records += engine.on_quotes(batch)
            else:
                records += engine.on_trades(batch)
            data_ts = max(data_ts, int(batch.ts[-1]))
        _persist(session, engine, records, result)
        _save_switches(session, engine)
        state = pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
        ledger = engine.ledger
        SessionCheckpoint.objects.update_or_create(session=session, defaults={
            "offsets": offsets, "engine_state": state, "steps": (checkpoint.steps if checkpoint else 0) + 1,
            "data_ts": data_ts, "cash": ledger.cash, "equity": ledger.equity,
        })
    return result


def _persist(session: PaperSession, engine: SessionEngine, records: list[TelemetryRecord], result: StepResult) -> None:
    touched: set[str] = set()
    fills: list[PaperFill] = []
    for rec in records:
        if rec.type == "order_submitted" or rec.type in ("order_filled", "order_rejected"):
            touched.add(rec.payload["client_order_id"])
    for view in engine.broker.working_orders():
        touched.add(view.order.client_order_id)
    orders = {}
    for coid in sorted(touched):
        view = engine.broker.order(coid)
        o = view.order
        orders[coid], _ = PaperOrder.objects.update_or_create(client_order_id=coid, defaults={
            "session": session, "decision_id": o.decision_id, "symbol": o.symbol, "side": str(o.side),
            "quantity": o.quantity, "order_type": str(o.order_type), "time_in_force": str(o.time_in_force),
            "limit_price": o.limit_price, "stop_price": o.stop_price, "route_id": o.route_id,
            "policy_id": o.policy_id, "status": str(view.status), "filled_quantity": view.filled_quantity,
            "average_price": view.average_price, "reason": view.reason,
            "submitted_at": ns_to_datetime(view.submitted_ts),
        })
    for rec in records:
        if rec.type == "order_filled":
            f = rec.payload
            fills.append(PaperFill(
                session=session, order=orders[f["client_order_id"]], fill_id=f["fill_id"], symbol=f["symbol"],
                side=f["side"], quantity=f["quantity"], price=f["price"], arrival_mid=f["arrival_mid"],
                slippage_bps=f["slippage_bps"], fee=f["fee"], liquidity=f["liquidity"], route_id=f["route_id"],
                event_time=ns_to_datetime(f["ts"]),
            ))
    PaperFill.objects.bulk_create(fills)
    result.fills = len(fills)
    for symbol, pos in engine.ledger.positions.items():
        PaperPosition.objects.update_or_create(session=session, symbol=symbol, defaults={
            "quantity": pos.quantity, "avg_cost": pos.avg_cost, "realized": pos.realized,
            "unrealized": pos.unrealized, "fees": pos.fees, "mark": None if pos.mark != pos.mark else pos.mark,
        })
    # Telemetry: sequence numbers continue the session's own counter.
    seq = session.last_event_seq
    events = []
    for rec in records:
        seq += 1
        events.append(TelemetryEvent(env="paper", lane=session.lane.name, session=session, event_type=rec.type,
                                     sequence=seq, event_time=ns_to_datetime(rec.ts), payload=rec.payload))
    TelemetryEvent.objects.bulk_create(events)
    PaperSession.objects.filter(pk=session.pk).update(last_event_seq=seq)
    result.events = len(events)
    if events:
        out = [e.as_record(session.session_id) for e in events]
        transaction.on_commit(lambda: publish_committed(out))


def _save_switches(session: PaperSession, engine: SessionEngine) -> None:
    """Persist switch changes the engine made itself (e.g. REDUCING after a drawdown breach)."""
    scope = f"session:{session.session_id}"
    state = engine.switches.get(scope)
    current = KillSwitch.objects.filter(scope=scope).first()
    if state is SwitchState.ACTIVE and current is None:
        return
    if current is None or current.state != state:
        KillSwitch.objects.update_or_create(scope=scope, defaults={"state": str(state), "actor": "dra",
                                                                   "reason": "automatic (risk breach)"})
