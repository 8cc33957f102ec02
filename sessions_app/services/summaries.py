"""Session summaries (spec §6.2): the metrics of ``ifns_paper.metrics`` over what a session
stored — its equity series, fills, orders, decisions, breaches and incidents — refreshed
while it runs (beat, once a minute) and made final when it ends. Stored by telemetry_app
(a row per session and as-of time, and a line of ``paper_summary.ndjson``)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from broker_app.selectors import fill_records, order_records
from ifns_paper.engine.lifecycle import TERMINAL, SessionStatus
from ifns_paper.metrics.conventions import Conventions, calendar_of
from ifns_paper.metrics.summary import limits_of, summarize
from sessions_app.checkpoints import engine_load
from sessions_app.models import PaperSession
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


def summary_compute(*, session_id: str, final: bool) -> dict | None:
    """The summary of a session from what it stored so far; None before its first checkpoint."""
    session = (PaperSession.objects.select_related("lane__risk_envelope", "strategy", "checkpoint")
               .filter(session_id=session_id).first())
    checkpoint = getattr(session, "checkpoint", None) if session else None
    if checkpoint is None:
        return None
    engine = engine_load(checkpoint.engine_state)
    envelope = session.lane.risk_envelope
    fills = fill_records(session_id=session_id)
    events = event_payloads(session_id=session_id, event_types=[
        EventType.DRA_DECISION, EventType.RISK_BREACH, EventType.INCIDENT])
    return summarize(
        session_id=session_id, lane=session.lane.name, strategy_id=str(session.strategy),
        as_of_ns=checkpoint.data_ts, final=final, conventions=conventions_for(session),
        starting_capital=engine.ledger.starting_capital, ledger=engine.ledger.snapshot(),
        series=minute_series_for_session(session_id=session_id), fills=fills,
        decisions=events[EventType.DRA_DECISION], orders=order_records(session_id=session_id, fills=fills),
        breaches=events[EventType.RISK_BREACH], incidents=events[EventType.INCIDENT],
        limits=limits_of({k: float(getattr(envelope, k)) for k in _ENVELOPE}), benchmark=session.benchmark,
        carried=engine.setup.initial_positions,
        started_ns=int(session.started_at.timestamp() * 1e9) if session.started_at else None)


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
        row = summary_record(session_pk=status[1], as_of_ns=data["as_of"], final=is_final, data=data)
    return data if row is not None else None


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
