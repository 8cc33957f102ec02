"""Real-time session steps: new market data → the session engines → the database.

A step advances a group of running sessions (a *shard*: the sessions of one
feed that hash to one step queue, see ``scheduler``). In one transaction it
locks their rows (so steps of one session never run concurrently), reads the
feed's stream once from the oldest checkpoint, runs each session's engine on
its own symbols' entries after its own checkpoint, and writes the orders,
fills, positions, telemetry events and new checkpoints of all of them with a
handful of bulk statements. A step that dies before committing leaves
nothing behind; the redelivered step starts from the same checkpoints and,
the engines being deterministic, produces the same results. Unique keys
(client order id, fill id, event sequence) back this up.

Engines stay in the worker's memory between steps (``_ENGINES``); a cached
engine is used only while the checkpoint's step counter is the one it was
saved with, so a step committed elsewhere (another worker, a restart) is
always picked up from the database. The checkpoint still carries the pickled
engine: it is what a restarted worker resumes from. A *quiet* step (no
telemetry, hence no order, fill or switch change) writes nothing: its session
is checkpointed at its next step with output, or after ``CHECKPOINT_EVERY_S``;
a worker that restarts from the older checkpoint re-reads those entries and,
the engine being deterministic, reaches the same state. Finished orders are
dropped from it once written (``SessionEngine.compact``), so it stays small
however long the session runs. Position rows are written at every fill and
their marks (unrealized P&L) at most once a second (``MARKS_EVERY_S``).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import time
import zlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Concat
from django.utils import timezone

from broker_app.models import PaperFill, PaperOrder, PaperPosition
from ifns_paper import marketbus
from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.engine.session import SessionEngine, TelemetryRecord
from sessions_app.engines import build_engine
from sessions_app.models import KillSwitch, PaperSession, SessionCheckpoint
from telemetry_app.models import TelemetryEvent
from telemetry_app.sinks import publish_committed

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_STEP = 20_000
ENGINE_CACHE_SIZE = 256
CHECKPOINT_EVERY_S = 2.0  # a quiet session's checkpoint is written at least this often


@dataclass
class _Cached:
    """A session's engine as this worker left it after its last step."""

    steps: int  # the checkpoint (its step count) the engine continues from
    engine: SessionEngine
    offsets: dict  # consumed up to here (ahead of the checkpoint after quiet steps)
    data_ts: int
    written_at: float  # monotonic time of the last checkpoint write


_ENGINES: OrderedDict[str, _Cached] = OrderedDict()  # session id -> its engine, most recent last
# Position rows are written at every fill; their marks (unrealized P&L) at most this often.
MARKS_EVERY_S = 1.0
_MARKS_WRITTEN: dict[str, float] = {}  # session id -> monotonic time of the last mark write

_ORDER_FIELDS = ("session", "decision_id", "symbol", "side", "quantity", "order_type", "time_in_force",
                 "limit_price", "stop_price", "route_id", "policy_id", "status", "filled_quantity",
                 "average_price", "reason", "submitted_at", "updated_at")
_POSITION_FIELDS = ("quantity", "avg_cost", "realized", "unrealized", "fees", "mark")
_CHECKPOINT_FIELDS = ("offsets", "engine_state", "steps", "data_ts", "cash", "equity", "updated_at")


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _checkpoint_period_s(session_id: str) -> float:
    """CHECKPOINT_EVERY_S give or take 25 %, fixed per session: sessions started together
    drift apart instead of all writing their checkpoints in the same step."""
    return CHECKPOINT_EVERY_S * (0.75 + 0.5 * (zlib.crc32(session_id.encode()) % 1000) / 1000)


def engine_dump(engine: SessionEngine) -> bytes:
    """The checkpointed form of an engine: a pickle, zlib-compressed (fast level: about
    2x smaller for 0.05 ms, which the database write more than pays back)."""
    return zlib.compress(pickle.dumps(engine, pickle.HIGHEST_PROTOCOL), 1)


def engine_load(state: bytes) -> SessionEngine:
    return pickle.loads(zlib.decompress(state))


def start_entry(session: PaperSession) -> str:
    """The first stream entry id a session may consume: entries published from its start on."""
    started = session.started_at or timezone.now()
    return f"{int(started.timestamp() * 1000)}-0"


def apply_items(engine: SessionEngine, items, data_ts: int) -> tuple[list[TelemetryRecord], int, list[str]]:
    """Feed stream items (quote/trade runs and clocks, in stream order) to ``engine``.

    Data older than ``data_ts`` (what the session already consumed: a feed restarted
    with an older clock) is never fed backwards; it is skipped and described. Returns
    the records, the new data time and the descriptions of what was skipped."""
    records: list[TelemetryRecord] = []
    skipped: list[str] = []
    for item in items:
        if isinstance(item, marketbus.Clock):
            if item.ts > data_ts:
                records += engine.advance_to(item.ts)
                data_ts = item.ts
            continue
        if int(item.ts[0]) < data_ts:
            skipped.append(f"{item.symbol}: {len(item)} rows older than the checkpoint")
            continue
        records += engine.on_quotes(item) if isinstance(item, QuoteBatch) else engine.on_trades(item)
        data_ts = max(data_ts, int(item.ts[-1]))
    return records, data_ts, skipped


@dataclass
class SessionStep:
    session: PaperSession
    engine: SessionEngine
    checkpoint: SessionCheckpoint | None
    offsets: dict
    data_ts: int
    switch_in_db: str | None  # the session-scope switch state stored, if any
    cached: _Cached | None = None  # the in-memory engine this step continues, if valid
    records: list[TelemetryRecord] = field(default_factory=list)
    rows: int = 0


@dataclass
class StepResult:
    sessions: list[str] = field(default_factory=list)  # stepped
    rows: int = 0  # market-data rows consumed, all sessions
    events: int = 0
    fills: int = 0
    more: bool = False  # the read hit ``max_entries``: more data is waiting
    skipped: dict[str, str] = field(default_factory=dict)  # session id -> why it was not stepped
    bad_entries: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)  # load, run, persist, commit, publish
    engines_loaded: int = 0  # engines built or unpickled (not in this worker's memory)


class _Laps:
    def __init__(self, out: dict[str, float]) -> None:
        self.out, self.t = out, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.out[name] = round((now - self.t) * 1000, 2)
        self.t = now


def step_sessions(session_ids: list[str], *, client, max_entries: int = MAX_ENTRIES_PER_STEP) -> StepResult:
    """Process the new market data of the running sessions among ``session_ids`` (see the module
    docstring). Sessions that are not running are skipped."""
    result = StepResult()
    touched: list[str] = []
    clock = _Laps(result.timings_ms)
    try:
        with transaction.atomic():
            transaction.on_commit(lambda: clock.lap("commit"))  # first of the hooks: right after COMMIT
            steps = _load(session_ids, result)
            clock.lap("load")
            touched = [s.session.session_id for s in steps]
            if steps:
                _run(steps, client, max_entries, result)
                clock.lap("run")
                stepped = _persist(steps, result)
                clock.lap("persist")
                transaction.on_commit(lambda: _publish_positions(client, stepped))
        clock.lap("publish")  # the after-commit hooks: NDJSON, pushes, consumed offsets
    except BaseException:
        for sid in touched:  # their engines ran past the database state: rebuild from it next time
            _ENGINES.pop(sid, None)
        raise
    return result


def session_step(*, session_id: str, client, max_entries: int = MAX_ENTRIES_PER_STEP) -> StepResult:
    """One session's step (tests, operators' tools): ``step_sessions`` of one."""
    return step_sessions([session_id], client=client, max_entries=max_entries)


def _load(session_ids: list[str], result: StepResult) -> list[SessionStep]:
    sessions = list(
        PaperSession.objects.select_for_update(of=("self",))
        # the lane for labels; the checkpoint without the engine (used only on a cache miss);
        # the rest only when an engine is built (build_engine reads it)
        .select_related("lane", "checkpoint")
        .only("session_id", "status", "feed", "symbols", "last_event_seq", "started_at", "resumed_at", "lane__name",
              "checkpoint__session", "checkpoint__offsets", "checkpoint__steps", "checkpoint__data_ts")
        # the kill switches in force, read in the same round trip
        .annotate(switch_global=_switch_state(Value("global")),
                  switch_lane=_switch_state(Concat(Value("lane:"), OuterRef("lane__name"))),
                  switch_session=_switch_state(Concat(Value("session:"), OuterRef("session_id"))))
        .filter(session_id__in=session_ids).order_by("session_id")
    )
    found = {s.session_id for s in sessions}
    for sid in session_ids:
        if sid not in found:
            result.skipped[sid] = "unknown session"
    running = []
    for s in sessions:
        if s.status == "running":
            running.append(s)
        else:
            result.skipped[s.session_id] = "not running"
    if not running:
        return []
    steps = []
    for session in running:
        cp = getattr(session, "checkpoint", None)
        cached = _cached(session, cp)
        engine = cached.engine if cached else _engine(session, cp)
        result.engines_loaded += cached is None
        scopes = ("global", f"lane:{session.lane.name}", f"session:{session.session_id}")
        states = (session.switch_global, session.switch_lane, session.switch_session)
        engine.switches.restore({scope: state for scope, state in zip(scopes, states, strict=True) if state})
        if cached is not None:
            offsets, data_ts = dict(cached.offsets), cached.data_ts
        else:
            offsets, data_ts = (dict(cp.offsets), cp.data_ts) if cp else ({}, 0)
        step = SessionStep(session, engine, cp, offsets, data_ts, session.switch_session, cached)
        if cp is not None:
            step.records += engine.enforce_switches(cp.data_ts)
        steps.append(step)
    return steps


def _switch_state(scope) -> Subquery:
    return Subquery(KillSwitch.objects.filter(scope=scope).values("state")[:1])


def _cached(session: PaperSession, cp: SessionCheckpoint | None) -> _Cached | None:
    """This worker's engine of ``session`` if it continues the stored checkpoint."""
    cached = _ENGINES.get(session.session_id)
    if cached is None or cp is None or cached.steps != cp.steps:
        _ENGINES.pop(session.session_id, None)
        return None
    _ENGINES.move_to_end(session.session_id)
    return cached


def _engine(session: PaperSession, cp: SessionCheckpoint | None) -> SessionEngine:
    if cp is None:
        return build_engine(session)
    return engine_load(SessionCheckpoint.objects.filter(pk=cp.pk).values_list("engine_state", flat=True).get())


def _run(steps: list[SessionStep], client, max_entries: int, result: StepResult) -> None:
    by_feed: dict[str, list[SessionStep]] = defaultdict(list)
    for step in steps:
        by_feed[step.session.feed].append(step)
    for feed, group in by_feed.items():
        key = marketbus.stream_key(feed)
        # Each session reads after its checkpoint, or from its start (or its last resume: what
        # was published while it was paused is not traded on); one read serves the group.
        after = {s.session.session_id: _read_after(s, key) for s in group}
        lowest = min(after.values(), key=marketbus.parse_id)
        entries = marketbus.read_entries(client, key, after=lowest, count=max_entries)
        result.bad_entries += entries.bad
        result.more = result.more or len(entries.ids) + len(entries.bad) >= max_entries
        for step in group:
            read = entries.select(set(step.session.symbols), after=after[step.session.session_id])
            if read.last_id:
                step.offsets[key] = read.last_id
            records, step.data_ts, skipped = apply_items(step.engine, read.batches, step.data_ts)
            step.records += records
            step.rows += read.rows
            result.rows += read.rows
            result.bad_entries += skipped


def _read_after(step: SessionStep, key: str) -> str:
    """The entry id after which ``step``'s session reads ``key``."""
    floor = _just_before(start_entry(step.session))
    resumed = step.session.resumed_at
    if resumed is not None:
        floor = max(floor, _just_before(f"{int(resumed.timestamp() * 1000)}-0"), key=marketbus.parse_id)
    offset = step.offsets.get(key)
    return floor if offset is None else max(offset, floor, key=marketbus.parse_id)


def _just_before(entry_id: str) -> str:
    """The largest possible entry id before ``entry_id`` (to read from it inclusively)."""
    ms, seq = marketbus.parse_id(entry_id)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"


def _persist(steps: list[SessionStep], result: StepResult) -> dict[str, _Cached]:
    orders: list[PaperOrder] = []
    fills: list[tuple[str, PaperFill]] = []  # (client order id, fill)
    positions: list[PaperPosition] = []
    events: list[TelemetryEvent] = []
    checkpoints: list[SessionCheckpoint] = []
    sessions: list[PaperSession] = []
    switches: list[KillSwitch] = []
    stepped: dict[str, _Cached] = {}
    now = timezone.now()
    for step in steps:
        session, engine = step.session, step.engine
        before = step.cached or step.checkpoint
        if before is not None and not step.records and not step.rows and \
                step.offsets == before.offsets and step.data_ts == before.data_ts:
            result.skipped[session.session_id] = "no new data"
            continue
        result.sessions.append(session.session_id)
        orders += _order_rows(session, engine, step.records)
        engine.compact()  # finished orders are written now: the checkpoint need not carry them
        for rec in step.records:
            if rec.type == "order_filled":
                f = rec.payload
                fills.append((f["client_order_id"], PaperFill(
                    session=session, fill_id=f["fill_id"], symbol=f["symbol"], side=f["side"],
                    quantity=f["quantity"], price=f["price"], arrival_mid=f["arrival_mid"],
                    slippage_bps=f["slippage_bps"], fee=f["fee"], liquidity=f["liquidity"],
                    route_id=f["route_id"], event_time=ns_to_datetime(f["ts"]))))
        now_s = time.monotonic()
        filled = {rec.payload["symbol"] for rec in step.records if rec.type == "order_filled"}
        marks_due = now_s - _MARKS_WRITTEN.get(session.session_id, -math.inf) >= MARKS_EVERY_S
        if marks_due:
            _MARKS_WRITTEN[session.session_id] = now_s
        for symbol, pos in engine.ledger.positions.items():
            if not marks_due and symbol not in filled:
                continue
            positions.append(PaperPosition(
                session=session, symbol=symbol, quantity=pos.quantity, avg_cost=pos.avg_cost,
                realized=pos.realized, unrealized=pos.unrealized, fees=pos.fees,
                mark=None if pos.mark != pos.mark else pos.mark))
        seq = session.last_event_seq
        for rec in step.records:
            seq += 1
            events.append(TelemetryEvent(env="paper", lane=session.lane.name, session=session,
                                         event_type=rec.type, sequence=seq, event_time=ns_to_datetime(rec.ts),
                                         payload=rec.payload))
        if seq != session.last_event_seq:
            session.last_event_seq = seq
            sessions.append(session)
        switch = _switch_row(step)
        if switch is not None:
            switches.append(switch)
        if (step.cached is not None and not step.records and switch is None
                and now_s - step.cached.written_at < _checkpoint_period_s(session.session_id)):
            # Quiet: nothing to write; the engine goes on from memory (see the module docstring).
            stepped[session.session_id] = _Cached(step.cached.steps, engine, step.offsets, step.data_ts,
                                                  step.cached.written_at)
            continue
        ledger = engine.ledger
        count = (step.checkpoint.steps if step.checkpoint else 0) + 1
        checkpoints.append(SessionCheckpoint(
            session=session, offsets=step.offsets, engine_state=engine_dump(engine),
            steps=count, data_ts=step.data_ts, cash=ledger.cash, equity=ledger.equity,
            created_at=now, updated_at=now))
        stepped[session.session_id] = _Cached(count, engine, step.offsets, step.data_ts, now_s)

    if orders:
        PaperOrder.objects.bulk_create(orders, update_conflicts=True, unique_fields=["client_order_id"],
                                       update_fields=[f for f in _ORDER_FIELDS if f != "session"])
    if fills:
        ids = dict(PaperOrder.objects.filter(client_order_id__in={c for c, _ in fills})
                   .values_list("client_order_id", "pk"))
        for coid, fill in fills:
            fill.order_id = ids[coid]
        PaperFill.objects.bulk_create([f for _, f in fills])
    result.fills = len(fills)
    if positions:
        PaperPosition.objects.bulk_create(positions, update_conflicts=True, unique_fields=["session", "symbol"],
                                          update_fields=list(_POSITION_FIELDS))
    TelemetryEvent.objects.bulk_create(events)
    result.events = len(events)
    if sessions:
        _set_event_seqs(sessions)
    for row in switches:
        KillSwitch.objects.update_or_create(scope=row.scope, defaults={
            "state": row.state, "actor": row.actor, "reason": row.reason})
    if checkpoints:
        SessionCheckpoint.objects.bulk_create(checkpoints, update_conflicts=True, unique_fields=["session"],
                                              update_fields=list(_CHECKPOINT_FIELDS))
    if events:
        out = [e.as_record(e.session.session_id) for e in events]
        transaction.on_commit(lambda: publish_committed(out))
    transaction.on_commit(lambda: _remember(stepped))
    return stepped


CONSUMED_KEY = "ifns:step:consumed"  # Redis hash: session id -> JSON of the stream offsets consumed


def _publish_positions(client, stepped: dict[str, _Cached]) -> None:
    """Where each session stands in its streams, including quiet steps the checkpoint does not
    show yet (monitoring: consumer lag). Best effort: the database stays the record."""
    if not stepped:
        return
    try:
        client.hset(CONSUMED_KEY, mapping={sid: json.dumps(c.offsets) for sid, c in stepped.items()})
    except redis.RedisError:
        log.warning("could not publish consumed offsets", exc_info=True)


def _set_event_seqs(sessions: list[PaperSession]) -> None:
    """``last_event_seq`` of several (locked) sessions in one UPDATE: what ``bulk_update``
    writes, without its per-row expression objects (a third of a busy step's writing time)."""
    table = PaperSession._meta.db_table
    cases = " ".join("WHEN %s THEN %s" for _ in sessions)
    params: list[int] = []
    for s in sessions:
        params += [s.pk, s.last_event_seq]
    params += [s.pk for s in sessions]
    marks = ", ".join("%s" for _ in sessions)
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "last_event_seq" = CASE "id" {cases} END WHERE "id" IN ({marks})',
                       params)


def _remember(stepped: dict[str, _Cached]) -> None:
    for sid, entry in stepped.items():
        _ENGINES[sid] = entry
        _ENGINES.move_to_end(sid)
    while len(_ENGINES) > ENGINE_CACHE_SIZE:
        _ENGINES.popitem(last=False)


def _order_rows(session: PaperSession, engine: SessionEngine, records: list[TelemetryRecord]) -> list[PaperOrder]:
    touched: set[str] = set()
    for rec in records:
        if rec.type in ("order_submitted", "order_filled", "order_rejected"):
            touched.add(rec.payload["client_order_id"])
    for view in engine.broker.working_orders():
        touched.add(view.order.client_order_id)
    rows = []
    for coid in sorted(touched):
        view = engine.broker.order(coid)
        if view is None:  # finished and forgotten in an earlier step (e.g. a resend rejected now)
            continue
        o = view.order
        rows.append(PaperOrder(
            client_order_id=coid, session=session, decision_id=o.decision_id, symbol=o.symbol, side=str(o.side),
            quantity=o.quantity, order_type=str(o.order_type), time_in_force=str(o.time_in_force),
            limit_price=o.limit_price, stop_price=o.stop_price, route_id=o.route_id, policy_id=o.policy_id,
            status=str(view.status), filled_quantity=view.filled_quantity, average_price=view.average_price,
            reason=view.reason, submitted_at=ns_to_datetime(view.submitted_ts)))
    return rows


def _switch_row(step: SessionStep) -> KillSwitch | None:
    """A switch change the engine made itself (e.g. REDUCING after a drawdown breach), to persist."""
    state = step.engine.switches.get(f"session:{step.session.session_id}")
    if step.switch_in_db is None and state is SwitchState.ACTIVE or step.switch_in_db == str(state):
        return None
    return KillSwitch(scope=f"session:{step.session.session_id}", state=str(state), actor="dra",
                      reason="automatic (risk breach)")
