from django.contrib import admin

from telemetry_app.models import FeedHealthEvent, TelemetryEvent


@admin.register(TelemetryEvent)
class TelemetryEventAdmin(admin.ModelAdmin):
    """Append-only: view and filter, never edit."""

    list_display = ["session", "sequence", "event_type", "lane", "event_time"]
    list_filter = ["event_type", "lane"]
    search_fields = ["session__session_id"]
    list_select_related = ["session"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FeedHealthEvent)
class FeedHealthEventAdmin(admin.ModelAdmin):
    """Append-only feed health reports: view and filter, never edit."""

    list_display = ["feed", "status", "event_time", "last_tick_age_ms", "rows_total", "gaps", "restarts"]
    list_filter = ["feed", "status"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
