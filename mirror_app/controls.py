"""The Admin controls on the Mirror pages: forms post here, a service does the work, the
user goes back to the page with a message. Operators (``access.operator_required``) for
sessions, kill switches, cooldowns, promotions; admins for lane changes; approvers decide
promotions (the service checks four eyes)."""

from __future__ import annotations

import re

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS
from ifns_paper.exceptions import ApplicationError
from ifns_paper.governance import RequestAction
from mirror_app.access import (
    actor_of,
    admin_required,
    back,
    login_required_403,
    operator_required,
    report,
)
from mirror_app.pages import COOLDOWN_RULES, LANE_THRESHOLDS
from sessions_app import services
from sessions_app.services.config import session_register_text
from sessions_app.services.controls import cooldown_request
from sessions_app.services.lanes import ENVELOPE_FIELDS
from sessions_app.services.promotions import (
    promotion_decide,
    promotion_request,
    session_clone,
    session_tag,
)


@operator_required
@require_POST
def session_action(request, session_id: str):
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "").strip()
    fallback = f"/sessions/{session_id}/"
    if action not in {a.value for a in OPERATOR_ACTIONS}:
        messages.error(request, f"action: {action!r} is not one of {', '.join(a.value for a in OPERATOR_ACTIONS)}")
        return back(request, fallback)
    if not reason:
        messages.error(request, f"reason: say why you {action} {session_id} (it goes to the change log)")
        return back(request, fallback)
    try:
        session = services.session_transition(session_id=session_id, action=action, actor=actor_of(request),
                                              reason=reason)
    except ApplicationError as exc:
        report(request, exc)
    else:
        messages.success(request, f"{session.session_id}: {session.status}")
    return back(request, fallback)


@operator_required
@require_POST
def kill_switch(request):
    scope, state = request.POST.get("scope", ""), request.POST.get("state", "")
    reason = request.POST.get("reason", "").strip()
    if not reason:
        messages.error(request, f"reason: say why {scope or 'the switch'} goes {state or '?'}")
        return back(request, "/")
    try:
        switch = services.kill_switch_set(scope=scope, state=state, actor=actor_of(request), reason=reason)
    except ApplicationError as exc:
        report(request, exc)
    else:
        messages.success(request, f"kill switch {switch.scope}: {switch.state}")
    return back(request, "/")


@operator_required
@require_POST
def session_cooldown(request, session_id: str):
    action = request.POST.get("action")
    raw = (request.POST.get("duration_s") or "").strip()
    try:
        duration = float(raw) if raw else None
    except ValueError:
        messages.error(request, f"duration_s: {raw!r} is not a number of seconds")
        return back(request, f"/sessions/{session_id}/")
    try:
        cooldown_request(session_id=session_id, active=action == "set", duration_s=duration,
                         actor=actor_of(request), reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        report(request, exc)
    else:
        messages.success(request, f"{session_id}: cooldown {'of ' + raw + ' s' if action == 'set' else 'end'} "
                                  "requested; the session's next step applies it")
    return back(request, f"/sessions/{session_id}/")


@operator_required
@require_POST
def promotion_create(request):
    session_id = request.POST.get("session_id", "")
    to_lane = request.POST.get("to_lane", "")
    try:
        row = promotion_request(kind="lane_transition", session_id=session_id, target={"to_lane": to_lane},
                                requested_by=request.user.username, reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        report(request, exc)
        return back(request, "/promotions/")
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
        report(request, exc)
    else:
        messages.success(request, f"promotion request #{row.pk}: {row.status}")
    return redirect("mirror:promotion-detail", request_id=request_id)


# --- registering, cloning, tagging sessions ---------------------------------------------------------


MAX_DEFINITION_BYTES = 256 * 1024


@operator_required
def session_new(request):
    """Register a session from a definition pasted or uploaded (YAML or JSON), validated like
    ``paper_session register``: every problem is listed with its line and field at once."""
    from sessions_app.selectors import backtests_completed
    from sessions_app.services.promotions import backtest_definition

    from_backtest = (request.POST if request.method == "POST" else request.GET).get("backtest", "").strip()
    context = {"text": "", "problems": [], "reason": "", "example": _example_definition(),
               "backtests": backtests_completed(), "from_backtest": from_backtest}
    provenance = None
    if from_backtest:
        try:
            text, provenance = backtest_definition(from_backtest)
        except ApplicationError as exc:
            context["problems"] = [exc.described()]
            return render(request, "mirror/session_new.html", context, status=exc.status_code)
        if request.method != "POST":
            context.update(text=text, reason=f"paper run of {from_backtest}")
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
            session = session_register_text(text=text, actor=actor_of(request), reason=context["reason"],
                                            provenance=provenance)
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
                              actor=actor_of(request), reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        report(request, exc)
        return redirect("mirror:session-detail", session_id=session_id)
    messages.success(request, f"{clone.session_id}: scheduled in {clone.lane.name}, cloned from {session_id}")
    return redirect("mirror:session-detail", session_id=clone.session_id)


@operator_required
@require_POST
def session_tag_view(request, session_id: str):
    try:
        s = session_tag(session_id=session_id, tag=request.POST.get("tag", ""), actor=actor_of(request),
                        reason=request.POST.get("reason", ""), remove=request.POST.get("remove") == "1")
    except ApplicationError as exc:
        report(request, exc)
    else:
        messages.success(request, f"{s.session_id}: tags {', '.join(s.tags) or 'none'}")
    return redirect("mirror:session-detail", session_id=session_id)


# --- lane policies (admins) ------------------------------------------------------------------


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


def _ids(text: str) -> list[str]:
    """Registry ids typed as a list separated by commas, spaces or lines."""
    return [part for part in re.split(r"[\s,]+", text) if part]


@admin_required
@require_POST
def lane_envelope(request, lane: str):
    """Change a lane's risk envelope: every field validated together like ``paper.yaml``'s,
    every bad field named at once; nothing written then."""
    from sessions_app.services.lanes import risk_envelope_patch

    changes = {f: _number(request.POST.get(f, "")) for f in ENVELOPE_FIELDS if request.POST.get(f, "").strip()}
    return _lane_change(request, lane, "envelope", lambda: risk_envelope_patch(
        lane=lane, changes=changes, actor=actor_of(request), reason=request.POST.get("reason", "")))


@admin_required
@require_POST
def lane_rules(request, lane: str):
    """Change a lane's promotion rules (and their metric thresholds; an empty threshold is no
    criterion), validated like ``paper.yaml``'s policy."""
    from sessions_app.services.lanes import lane_policy_patch

    changes = {f: _number(request.POST.get(f, "")) for f in ("min_days", "min_trades", "max_breaches")}
    changes["promotes_to"] = request.POST.get("promotes_to", "").strip()
    changes["thresholds"] = {t: v for t in LANE_THRESHOLDS if (v := _number(request.POST.get(f"t_{t}", ""))) is not None}
    # the form sends these too; a client that leaves one out leaves it unchanged
    changes |= {f: _ids(request.POST[f]) for f in ("allowed_strategies", "allowed_models") if f in request.POST}
    changes |= {f: _number(request.POST[f]) for f in COOLDOWN_RULES if f in request.POST}
    return _lane_change(request, lane, "rules", lambda: lane_policy_patch(
        lane=lane, changes=changes, actor=actor_of(request), reason=request.POST.get("reason", "")))


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
    messages.success(request, f"{lane}: {'risk envelope' if form == 'envelope' else 'promotion rules and cooldowns'} updated")
    return redirect("mirror:lane", lane=lane)
