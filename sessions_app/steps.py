"""Real-time session steps: new market data → the session engines → the database.

A step advances a group of running sessions (a *shard*: the sessions of one feed that
hash to one step queue, see ``dispatch``). In one transaction it

1. locks their rows (steps of one session never run concurrently) and gets each one's
   engine: this worker's copy in memory while it continues the stored checkpoint,
   otherwise the checkpoint's, otherwise a new one;
2. reads the feed's stream once, from the oldest checkpoint, and runs each engine on its
   own symbols' entries after its own checkpoint (clock entries included);
3. turns each session's output into plain rows (orders, fills, positions, events,
   control changes, checkpoint), then writes all sessions' rows with a handful of bulk
   statements, through the owning apps' services (broker_app, telemetry via
   ``services.events``, ``services.controls``).

**Faults stay in their session.** An exception while building, running or persisting one
session's engine is caught for that session only: the others are written as if it were
absent (a failed bulk write is retried session by session, each in its own savepoint, to
find the culprit). The faulty session is moved to ``faulted`` by the lifecycle service in
the same transaction, with an ``incident`` event and a change-log entry, so it is not
stepped again until an operator resumes it; its checkpoint stays where its last good step
left it. Errors of the step as a whole (the stream read, the database or Redis going away)
propagate: the task retries after a capped backoff (``dispatch.step_failed``).

A step that dies before committing leaves nothing behind; the redelivered step starts
from the same checkpoints and, the engines being deterministic, produces the same
results. Unique keys (client order id, fill id, event sequence) back this up.

Engines stay in the worker's memory between steps (``_ENGINES``); a cached engine is used
only while the checkpoint's step counter is the one it was saved with, so a step committed
elsewhere (another worker, a restart) is always picked up from the database. A *quiet*
step (no telemetry, hence no order, fill or switch change) writes nothing: its session is
checkpointed at its next step with output, or after ``CHECKPOINT_EVERY_S``; a worker that
restarts from the older checkpoint re-reads those entries and reaches the same state.
Finished orders are dropped from the engine once written (``SessionEngine.compact``), so
the checkpoint stays small however long the session runs. Position rows are written at
every fill and their marks (unrealized P&L) at most once a second (``MARKS_EVERY_S``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
import zlib
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import JSONField, OuterRef, Subquery, Value
from django.db.models.functions import Concat
from django.utils import timezone

from broker_app.services import ExecutionRows, FillRow, OrderRow, PositionRow, execution_rows_write
from ifns_paper import marketbus
from ifns_paper.engine.lifecycle import SessionStatus
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.engine.session import DRA_ACTOR, SessionEngine, TelemetryRecord
from sessions_app.checkpoints import engine_dump, engine_load  # noqa: F401 - engine_load re-exported
from sessions_app.engines import build_engine
from sessions_app.models import KillSwitch, PaperSession, SessionCheckpoint, SessionCooldown
from sessions_app.services.controls import (
    cooldown_record,
    cooldown_request_taken,
    kill_switch_record_automatic,
)
from sessions_app.services.events import Event, sessions_events_append
from sessions_app.services.sessions import Fault, session_fault
from telemetry_app.choices import EventType
from telemetry_app.services import series_record

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_STEP = 20_000
ENGINE_CACHE_SIZE = 256
CHECKPOINT_EVERY_S = 2.0  # a quiet session's checkpoint is written at least this often
MARKS_EVERY_S = 1.0  # position rows at every fill; their marks (unrealized P&L) at most this often
# Errors of the infrastructure, not of a session: the whole step is retried after a backoff.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError,)

HEALTH_KEY = "ifns:step:health"  # Redis hash: session id -> JSON of where its steps stand (monitoring)


@dataclass
class _Cached:
    """A session's engine as this worker left it after its last step."""

    steps: int  # the checkpoint (its step count) the engine continues from
    engine: SessionEngine
    offsets: dict  # consumed up to here (ahead of the checkpoint after quiet steps)
    data_ts: int
    written_at: float  # monotonic time of the last checkpoint write


_ENGINES: OrderedDict[str, _Cached] = OrderedDict()  # session id -> its engine, most recent last
_MARKS_WRITTEN: dict[str, float] = {}  # session id -> monotonic time of the last mark write
_STEP_TIMES: dict[str, deque[float]] = defaultdict(deque)  # session id -> monotonic times of its last steps


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ns: int) -> datetime:
    """Epoch nanoseconds → an aware datetime, truncated to the microsecond exactly (no float)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _checkpoint_period_s(session_id: str) -> float:
    """CHECKPOINT_EVERY_S give or take 25 %, fixed per session: sessions started together
    drift apart instead of all writing their checkpoints in the same step."""
    return CHECKPOINT_EVERY_S * (0.75 + 0.5 * (zlib.crc32(session_id.encode()) % 1000) / 1000)


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
    cached: _Cached | None = None  # the in-memory engine this step continues, if valid
    records: list[TelemetryRecord] = field(default_factory=list)
    rows: int = 0
    read_from: dict = field(default_factory=dict)  # stream key -> entry id read after (incident reports)
    cooldown_taken: bool = False  # an operator's cooldown request was handed to the engine


@dataclass
class _Plan:
    """What one session's step writes: plain rows, built before anything is written."""

    step: SessionStep
    execution: ExecutionRows
    events: list[Event]
    switch_changes: list[dict]  # kill_switch_change payloads the engine made itself
    cooldown_changes: list[tuple[int, dict]]  # (event time ns, cooldown_state_change payload)
    checkpoint: SessionCheckpoint | None  # None: a quiet step, nothing to checkpoint yet
    cached: _Cached
    series: list = field(default_factory=list)  # equity samples since the last written step


@dataclass
class StepResult:
    sessions: list[str] = field(default_factory=list)  # stepped
    rows: int = 0  # market-data rows consumed, all sessions
    events: int = 0
    fills: int = 0
    more: bool = False  # the read hit ``max_entries``: more data is waiting
    skipped: dict[str, str] = field(default_factory=dict)  # session id -> why it was not stepped
    faulted: dict[str, str] = field(default_factory=dict)  # session id -> fault summary
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
    docstring). Sessions that are not running are skipped; a session that faults is moved to
    ``faulted`` and the others go on."""
    result = StepResult()
    touched: list[str] = []
    clock = _Laps(result.timings_ms)
    faults: dict[str, Fault] = {}
    try:
        with transaction.atomic():
            transaction.on_commit(lambda: clock.lap("commit"))  # first of the hooks: right after COMMIT
            steps = _load(session_ids, result, faults)
            clock.lap("load")
            touched = [s.session.session_id for s in steps]
            if steps:
                _run(steps, client, max_entries, result, faults)
                clock.lap("run")
                stepped = _persist([s for s in steps if s.session.session_id not in faults], result, faults)
                clock.lap("persist")
                transaction.on_commit(lambda: _publish_health(client, stepped))
            for sid, fault in sorted(faults.items()):
                session_fault(session_id=sid, fault=fault)
                result.faulted[sid] = fault.summary
        clock.lap("publish")  # the after-commit hooks: NDJSON, pushes, health
    except BaseException:
        for sid in touched:  # their engines ran past the database state: rebuild from it next time
            _ENGINES.pop(sid, None)
        raise
    for sid in faults:
        _ENGINES.pop(sid, None)
        log.warning("session %s faulted and left its steps: %s", sid, faults[sid].summary)
    return result


def session_step(*, session_id: str, client, max_entries: int = MAX_ENTRIES_PER_STEP) -> StepResult:
    """One session's step (tests, operators' tools): ``step_sessions`` of one."""
    return step_sessions([session_id], client=client, max_entries=max_entries)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure errors: the database connection or Redis went away. Not a session's fault."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, TRANSIENT_ERRORS + (OperationalError, InterfaceError))


def _fault_of(phase: str, exc: BaseException, step: SessionStep | None = None,
              cp: SessionCheckpoint | None = None) -> Fault:
    if is_transient(exc) or not isinstance(exc, Exception):
        raise exc  # the whole step retries (or the worker is going away)
    cp = step.checkpoint if step is not None else cp
    stream = {}
    if step is not None:
        stream = {key: [after, step.offsets.get(key)] for key, after in step.read_from.items()}
    return Fault(phase, exc, stream, cp.steps if cp else None, step.data_ts if step else (cp.data_ts if cp else None))


def _load(session_ids: list[str], result: StepResult, faults: dict[str, Fault]) -> list[SessionStep]:
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
                  switch_session=_switch_state(Concat(Value("session:"), OuterRef("session_id"))),
                  cooldown_requested=Subquery(SessionCooldown.objects.filter(session=OuterRef("pk"))
                                              .values("requested")[:1], output_field=JSONField()))
        .filter(session_id__in=session_ids).order_by("session_id")
    )
    found = {s.session_id for s in sessions}
    for sid in session_ids:
        if sid not in found:
            result.skipped[sid] = "unknown session"
    steps = []
    for session in sessions:
        if session.status != SessionStatus.RUNNING:
            result.skipped[session.session_id] = "not running"
            continue
        cp = getattr(session, "checkpoint", None)
        try:
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
            step = SessionStep(session, engine, cp, offsets, data_ts, cached)
            if cp is not None:
                step.records += engine.enforce_switches(cp.data_ts)
                step.records += _operator_cooldown(step, session.cooldown_requested)
        except Exception as exc:  # noqa: BLE001 - contained to this session (transient errors re-raised)
            faults[session.session_id] = _fault_of("load", exc, cp=cp)
            continue
        steps.append(step)
    return steps


def _operator_cooldown(step: SessionStep, request: dict | None) -> list[TelemetryRecord]:
    """An operator's waiting cooldown request (``services.controls.cooldown_request``), applied
    at the engine's data time. A session that has not seen data yet keeps it waiting."""
    if isinstance(request, str):  # a backend that returns the subquery's JSON undecoded
        request = json.loads(request)
    if not request or not step.data_ts:
        return []
    step.cooldown_taken = True
    duration_ns = int(float(request.get("duration_s") or 0) * 1e9)
    return step.engine.set_cooldown(active=bool(request["active"]), ts=step.data_ts, duration_ns=duration_ns,
                                    actor=request["actor"], reason=request["reason"])


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


def _run(steps: list[SessionStep], client, max_entries: int, result: StepResult, faults: dict[str, Fault]) -> None:
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
            sid = step.session.session_id
            step.read_from[key] = after[sid]
            try:
                read = entries.select(set(step.session.symbols), after=after[sid])
                if read.last_id:
                    step.offsets[key] = read.last_id
                records, step.data_ts, skipped = apply_items(step.engine, read.batches, step.data_ts)
            except Exception as exc:  # noqa: BLE001 - contained to this session
                faults[sid] = _fault_of("run", exc, step)
                continue
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


# --- persisting ---------------------------------------------------------------------------


def _persist(steps: list[SessionStep], result: StepResult, faults: dict[str, Fault]) -> dict[str, _Cached]:
    """Plan every session's rows, then write them all at once; if that fails, write them
    session by session (each in a savepoint) so that only the faulty ones are left out."""
    plans: list[_Plan] = []
    now = timezone.now()
    for step in steps:
        sid = step.session.session_id
        before = step.cached or step.checkpoint
        if before is not None and not step.records and not step.rows and not step.cooldown_taken and \
                step.offsets == before.offsets and step.data_ts == before.data_ts:
            result.skipped[sid] = "no new data"
            continue
        try:
            plans.append(_plan(step, now))
        except Exception as exc:  # noqa: BLE001 - contained to this session
            faults[sid] = _fault_of("persist", exc, step)
    seqs = {id(p): p.step.session.last_event_seq for p in plans}
    try:
        with transaction.atomic():
            _write(plans)
        written = plans
    except Exception as exc:  # noqa: BLE001 - find the faulty session(s), write the others
        if is_transient(exc):
            raise
        written = []
        for plan in plans:
            plan.step.session.last_event_seq = seqs[id(plan)]  # the rolled-back append moved it
            try:
                with transaction.atomic():
                    _write([plan])
                written.append(plan)
            except Exception as one:  # noqa: BLE001 - contained to this session (transient re-raised)
                plan.step.session.last_event_seq = seqs[id(plan)]
                faults[plan.step.session.session_id] = _fault_of("persist", one, plan.step)
    for plan in written:
        result.sessions.append(plan.step.session.session_id)
        result.events += len(plan.events)
        result.fills += len(plan.execution.fills)
    stepped = {p.step.session.session_id: p.cached for p in written}
    transaction.on_commit(lambda: _remember(stepped))
    return stepped


def _plan(step: SessionStep, now: datetime) -> _Plan:
    session, engine = step.session, step.engine
    sid = session.session_id
    execution = ExecutionRows(orders=_order_rows(session, engine, step.records))
    engine.compact()  # finished orders are in the rows now: the checkpoint need not carry them
    switch_changes, cooldown_changes = [], []
    for rec in step.records:
        if rec.type == EventType.ORDER_FILLED:
            f = rec.payload
            execution.fills.append(FillRow(
                session.pk, f["client_order_id"], f["fill_id"], f["symbol"], f["side"], f["quantity"], f["price"],
                f["arrival_mid"], f["slippage_bps"], f["fee"], f["liquidity"], f["route_id"], ns_to_datetime(f["ts"])))
        elif rec.type == EventType.KILL_SWITCH_CHANGE and rec.payload.get("actor") == DRA_ACTOR:
            switch_changes.append(rec.payload)
        elif rec.type == EventType.COOLDOWN_STATE_CHANGE:
            cooldown_changes.append((rec.ts, rec.payload))
    now_s = time.monotonic()
    filled = {f.symbol for f in execution.fills}
    marks_due = now_s - _MARKS_WRITTEN.get(sid, -math.inf) >= MARKS_EVERY_S
    if marks_due:
        _MARKS_WRITTEN[sid] = now_s
    for symbol, pos in engine.ledger.positions.items():
        if marks_due or symbol in filled:
            execution.positions.append(PositionRow(
                session.pk, symbol, pos.quantity, pos.avg_cost, pos.realized, pos.unrealized, pos.fees,
                None if pos.mark != pos.mark else pos.mark))
    events: list[Event] = [(rec.type, ns_to_datetime(rec.ts), rec.payload) for rec in step.records]
    quiet = not step.records and not switch_changes
    if (step.cached is not None and quiet
            and now_s - step.cached.written_at < _checkpoint_period_s(sid)):
        # Quiet: nothing to write; the engine goes on from memory (see the module docstring).
        cached = _Cached(step.cached.steps, engine, step.offsets, step.data_ts, step.cached.written_at)
        return _Plan(step, execution, events, [], [], None, cached)
    series = engine.drain_series()  # before the dump: the checkpoint need not carry them
    ledger = engine.ledger
    count = (step.checkpoint.steps if step.checkpoint else 0) + 1
    checkpoint = SessionCheckpoint(
        session=session, offsets=step.offsets, engine_state=engine_dump(engine), steps=count,
        data_ts=step.data_ts, cash=ledger.cash, equity=ledger.equity,
        pnl=ledger.equity - ledger.starting_capital, fills=ledger.fill_count, trades=ledger.trades,
        created_at=now, updated_at=now)
    cached = _Cached(count, engine, step.offsets, step.data_ts, now_s)
    return _Plan(step, execution, events, switch_changes, cooldown_changes, checkpoint, cached, series)


_CHECKPOINT_FIELDS = ("offsets", "engine_state", "steps", "data_ts", "cash", "equity", "pnl", "fills", "trades",
                      "updated_at")


def _write(plans: list[_Plan]) -> None:
    execution = ExecutionRows()
    for plan in plans:
        execution.extend(plan.execution)
    execution_rows_write(rows=execution)
    _test_hook_after_execution_rows()
    sessions_events_append(items=[(p.step.session, p.events) for p in plans if p.events])
    for plan in plans:
        session = plan.step.session
        series_record(session_pk=session.pk, points=plan.series)
        for change in plan.switch_changes:
            kill_switch_record_automatic(scope=change["scope"], state=change["to"], actor=change["actor"],
                                         reason=change["reason"])
        for ts, change in plan.cooldown_changes:
            cooldown_record(session=session, active=change["active"], at_ns=ts, until_ns=change["until_ns"],
                            reason=change["reason"], actor=change.get("actor", DRA_ACTOR))
        if plan.step.cooldown_taken:
            cooldown_request_taken(session=session)
    checkpoints = [p.checkpoint for p in plans if p.checkpoint is not None]
    if checkpoints:
        SessionCheckpoint.objects.bulk_create(checkpoints, update_conflicts=True, unique_fields=["session"],
                                              update_fields=list(_CHECKPOINT_FIELDS))


def _test_hook_after_execution_rows() -> None:
    """Tests only (``IFNS_TEST_STEP_HOOK_FILE``): once that file exists, the step does what it
    says right here — orders and fills inserted, events and checkpoints not yet, nothing
    committed: ``die`` (SIGKILL this worker) or ``pause <seconds>`` (writes ``<file>.paused``
    first, so a test knows the step holds its transaction open)."""
    path = getattr(settings, "IFNS_TEST_STEP_HOOK_FILE", "")
    if not path or not os.path.exists(path):
        return
    command = open(path).read().split()  # noqa: SIM115 - read once, then the file goes
    os.unlink(path)
    if command[:1] == ["pause"]:
        open(path + ".paused", "w").close()  # noqa: SIM115
        time.sleep(float(command[1]))
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _order_rows(session: PaperSession, engine: SessionEngine, records: list[TelemetryRecord]) -> list[OrderRow]:
    touched: set[str] = set()
    for rec in records:
        if rec.type in (EventType.ORDER_SUBMITTED, EventType.ORDER_FILLED, EventType.ORDER_REJECTED):
            touched.add(rec.payload["client_order_id"])
    for view in engine.broker.working_orders():
        touched.add(view.order.client_order_id)
    rows = []
    for coid in sorted(touched):
        view = engine.broker.order(coid)
        if view is None:  # finished and forgotten in an earlier step (e.g. a resend rejected now)
            continue
        o = view.order
        rows.append(OrderRow(
            session.pk, coid, o.decision_id, o.symbol, str(o.side), o.quantity, str(o.order_type),
            str(o.time_in_force), o.limit_price, o.stop_price, o.route_id, o.policy_id, str(view.status),
            view.filled_quantity, view.average_price, view.reason, ns_to_datetime(view.submitted_ts)))
    return rows


# --- after commit -------------------------------------------------------------------------


def _publish_health(client, stepped: dict[str, _Cached]) -> None:
    """Where each stepped session stands (monitoring: consumer lag, step rate), including quiet
    steps the checkpoint does not show yet. Best effort: the database stays the record."""
    if not stepped:
        return
    now_s, wall = time.monotonic(), time.time()
    mapping = {}
    for sid, c in stepped.items():
        times = _STEP_TIMES[sid]
        times.append(now_s)
        while times and times[0] < now_s - 60:
            times.popleft()
        ledger = c.engine.ledger
        mapping[sid] = json.dumps({"offsets": c.offsets, "data_ts": c.data_ts, "stepped_at": wall,
                                   "steps_per_min": len(times),
                                   # the book as of this step, for the pages' live figures
                                   "equity": _finite(ledger.equity),
                                   "pnl": _finite(ledger.equity - ledger.starting_capital),
                                   "fills": ledger.fill_count})
    try:
        client.hset(HEALTH_KEY, mapping=mapping)
    except redis.RedisError:
        log.warning("could not publish step health", exc_info=True)


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _remember(stepped: dict[str, _Cached]) -> None:
    for sid, entry in stepped.items():
        _ENGINES[sid] = entry
        _ENGINES.move_to_end(sid)
    while len(_ENGINES) > ENGINE_CACHE_SIZE:
        _ENGINES.popitem(last=False)
