"""Mirror pages. Thin: parse, call a selector (``pages``), render. Signed-in users with a role
only (``access``); the controls on these pages post to ``controls``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import SessionStatus
from ifns_paper.governance import RequestStatus
from ifns_paper.roles import Capability, user_can
from mirror_app import pages
from mirror_app.access import viewer_required
from sessions_app import selectors
from sessions_app.services.promotions import TAGS
from telemetry_app.choices import EventType
from telemetry_app.selectors import feed_health_latest

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
    return render(request, "mirror/session_detail.html", {
        **pages.drilldown(session),
        "can_operate": user_can(request.user, Capability.OPERATE),
        "switch_states": [s.value for s in SwitchState],
        "lanes": selectors.lane_names(), "tags": TAGS,
    })


@viewer_required
@require_GET
def session_tearsheet(request, session_id: str):
    """The drill-down as one self-contained HTML file (no network needed), downloaded."""
    session = _session_or_404(session_id)
    response = HttpResponse(pages.tearsheet_html(session), content_type="text/html; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="tearsheet_{session_id}.html"'
    return response


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
    symbol = request.GET.get("symbol") or None
    rows = pages.event_rows(session, after=after, before=before, event_type=event_type, symbol=symbol,
                            limit=1000 if after is not None else pages.EVENT_PAGE)
    given = {k: v for k, v in (("type", event_type), ("symbol", symbol)) if v}
    filters = "&" + urlencode(given) if given else ""
    return render(request, "mirror/_event_rows.html", {"events": rows, "session": session, "filter_query": filters,
                                                        "paging": before is not None or after is None})


@viewer_required
@require_GET
def controls_banner(request):
    """The header's kill-switch banner alone (the pages refresh it when a switch changes)."""
    return render(request, "mirror/_controls_banner.html", {"SWITCHES_IN_FORCE": selectors.kill_switches_in_force()})


# --- promotions ------------------------------------------------------------------------------


@viewer_required
@require_GET
def promotions(request):
    status = request.GET.get("status") or None
    if status and status not in {s.value for s in RequestStatus}:
        return HttpResponseBadRequest(f"status: {status!r} is not a request status")
    return render(request, "mirror/promotions.html", {
        "requests": selectors.promotion_requests(status=status)[:200], "status": status,
        "statuses": [s.value for s in RequestStatus], "lanes": selectors.lane_names(),
        "sessions": selectors.session_list().exclude(status="scheduled").values_list("session_id", flat=True),
        "can_operate": user_can(request.user, Capability.OPERATE),
    })


@viewer_required
@require_GET
def promotion_detail(request, request_id: int):
    row = selectors.promotion_requests().filter(pk=request_id).first()
    if row is None:
        raise Http404(f"no promotion request #{request_id}")
    mine = row.requested_by == request.user.username
    return render(request, "mirror/promotion_detail.html", {
        "row": row, "evaluation": row.evaluation, "history": selectors.promotion_history(row.pk),
        "pending": row.status == RequestStatus.PENDING,
        # four eyes: the requester gets no approve/reject buttons (and the server refuses them)
        "can_decide": user_can(request.user, Capability.APPROVE) and not mine,
        "can_withdraw": mine and user_can(request.user, Capability.OPERATE),
        "needs_override": row.evaluation.recommendation != "promote" and row.direction in ("promote", "change"),
    })


# --- lanes -----------------------------------------------------------------------------------


WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "all": None}


@viewer_required
@require_GET
def lane_dashboard(request, lane: str):
    from datetime import timedelta

    from django.utils import timezone

    window = request.GET.get("window") or "all"
    if window not in WINDOWS:
        return HttpResponseBadRequest(f"window: expected one of {', '.join(WINDOWS)}")
    since = None if WINDOWS[window] is None else timezone.now() - timedelta(seconds=WINDOWS[window])
    evidence = selectors.lane_evidence(lane=lane, since=since)
    if evidence is None:
        raise Http404(f"no lane {lane!r}")
    funnel = next((f for f in selectors.promotion_funnel() if f["lane"] == lane), None)
    row = selectors.lanes_overview().prefetch_related(None).get(name=lane)
    thresholds = row.policy.thresholds or {}
    return render(request, "mirror/lane.html", {
        "lane": row, "evidence": evidence,
        "funnel": funnel, "window": window, "windows": list(WINDOWS),
        "promotions": selectors.promotion_requests(lane=lane)[:20],
        "can_operate": user_can(request.user, Capability.OPERATE),
        "can_administer": user_can(request.user, Capability.ADMINISTER),
        **pages.lane_forms(row, thresholds, request.session.pop("lane_envelope_errors", None),
                      request.session.pop("lane_rules_errors", None)),
    })


# --- change log ------------------------------------------------------------------------------


CHANGELOG_PAGE = 100


@viewer_required
@require_GET
def changelog(request):
    filters = {k: (request.GET.get(k) or "").strip() or None for k in ("actor", "action", "target_type", "target_id")}
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        return HttpResponseBadRequest("before: a whole entry id")
    rows = selectors.changelog_entries(**filters).order_by("-id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows[:CHANGELOG_PAGE])
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return render(request, "mirror/changelog.html", {
        "entries": page, "filters": filters, "query": query,
        "older": page[-1].id if len(page) == CHANGELOG_PAGE else None,
        "actions": selectors.changelog_actions(),
    })
