"""Routes and policies are loaded from config/policies/*.json: read-only here."""

from django.contrib import admin

from broker_app.models import ExecutionPolicy, ExecutionRoute


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExecutionRoute)
class ExecutionRouteAdmin(_ReadOnly):
    list_display = ["route_id", "fill_model", "stale_quote_ms", "updated_at"]


@admin.register(ExecutionPolicy)
class ExecutionPolicyAdmin(_ReadOnly):
    list_display = ["policy_id", "urgency", "order_type", "time_in_force", "route"]
