"""Reads of the telemetry store."""

from __future__ import annotations

from django.db.models import Max, QuerySet

from telemetry_app.models import EquitySample, FeedHealthEvent, TelemetryEvent


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


def series_for_session(*, session_id: str, from_ns: int | None = None, to_ns: int | None = None,
                       every_ns: int | None = None) -> list[dict]:
    """A session's equity samples in [from_ns, to_ns], oldest first; with ``every_ns``, only
    the last sample of each ``every_ns`` bucket (downsampling for long ranges)."""
    qs = EquitySample.objects.filter(session__session_id=session_id)
    if from_ns is not None:
        qs = qs.filter(ts_ns__gte=from_ns)
    if to_ns is not None:
        qs = qs.filter(ts_ns__lte=to_ns)
    rows = [s.as_record() for s in qs.order_by("ts_ns")]
    if every_ns:
        kept: dict[int, dict] = {}
        for r in rows:
            kept[r["ts_ns"] // every_ns] = r
        rows = list(kept.values())
    return rows
