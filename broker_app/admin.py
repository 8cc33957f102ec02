"""Routes and policies are loaded from config/policies/*.json: read-only here."""

from django.contrib import admin

from broker_app.models import ExecutionPolicy, ExecutionRoute
from ifns_paper.admin_base import ReadOnlyModelAdmin


@admin.register(ExecutionRoute)
class ExecutionRouteAdmin(ReadOnlyModelAdmin):
    list_display = ["route_id", "fill_model", "stale_quote_ms", "updated_at"]


@admin.register(ExecutionPolicy)
class ExecutionPolicyAdmin(ReadOnlyModelAdmin):
    list_display = ["policy_id", "urgency", "order_type", "time_in_force", "route"]
