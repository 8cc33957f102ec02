"""Reads for lanes and sessions."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from sessions_app.models import ChangeLogEntry, KillSwitch, Lane, PaperSession


def session_list(*, lane: str | None = None, status: str | None = None) -> QuerySet[PaperSession]:
    qs = PaperSession.objects.select_related("lane", "strategy", "execution_policy").prefetch_related(
        "model_links__entry"
    )
    if lane:
        qs = qs.filter(lane__name=lane)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("lane__name", "session_id")


def session_get(*, session_id: str) -> PaperSession | None:
    return session_list().filter(session_id=session_id).first()


def lanes_overview() -> QuerySet[Lane]:
    """Lanes with their envelope, policy, sessions and per-status counts (a fixed number of queries)."""
    return (
        Lane.objects.select_related("risk_envelope", "policy")
        .prefetch_related(Prefetch("sessions", queryset=session_list()))
        .annotate(
            n_sessions=Count("sessions"),
            n_running=Count("sessions", filter=Q(sessions__status="running")),
            n_scheduled=Count("sessions", filter=Q(sessions__status="scheduled")),
        )
        .order_by("name")
    )


def changelog_for(*, target_type: str, target_id: str, limit: int = 50) -> QuerySet[ChangeLogEntry]:
    return ChangeLogEntry.objects.filter(target_type=target_type, target_id=target_id)[:limit]


def kill_switch_list() -> QuerySet[KillSwitch]:
    return KillSwitch.objects.order_by("scope")
