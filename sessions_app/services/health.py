"""Pushing session health to the pages (beat, once a second): the running, paused and
faulted sessions' health (``selectors.session_health``) to the overview and to each
session's page over the WebSocket. A read and a push: no database writes."""

from __future__ import annotations

from ifns_paper.engine.lifecycle import SessionStatus
from sessions_app import dispatch, selectors
from sessions_app.models import PaperSession
from telemetry_app.broadcast import push_session_health

LIVE = (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED)


def health_broadcast() -> int:
    """Push the health of every live session; returns how many."""
    sessions = list(PaperSession.objects.filter(status__in=LIVE).select_related("lane"))
    records = list(selectors.session_health(sessions, client=dispatch.redis_client()).values())
    push_session_health(records)
    return len(records)
