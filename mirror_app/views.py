"""Mirror pages and the Admin controls on them. Thin: parse, call a selector (``pages``) or a
service, render. Signed-in users with a role only; controls need the operator role, checked
here on every POST whatever the page showed."""

from __future__ import annotations

import functools

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS, SessionStatus, allowed_actions
from ifns_paper.exceptions import ApplicationError
from ifns_paper.roles import Capability, user_can
from mirror_app import pages
from sessions_app import dispatch, selectors, services
from sessions_app.services.controls import cooldown_request
from telemetry_app.choices import EventType
from telemetry_app.selectors import feed_health_latest, summary_latest


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


def operator_required(view):
    """Controls: the operator role, or 403 naming it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.OPERATE):
            raise PermissionDenied(f"{request.user.username} needs the operator role for this")
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request) -> str:
    return f"web:{request.user.username}"


def _back(request, fallback: str):
    """Back to the page the form was on (same site only)."""
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else fallback)


def _report(request, exc: ApplicationError) -> None:
    messages.error(request, exc.described())


# --- overview -------------------------------------------------------------------------------


@viewer_required
@require_GET
def overview(request):
    q = {k: (request.GET.get(k) or "").strip() or None for k in ("lane", "status", "owner", "tag")}
    problems = []
    lane_names = selectors.lane_names()
    if q["lane"] and q["lane"] not in lane_names:
        problems.append(f"lane: no lane {q['lane']!r}")
    if q["status"] and q["status"] not in {s.value for s in SessionStatus}:
        problems.append(f"status: {q['status']!r} is not a session status")
    lanes = [] if problems else pages.overview(**q)
    return render(request, "mirror/overview.html", {
        "lanes": lanes, "feeds": feed_health_latest(), "filters": q, "problems": problems,
        "all_lanes": lane_names,
        "statuses": [s.value for s in SessionStatus], "can_operate": user_can(request.user, Capability.OPERATE),
    }, status=400 if problems else 200)


# --- drill-down ------------------------------------------------------------------------------


def _session_or_404(session_id: str):
    session = selectors.session_get(session_id=session_id)
    if session is None:
        raise Http404(f"no paper session {session_id!r}")
    return session


@viewer_required
@require_GET
def session_detail(request, session_id: str):
    session = _session_or_404(session_id)
    summary = summary_latest(session_id=session_id)
    comparison = None
    from sessions_app.services.comparisons import comparison_stored

    try:
        comparison = comparison_stored(session_id=session_id)
    except ApplicationError:
        comparison = None  # no backtest yet: the page says how to make one
    health = selectors.session_health([session], client=dispatch.redis_client())[session_id]
    return render(request, "mirror/session_detail.html", {
        "session": session,
        "health": health,
        "summary": summary.data if summary else None,
        "summary_at": summary.created_at if summary else None,
        "risk": pages.risk_usage(summary.data if summary else None),
        "charts": pages.chart_data(session),
        "tables": pages.tables(session),
        "events": pages.event_rows(session),
        "event_types": [t.value for t in EventType],
        "comparison": comparison,
        "changes": selectors.changelog_for(target_type="paper_session", target_id=session_id),
        "allowed_actions": [a.value for a in allowed_actions(session.status)],
        "can_operate": user_can(request.user, Capability.OPERATE),
        "switch_states": [s.value for s in SwitchState],
    })


@viewer_required
@require_GET
def session_event_rows(request, session_id: str):
    """The event stream's rows as HTML (``after``: newer than the newest shown, for live
    updates and backfill; ``before``: a page further back), with the page's filters."""
    session = _session_or_404(session_id)
    try:
        after = int(request.GET["after"]) if request.GET.get("after") else None
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        return HttpResponseBadRequest("after, before: whole sequence numbers")
    event_type = request.GET.get("type") or None
    if event_type and event_type not in {t.value for t in EventType}:
        return HttpResponseBadRequest(f"type: unknown event type {event_type!r}")
    rows = pages.event_rows(session, after=after, before=before, event_type=event_type,
                            symbol=request.GET.get("symbol") or None,
                            limit=1000 if after is not None else pages.EVENT_PAGE)
    return render(request, "mirror/_event_rows.html", {"events": rows, "session": session,
                                                        "paging": before is not None or after is None})


@viewer_required
@require_GET
def controls_banner(request):
    """The header's kill-switch banner alone (the pages refresh it when a switch changes)."""
    return render(request, "mirror/_controls_banner.html", {"SWITCHES_IN_FORCE": selectors.kill_switches_in_force()})


# --- controls (operators) ----------------------------------------------------------------------


@operator_required
@require_POST
def session_action(request, session_id: str):
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "").strip()
    fallback = f"/sessions/{session_id}/"
    if action not in {a.value for a in OPERATOR_ACTIONS}:
        messages.error(request, f"action: {action!r} is not one of {', '.join(a.value for a in OPERATOR_ACTIONS)}")
        return _back(request, fallback)
    if not reason:
        messages.error(request, f"reason: say why you {action} {session_id} (it goes to the change log)")
        return _back(request, fallback)
    try:
        session = services.session_transition(session_id=session_id, action=action, actor=_actor(request),
                                              reason=reason)
    except ApplicationError as exc:
        _report(request, exc)
    else:
        messages.success(request, f"{session.session_id}: {session.status}")
    return _back(request, fallback)


@operator_required
@require_POST
def kill_switch(request):
    scope, state = request.POST.get("scope", ""), request.POST.get("state", "")
    reason = request.POST.get("reason", "").strip()
    if not reason:
        messages.error(request, f"reason: say why {scope or 'the switch'} goes {state or '?'}")
        return _back(request, "/")
    try:
        switch = services.kill_switch_set(scope=scope, state=state, actor=_actor(request), reason=reason)
    except ApplicationError as exc:
        _report(request, exc)
    else:
        messages.success(request, f"kill switch {switch.scope}: {switch.state}")
    return _back(request, "/")


@operator_required
@require_POST
def session_cooldown(request, session_id: str):
    action = request.POST.get("action")
    raw = (request.POST.get("duration_s") or "").strip()
    try:
        duration = float(raw) if raw else None
    except ValueError:
        messages.error(request, f"duration_s: {raw!r} is not a number of seconds")
        return _back(request, f"/sessions/{session_id}/")
    try:
        cooldown_request(session_id=session_id, active=action == "set", duration_s=duration,
                         actor=_actor(request), reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _report(request, exc)
    else:
        messages.success(request, f"{session_id}: cooldown {'of ' + raw + ' s' if action == 'set' else 'end'} "
                                  "requested; the session's next step applies it")
    return _back(request, f"/sessions/{session_id}/")
