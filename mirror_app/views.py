"""Mirror pages. Thin: one selector call each, then render. Signed-in users with a role only."""

from __future__ import annotations

import functools

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render

from ifns_paper.engine.lifecycle import allowed_actions
from ifns_paper.roles import Capability, user_can
from sessions_app import dispatch, selectors
from telemetry_app.selectors import events_for_session, feed_health_latest


def viewer_required(view):
    """Pages need a signed-in user with a role (viewer at least); others go to the sign-in page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.READ):
            raise PermissionDenied(f"{request.user.username} has no role: ask an admin for viewer at least")
        return view(request, *args, **kwargs)

    return wrapper


@viewer_required
def overview(request):
    return render(request, "mirror/overview.html",
                  {"lanes": selectors.lanes_overview_with_health(client=dispatch.redis_client()),
                   "feeds": feed_health_latest()})


@viewer_required
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
