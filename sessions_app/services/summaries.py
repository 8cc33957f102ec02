"""Session summaries (spec §6.2): the metrics of ``ifns_paper.metrics`` over what a session
stored — its equity series, fills, orders, decisions, breaches and incidents — refreshed
while it runs (beat, once a minute) and made final when it ends. Stored by telemetry_app
(a row per session and as-of time, and a line of ``paper_summary.ndjson``)."""

from __future__ import annotations

import logging
from collections import OrderedDict

from django.conf import settings
from django.db import transaction

from broker_app.selectors import FINAL_ORDER_STATUSES, fill_records, order_records
from ifns_paper.engine.lifecycle import TERMINAL, SessionStatus
from ifns_paper.engine.trades import RoundTripBook
from ifns_paper.metrics.conventions import Conventions, calendar_of
from ifns_paper.metrics.summary import MINUTE_NS, limits_of, summarize
from sessions_app.checkpoints import engine_load
from sessions_app.models import PaperSession
from telemetry_app.broadcast import push_session_summary
from telemetry_app.choices import EventType
from telemetry_app.selectors import event_payloads, minute_series_for_session, summary_exists
from telemetry_app.services import summary_record

log = logging.getLogger(__name__)
_ENVELOPE = ("max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
             "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute")


def conventions_for(session: PaperSession) -> Conventions:
    """The session's metric conventions: a 1-minute grid, its symbols' calendar, the
    configured annual risk-free rate (``IFNS_RISK_FREE_ANNUAL``), the lane's currency."""
    return Conventions(grid_s=60.0, calendar=calendar_of(list(session.symbols)),
                       risk_free_annual=settings.IFNS_RISK_FREE_ANNUAL, currency=session.lane.currency)


class _Inputs:
    """What one session's summary reads, kept between refreshes in this process: each
    refresh reads only the rows stored since the last one (fills and events by key, the
    equity series by time) and the orders that were still open; stored rows never change
    otherwise (a session's steps write its rows one step after the other, so a row not yet
    visible always comes after the ones read)."""

    def __init__(self, session_pk: int, carried: dict[str, tuple[float, float]]) -> None:
        self.session_pk = session_pk
        self.carried = carried
        self.fills: list[dict] = []
        self.trips = RoundTripBook(carried)  # the round trips of ``fills``, booked as they come
        self.shortfalls: dict = {}  # decision id -> its implementation shortfall (metrics.summary)
        self.first_fill: dict[str, int] = {}
        self.orders: dict[str, dict] = {}  # client order id -> record, in submission order
        self.open: list[str] = []  # orders not final at the last read
        self.events: dict[str, list[dict]] = {t: [] for t in _EVENT_TYPES}
        self.minutes: list[dict] = []  # whole-minute samples
        self.newest: dict | None = None  # the newest sample when it is not a whole minute
        self.fill_pk = self.order_pk = self.sequence = 0

    @property
    def rows(self) -> int:
        return len(self.fills) + len(self.orders) + sum(map(len, self.events.values())) + len(self.minutes)

    def update(self, session_id: str) -> None:
        new_fills = fill_records(session_id=session_id, after_pk=self.fill_pk)
        for f in new_fills:
            self.first_fill.setdefault(f["client_order_id"], f["ts"])
            self.fill_pk = max(self.fill_pk, f["pk"])
        self.fills.extend(new_fills)
        self.fills.sort(key=lambda f: (f["ts"], f["pk"]))  # in order already, unless a row came late
        if not self.trips.add(new_fills):
            self.trips = RoundTripBook(self.carried)
            self.trips.add(self.fills)
        for o in order_records(session_id=session_id, fills=[], after_pk=self.order_pk,
                               client_order_ids=self.open):
            o["first_fill_ns"] = self.first_fill.get(o["client_order_id"])
            self.orders[o["client_order_id"]] = o
            self.order_pk = max(self.order_pk, o["pk"])
        for coid in self.open:  # open orders filled since, but not re-read (cannot happen; be exact anyway)
            self.orders[coid]["first_fill_ns"] = self.first_fill.get(coid)
        self.open = [c for c, o in self.orders.items() if o["status"] not in FINAL_ORDER_STATUSES]
        new_events = event_payloads(session_id=session_id, event_types=list(_EVENT_TYPES), after=self.sequence)
        for kind, rows in new_events.items():
            self.events[kind].extend(rows)
            if rows:
                self.sequence = max(self.sequence, rows[-1]["sequence"])
        after = self.minutes[-1]["ts_ns"] if self.minutes else None
        points = [p for p in minute_series_for_session(session_id=session_id, after_ns=after)
                  if after is None or p["ts_ns"] > after]
        if points and points[-1]["ts_ns"] % MINUTE_NS:
            self.newest = points.pop()
        elif points:
            self.newest = None
        self.minutes.extend(points)

    def series(self) -> list[dict]:
        return self.minutes + ([self.newest] if self.newest is not None else [])

    def ordered_orders(self) -> list[dict]:
        return sorted(self.orders.values(), key=lambda o: (o["submitted_ns"], o["pk"]))


_EVENT_TYPES = (EventType.DRA_DECISION, EventType.RISK_BREACH, EventType.INCIDENT)
INPUTS_MAX_ROWS = 2_000_000  # rows kept between refreshes in one process, all sessions together
_inputs: OrderedDict[str, _Inputs] = OrderedDict()  # session id -> inputs, least recently used first


def _inputs_for(session_id: str, session_pk: int, carried: dict[str, tuple[float, float]]) -> _Inputs:
    """The session's inputs brought up to date (from scratch the first time, after its
    session was re-registered, or after it was evicted to keep within ``INPUTS_MAX_ROWS``)."""
    inputs = _inputs.pop(session_id, None)
    if inputs is None or inputs.session_pk != session_pk or inputs.carried != carried:
        inputs = _Inputs(session_pk, carried)
    inputs.update(session_id)
    _inputs[session_id] = inputs
    total = sum(i.rows for i in _inputs.values())
    while total > INPUTS_MAX_ROWS and len(_inputs) > 1:
        _, evicted = _inputs.popitem(last=False)
        total -= evicted.rows
    return inputs


def inputs_forget(session_id: str | None = None) -> None:
    """Drop the kept inputs of a session (after its final summary), or all of them."""
    if session_id is None:
        _inputs.clear()
    else:
        _inputs.pop(session_id, None)


SPARK_POINTS = 60


def spark_of(session_id: str) -> list[float]:
    """Equity at the last ``SPARK_POINTS`` whole minutes (and the newest sample), from the
    inputs the summary was just computed with: the overview's sparkline at no extra read."""
    inputs = _inputs.get(session_id)
    if inputs is None:
        return []
    return [round(p["equity"], 2) for p in inputs.series()[-SPARK_POINTS:]]


def summary_compute(*, session_id: str, final: bool) -> dict | None:
    """The summary of a session from what it stored so far; None before its first checkpoint."""
    session = (PaperSession.objects.select_related("lane__risk_envelope", "strategy", "checkpoint")
               .filter(session_id=session_id).first())
    checkpoint = getattr(session, "checkpoint", None) if session else None
    if checkpoint is None:
        return None
    engine = engine_load(checkpoint.engine_state)
    envelope = session.lane.risk_envelope
    inputs = _inputs_for(session_id, session.pk, dict(engine.setup.initial_positions or {}))
    events = inputs.events
    return summarize(
        session_id=session_id, lane=session.lane.name, strategy_id=str(session.strategy),
        as_of_ns=checkpoint.data_ts, final=final, conventions=conventions_for(session),
        starting_capital=engine.ledger.starting_capital, ledger=engine.ledger.snapshot(),
        series=inputs.series(), fills=inputs.fills,
        decisions=events[EventType.DRA_DECISION], orders=inputs.ordered_orders(),
        breaches=events[EventType.RISK_BREACH], incidents=events[EventType.INCIDENT],
        limits=limits_of({k: float(getattr(envelope, k)) for k in _ENVELOPE}), benchmark=session.benchmark,
        carried=engine.setup.initial_positions, trips=inputs.trips.trips, shortfall_memo=inputs.shortfalls,
        benchmark_equity=_benchmark_equity(session.benchmark),
        started_ns=int(session.started_at.timestamp() * 1e9) if session.started_at else None)


def _benchmark_equity(benchmark: str):
    """The equity of ``backtest:<id>`` benchmarks (an imported or shadow backtest)."""
    if not benchmark.startswith("backtest:"):
        return None
    from sessions_app.services.backtests import backtest_equity

    return backtest_equity(benchmark.partition(":")[2])


def summary_refresh(*, session_id: str, final: bool | None = None) -> dict | None:
    """Compute and store a session's summary (final when the session has ended, unless
    ``final`` says otherwise); returns it, or None when there is nothing to summarise yet or
    a summary of that time and finality exists."""
    status = PaperSession.objects.filter(session_id=session_id).values_list("status", "pk", "checkpoint__data_ts"
                                                                            ).first()
    if status is None:
        return None
    is_final = SessionStatus(status[0]) in TERMINAL if final is None else final
    if summary_exists(session_id=session_id, as_of_ns=status[2], final=is_final):
        return None  # nothing new since the last one (a paused or idle session)
    data = summary_compute(session_id=session_id, final=is_final)
    if data is None:
        return None
    with transaction.atomic():
        row = summary_record(session_pk=status[1], as_of_ns=data["as_of"], final=is_final, data=data,
                             spark=spark_of(session_id))
    if is_final:
        inputs_forget(session_id)
    if row is None:
        return None
    push_session_summary({"type": "session_summary", "env": "paper", "session_id": session_id, "lane": data["lane"],
                          "as_of": data["as_of"], "final": is_final, "pnl": data["pnl"],
                          "fills": data["fills"]["count"]})
    return data


def summaries_refresh_running() -> int:
    """Refresh every running, paused or faulted session (beat, once a minute); returns how
    many summaries were written. A session whose summary fails is logged and skipped."""
    written = 0
    for sid in PaperSession.objects.filter(
            status__in=[SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED]
    ).values_list("session_id", flat=True):
        try:
            written += summary_refresh(session_id=sid) is not None
        except Exception:  # noqa: BLE001 - one session's summary never stops the others'
            log.exception("summary of %s failed", sid)
    return written
