"""Reads of broker_app's tables."""

from __future__ import annotations

from django.db.models import QuerySet

from broker_app.models import ExecutionPolicy, ExecutionRoute, PaperFill, PaperOrder, PaperPosition


def policy_get(*, policy_id: str) -> ExecutionPolicy | None:
    return ExecutionPolicy.objects.select_related("route").filter(policy_id=policy_id).first()


def route_configs(*, route_ids: list[str]) -> dict[str, dict]:
    """Routes as the engine's ``routes_from_mapping`` takes them (the config file's shape)."""
    return {r.route_id: {"simulation": r.simulation, "latency": r.latency, "fees": r.fees,
                         "stale_quote_ms": r.stale_quote_ms, "failures": r.failures,
                         "trading_hours": r.trading_hours}
            for r in ExecutionRoute.objects.filter(route_id__in=route_ids)}


def orders_for_session(*, session_id: str) -> QuerySet[PaperOrder]:
    return PaperOrder.objects.filter(session__session_id=session_id).order_by("submitted_at", "id")


def fills_for_session(*, session_id: str) -> QuerySet[PaperFill]:
    return PaperFill.objects.filter(session__session_id=session_id).order_by("event_time", "id")


def positions_for_session(*, session_id: str) -> QuerySet[PaperPosition]:
    return PaperPosition.objects.filter(session__session_id=session_id).order_by("symbol")
