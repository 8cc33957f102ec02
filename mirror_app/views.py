"""Mirror pages. Thin: one selector call each, then render."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from ifns_paper.engine.lifecycle import allowed_actions
from sessions_app import dispatch, selectors
from telemetry_app.selectors import events_for_session, feed_health_latest


def overview(request):
    return render(request, "mirror/overview.html",
                  {"lanes": selectors.lanes_overview_with_health(client=dispatch.redis_client()),
                   "feeds": feed_health_latest()})


def session_detail(request, session_id: str):
    session = selectors.session_get(session_id=session_id)
    if session is None:
        raise Http404(f"no paper session {session_id!r}")
    events = list(events_for_session(session_id=session_id).order_by("-sequence")[:50])
    return render(
        request,
        "mirror/session_detail.html",
        {
            "session": session,
            "health": selectors.session_health([session], client=dispatch.redis_client())[session_id],
            "events": events,
            "changes": selectors.changelog_for(target_type="paper_session", target_id=session_id),
            "allowed_actions": [a.value for a in allowed_actions(session.status)],
        },
    )
