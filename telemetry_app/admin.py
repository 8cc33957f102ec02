from django.contrib import admin

from ifns_paper.admin_base import ReadOnlyModelAdmin
from telemetry_app.models import FeedHealthEvent, TelemetryEvent


@admin.register(TelemetryEvent)
class TelemetryEventAdmin(ReadOnlyModelAdmin):
    """Append-only: view and filter, never edit."""

    list_display = ["session", "sequence", "event_type", "lane", "event_time"]
    list_filter = ["event_type", "lane"]
    search_fields = ["session__session_id"]
    list_select_related = ["session"]


@admin.register(FeedHealthEvent)
class FeedHealthEventAdmin(ReadOnlyModelAdmin):
    """Append-only feed health reports: view and filter, never edit."""

    list_display = ["feed", "status", "event_time", "last_tick_age_ms", "rows_total", "gaps", "restarts"]
    list_filter = ["feed", "status"]
