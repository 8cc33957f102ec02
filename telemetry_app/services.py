"""Writes to the telemetry store."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction

from ifns_paper.exceptions import ApplicationError
from telemetry_app.choices import EventType, FeedStatus
from telemetry_app.models import EquitySample, FeedHealthEvent, SessionSummary, TelemetryEvent
from telemetry_app.sinks import publish_committed, publish_feed_health_committed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """One event to store. The session side owns sequence numbers: it allocates them under
    the session's row lock (``sessions_app.services.events``) and passes the session's row
    key and id, so this app needs nothing from ``sessions_app``."""

    session_pk: int
    session_id: str
    lane: str
    sequence: int
    event_type: str
    event_time: datetime
    payload: dict


def events_record(*, events: list[EventDraft]) -> list[TelemetryEvent]:
    """Store events with one INSERT; after the transaction commits they go to the NDJSON sink
    and the Channels groups. The one writer of telemetry events.

    Precondition: inside ``transaction.atomic()``, the sessions locked by the caller, the
    sequence numbers the next ones of each session (the unique key backs this up). An
    unknown event type raises ``ValueError`` before anything is written."""
    if not events:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("events_record must run inside a transaction holding the sessions' locks")
    for e in events:
        EventType(e.event_type)  # unknown types are a programming error: fail here, not in a sink
    rows = TelemetryEvent.objects.bulk_create([
        TelemetryEvent(env="paper", lane=e.lane, session_id=e.session_pk, event_type=str(e.event_type),
                       sequence=e.sequence, event_time=e.event_time, payload=e.payload) for e in events])
    records = [row.as_record(e.session_id) for row, e in zip(rows, events, strict=True)]
    transaction.on_commit(lambda: publish_committed(records))
    return rows


SERIES_FIELDS = ("ts_ns", "equity", "cash", "realized", "unrealized", "fees", "gross", "net", "drawdown",
                 "positions", "marks")
MINUTE_NS = 60_000_000_000


def series_record(*, session_pk: int, points: list) -> int:
    """Store a session's equity samples (objects with the ``SERIES_FIELDS`` attributes, e.g.
    the engine's ``SeriesPoint``); a point already stored for that time is left as it is
    (a step replayed after a crash writes nothing twice). Returns how many were offered."""
    if points:
        EquitySample.objects.bulk_create(
            [EquitySample(session_id=session_pk, **{f: getattr(p, f) if f != "ts_ns" else p.ts for f in SERIES_FIELDS})
             for p in points], ignore_conflicts=True)
    return len(points)


def series_downsample(*, before_ns: int) -> int:
    """Thin samples older than ``before_ns`` to one a minute (the whole-minute points stay);
    returns how many were deleted."""
    from django.db.models import F

    deleted, _ = (EquitySample.objects.filter(ts_ns__lt=before_ns)
                  .annotate(rest=F("ts_ns") % MINUTE_NS).exclude(rest=0).delete())
    return deleted


def summary_record(*, session_pk: int, as_of_ns: int, final: bool, data: dict,
                   spark: list[float] | None = None) -> SessionSummary | None:
    """Store a summary unless one of this session, as-of time and finality exists (then
    None); after commit, append it as one line to ``paper_summary.ndjson`` (one ``write`` of
    the whole line on a file opened for appending: a killed writer leaves no torn line, and a
    summary is never appended twice)."""
    row, created = SessionSummary.objects.get_or_create(session_id=session_pk, as_of_ns=as_of_ns, final=final,
                                                        defaults={"data": data, "spark": spark or []})
    if not created:
        return None
    line = (json.dumps(data, separators=(",", ":")) + "\n").encode()
    transaction.on_commit(lambda: append_summary_line(line))
    return row


def append_summary_line(line: bytes) -> None:
    path = summary_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        log.exception("could not append to %s", path)


def summary_file() -> Path:
    return Path(settings.IFNS_REGISTRY_DIR) / "paper_summary.ndjson"


def feed_health_record(
    *,
    feed: str,
    kind: str,
    status: FeedStatus | str,
    event_time: datetime,
    last_tick_age_ms: int | None,
    rows_total: int,
    gaps: int,
    restarts: int = 0,
    glitches: dict[str, int] | None = None,
    detail: str = "",
) -> FeedHealthEvent:
    """Append one health report of ``feed``; after commit it goes to
    ``<data dir>/telemetry/feeds/<feed>.ndjson`` and the ``paper.feeds`` group.

    Raises ``ApplicationError`` naming the field for a bad value (unknown status,
    negative count, naive time, glitch counts that are not whole numbers)."""
    if status not in FeedStatus.values:
        raise ApplicationError(f"status: must be one of {', '.join(FeedStatus.values)}, not {status!r}")
    if event_time.tzinfo is None:
        raise ApplicationError("event_time: must be timezone-aware")
    for name, value in (("rows_total", rows_total), ("gaps", gaps), ("restarts", restarts),
                        ("last_tick_age_ms", 0 if last_tick_age_ms is None else last_tick_age_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ApplicationError(f"{name}: must be a whole number >= 0, not {value!r}")
    glitches = dict(glitches or {})
    for name, value in glitches.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ApplicationError(f"glitches.{name}: must be a whole number >= 0, not {value!r}")
    with transaction.atomic():
        event = FeedHealthEvent.objects.create(
            env="paper", feed=feed, kind=kind, status=str(status), event_time=event_time,
            last_tick_age_ms=last_tick_age_ms, rows_total=rows_total, gaps=gaps, restarts=restarts,
            glitches=glitches, detail=detail[:500],
        )
        record = event.as_record()
        transaction.on_commit(lambda: publish_feed_health_committed(record))
    return event
