from django.contrib import admin

from telemetry_app.models import TelemetryEvent


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
