"""Writes to the telemetry store."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from sessions_app.models import PaperSession
from telemetry_app.choices import EventType
from telemetry_app.models import TelemetryEvent
from telemetry_app.sinks import publish_committed


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
