"""Writes to the telemetry store."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from ifns_paper.exceptions import ApplicationError
from sessions_app.models import PaperSession
from telemetry_app.choices import EventType, FeedStatus
from telemetry_app.models import FeedHealthEvent, TelemetryEvent
from telemetry_app.sinks import publish_committed, publish_feed_health_committed


def event_append(
    *,
    session: PaperSession,
    event_type: EventType | str,
    payload: dict,
    event_time: datetime,
) -> TelemetryEvent:
    """Append one event to ``session``'s stream with the next sequence number.

    Precondition: called inside ``transaction.atomic()`` with ``session``
    locked (``select_for_update``) by the caller, so sequence numbers are
    gap-free and unique per session. The event goes to the NDJSON sink and
    the Channels groups only after the transaction commits.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_append must run inside a transaction holding the session lock")
    EventType(event_type)  # unknown types are a programming error: fail here, not in a sink
    sequence = session.last_event_seq + 1
    PaperSession.objects.filter(pk=session.pk).update(last_event_seq=sequence)
    session.last_event_seq = sequence
    event = TelemetryEvent.objects.create(
        env="paper",
        lane=session.lane.name,
        session=session,
        event_type=str(event_type),
        sequence=sequence,
        event_time=event_time,
        payload=payload,
    )
    record = event.as_record(session.session_id)
    transaction.on_commit(lambda: publish_committed([record]))
    return event


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
