"""Mirror pages and the Admin controls on them. Thin: parse, call a selector (``pages``) or a
service, render. Signed-in users with a role only; controls need the operator role, checked
here on every POST whatever the page showed."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS, SessionStatus
from ifns_paper.exceptions import ApplicationError
from ifns_paper.governance import RequestAction, RequestStatus
from ifns_paper.roles import Capability, user_can
from mirror_app import pages
from sessions_app import selectors, services
from sessions_app.services.config import session_register_text
from sessions_app.services.controls import cooldown_request
from sessions_app.services.lanes import ENVELOPE_FIELDS
from sessions_app.services.promotions import (
    TAGS,
    promotion_decide,
    promotion_request,
    session_clone,
    session_tag,
)
from telemetry_app.choices import EventType
from telemetry_app.selectors import feed_health_latest


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


def login_required_403(view):
    """Signed in at least; what the user may do is the service's to decide (promotions)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
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


@operator_required
@require_POST
def promotion_create(request):
    session_id = request.POST.get("session_id", "")
    to_lane = request.POST.get("to_lane", "")
    try:
        row = promotion_request(kind="lane_transition", session_id=session_id, target={"to_lane": to_lane},
                                requested_by=request.user.username, reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _report(request, exc)
        return _back(request, "/promotions/")
    messages.success(request, f"promotion request #{row.pk} opened: SEL recommends {row.evaluation.recommendation}")
    return redirect("mirror:promotion-detail", request_id=row.pk)


@login_required_403
@require_POST
def promotion_decision(request, request_id: int):
    """approve / reject (approvers, never the requester) or withdraw (the requester): the
    service checks both, whatever the page showed."""
    action = request.POST.get("action", "")
    if action not in {a.value for a in RequestAction}:
        messages.error(request, f"action: {action!r} is not approve, reject or withdraw")
        return redirect("mirror:promotion-detail", request_id=request_id)
    try:
        row = promotion_decide(request_id=request_id, action=action, actor=request.user.username,
                               reason=request.POST.get("reason", ""),
                               override_reason=request.POST.get("override_reason", ""))
    except ApplicationError as exc:
        _report(request, exc)
    else:
        messages.success(request, f"promotion request #{row.pk}: {row.status}")
    return redirect("mirror:promotion-detail", request_id=request_id)


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
        **_lane_forms(row, thresholds, request.session.pop("lane_envelope_errors", None),
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


# --- registering, cloning, tagging sessions ---------------------------------------------------------

MAX_DEFINITION_BYTES = 256 * 1024


@operator_required
def session_new(request):
    """Register a session from a definition pasted or uploaded (YAML or JSON), validated like
    ``paper_session register``: every problem is listed with its line and field at once."""
    context = {"text": "", "problems": [], "reason": "", "example": _example_definition()}
    if request.method == "POST":
        upload = request.FILES.get("file")
        text = request.POST.get("definition", "")
        if upload is not None:
            if upload.size > MAX_DEFINITION_BYTES:
                context["problems"] = [f"file: {upload.name} is {upload.size:,} bytes; at most "
                                       f"{MAX_DEFINITION_BYTES:,}"]
                return render(request, "mirror/session_new.html", context, status=400)
            text = upload.read().decode("utf-8", errors="replace")
        context.update(text=text, reason=request.POST.get("reason", ""))
        if not text.strip():
            context["problems"] = ["definition: paste a session definition or choose a file"]
            return render(request, "mirror/session_new.html", context, status=400)
        try:
            session = session_register_text(text=text, actor=_actor(request), reason=context["reason"])
        except ApplicationError as exc:
            context["problems"] = exc.extra.get("problems") or [exc.described()]
            return render(request, "mirror/session_new.html", context, status=400)
        messages.success(request, f"registered {session.session_id} in {session.lane.name} (scheduled)")
        return redirect("mirror:session-detail", session_id=session.session_id)
    return render(request, "mirror/session_new.html", context)


def _example_definition() -> str:
    """A shipped session definition, shown as the empty form's placeholder."""
    from pathlib import Path

    from django.conf import settings

    files = sorted((Path(settings.IFNS_CONFIG_DIR) / "paper_trading").glob("session_*.yaml"))
    return files[0].read_text() if files else ""


@operator_required
@require_POST
def session_clone_view(request, session_id: str):
    new_id = request.POST.get("new_id", "").strip()
    try:
        clone = session_clone(source_id=session_id, new_id=new_id, lane=request.POST.get("lane") or None,
                              actor=_actor(request), reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _report(request, exc)
        return redirect("mirror:session-detail", session_id=session_id)
    messages.success(request, f"{clone.session_id}: scheduled in {clone.lane.name}, cloned from {session_id}")
    return redirect("mirror:session-detail", session_id=clone.session_id)


@operator_required
@require_POST
def session_tag_view(request, session_id: str):
    try:
        s = session_tag(session_id=session_id, tag=request.POST.get("tag", ""), actor=_actor(request),
                        reason=request.POST.get("reason", ""), remove=request.POST.get("remove") == "1")
    except ApplicationError as exc:
        _report(request, exc)
    else:
        messages.success(request, f"{s.session_id}: tags {', '.join(s.tags) or 'none'}")
    return redirect("mirror:session-detail", session_id=session_id)


# --- lane policies (admins) ------------------------------------------------------------------

THRESHOLDS = ("min_sharpe", "min_hit_rate", "max_drawdown_pct", "max_mean_slippage_bps", "max_tracking_error_bps",
              "min_psr", "max_incidents", "max_slippage_vs_backtest_bps", "min_reconciliation_correlation",
              "max_reconciliation_dtw")


def _number(text: str):
    """A form's number as int or float; the text itself when it is not one (the validator
    then names the field); None when empty."""
    text = text.strip().replace(",", "")
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def admin_required(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.ADMINISTER):
            raise PermissionDenied(f"{request.user.username} needs the admin role to change a lane")
        return view(request, *args, **kwargs)

    return wrapper


@admin_required
@require_POST
def lane_envelope(request, lane: str):
    """Change a lane's risk envelope: every field validated together like ``paper.yaml``'s,
    every bad field named at once; nothing written then."""
    from sessions_app.services.lanes import risk_envelope_patch

    changes = {f: _number(request.POST.get(f, "")) for f in ENVELOPE_FIELDS if request.POST.get(f, "").strip()}
    return _lane_change(request, lane, "envelope", lambda: risk_envelope_patch(
        lane=lane, changes=changes, actor=_actor(request), reason=request.POST.get("reason", "")))


@admin_required
@require_POST
def lane_rules(request, lane: str):
    """Change a lane's promotion rules (and their metric thresholds; an empty threshold is no
    criterion), validated like ``paper.yaml``'s policy."""
    from sessions_app.services.lanes import lane_policy_patch

    changes = {f: _number(request.POST.get(f, "")) for f in ("min_days", "min_trades", "max_breaches")}
    changes["promotes_to"] = request.POST.get("promotes_to", "").strip()
    changes["thresholds"] = {t: v for t in THRESHOLDS if (v := _number(request.POST.get(f"t_{t}", ""))) is not None}
    return _lane_change(request, lane, "rules", lambda: lane_policy_patch(
        lane=lane, changes=changes, actor=_actor(request), reason=request.POST.get("reason", "")))


def _lane_forms(lane, thresholds: dict, envelope_refused: dict | None, rules_refused: dict | None) -> dict:
    """The two forms' rows ``(input name, label, value shown, problems)``: the current values,
    or after a refused change what was typed with every field's problem."""
    def rows(fields, refused):
        typed, problems = (refused or {}).get("values"), (refused or {}).get("fields", {})
        return [(name, label, typed.get(name, "") if typed else ("" if current is None else current),
                 problems.get(error_key, [])) for name, label, current, error_key in fields]

    p = lane.policy
    envelope = [(f, f, getattr(lane.risk_envelope, f), f) for f in ENVELOPE_FIELDS]
    rules = [(f, f, getattr(p, f), f"promotion.{f}") for f in ("promotes_to", "min_days", "min_trades", "max_breaches")]
    rules += [(f"t_{t}", t, thresholds.get(t), f"promotion.thresholds.{t}") for t in THRESHOLDS]
    known = {key for *_, key in envelope + rules}
    return {"envelope_rows": rows(envelope, envelope_refused), "rules_rows": rows(rules, rules_refused),
            "form_problems": [f"{k}: {'; '.join(v)}" for refused in (envelope_refused, rules_refused) if refused
                              for k, v in refused["fields"].items() if k not in known]}


def _lane_change(request, lane: str, form: str, apply):
    if not request.POST.get("reason", "").strip():
        messages.error(request, "reason: say why the lane changes (it goes to the change log)")
        return redirect("mirror:lane", lane=lane)
    try:
        apply()
    except ApplicationError as exc:
        errors = exc.extra.get("errors") or {}
        request.session[f"lane_{form}_errors"] = {"message": exc.message, "fields": errors,
                                                 "values": {k: v for k, v in request.POST.items()
                                                            if k != "csrfmiddlewaretoken"}}
        messages.error(request, exc.described())
        return redirect(f"{reverse('mirror:lane', args=[lane])}#{form}")
    messages.success(request, f"{lane}: {'risk envelope' if form == 'envelope' else 'promotion rules'} updated")
    return redirect("mirror:lane", lane=lane)
