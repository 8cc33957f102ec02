"""Reads of the telemetry store."""

from __future__ import annotations

from django.db.models import Max, QuerySet

from telemetry_app.models import FeedHealthEvent, TelemetryEvent


def events_for_session(*, session_id: str, after: int = 0, event_type: str | None = None) -> QuerySet[TelemetryEvent]:
    """Events of one session with a sequence number above ``after``, oldest first."""
    qs = TelemetryEvent.objects.filter(session__session_id=session_id, sequence__gt=after)
    if event_type:
        qs = qs.filter(event_type=event_type)
    return qs.order_by("sequence")


def feed_health_latest() -> QuerySet[FeedHealthEvent]:
    """The latest health report of every feed that has reported, by feed name (one query)."""
    latest = FeedHealthEvent.objects.values("feed").annotate(last=Max("id")).values("last")
    return FeedHealthEvent.objects.filter(id__in=latest).order_by("feed")
