"""Kill switches and cooldowns: one code path for operators and the system.

An operator (CLI, API, admin) sets a switch with ``kill_switch_set``; the DRA moves
a session's switch itself after a drawdown breach, and the engine starts and ends
cooldowns. Both kinds of change go through ``_switch_write`` / ``cooldown_record``
here: the row, and a change-log entry naming the actor (a user, or
``system:dra``) and the reason. The telemetry event of an operator's change is
appended here to every session it covers; the engine's own changes already are
events of its step (``kill_switch_change``, ``cooldown_state_change``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import SessionStatus
from ifns_paper.exceptions import Conflict, NotFound, ValidationFailed
from sessions_app import dispatch
from sessions_app.models import KillSwitch, Lane, PaperSession, SessionCooldown
from sessions_app.services.changelog import changelog_record
from sessions_app.services.events import sessions_events_append
from sessions_app.services.health import health_broadcast
from telemetry_app.choices import EventType

_COVERED = (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED)


def _switch_write(*, scope: str, state: SwitchState, actor: str, reason: str) -> tuple[KillSwitch, str]:
    """The switch row and its change-log entry; returns the row and the state before.
    Precondition: inside a transaction. Unchanged states write nothing."""
    switch, _ = KillSwitch.objects.select_for_update().get_or_create(
        scope=scope, defaults={"state": SwitchState.ACTIVE.value, "actor": actor, "reason": ""})
    before = switch.state
    if before == state.value:
        return switch, before
    switch.state, switch.actor, switch.reason = state.value, actor, reason
    switch.save()
    changelog_record(actor=actor, action="kill_switch_set", target_type="kill_switch", target_id=scope,
                     reason=reason, before={"state": before}, after={"state": state.value})
    return switch, before


def kill_switch_set(*, scope: str, state: str, actor: str, reason: str = "", now: datetime | None = None
                    ) -> KillSwitch:
    """Set a kill switch (``global``, ``lane:<name>``, ``session:<id>``) to active, reducing or halted.

    In one transaction: the switch row, a change-log entry and a ``kill_switch_change``
    event in every running, paused or faulted session it covers. The running ones get a
    step right after commit, so HALTED cancels working orders and stops new risk within
    one step. Raises ``ValidationFailed`` naming ``state`` or ``scope``."""
    new_state, sessions = kill_switch_validate(scope=scope, state=state)
    now = now or timezone.now()
    with transaction.atomic():
        switch, before = _switch_write(scope=scope, state=new_state, actor=actor, reason=reason)
        if before == new_state.value:
            return switch
        locked = list(sessions.select_for_update(of=("self",)).select_related("lane").order_by("session_id"))
        payload = {"scope": scope, "from": before, "to": new_state.value, "actor": actor, "reason": reason}
        events = [(EventType.KILL_SWITCH_CHANGE, now, payload)]
        if new_state is SwitchState.HALTED:  # a halt is also an incident of every session it stops
            events.append((EventType.INCIDENT, now, {"kind": "kill_switch_halt", **payload}))
        sessions_events_append(items=[(s, events) for s in locked])
        running = [s.session_id for s in locked if s.status == SessionStatus.RUNNING]
        transaction.on_commit(lambda: [dispatch.step_enqueue(sid) for sid in running])
        transaction.on_commit(health_broadcast)  # the pages show the switch in force at once
    return switch


def kill_switch_validate(*, scope: str, state: str):
    """The state, and the live sessions the scope covers; ``ValidationFailed`` naming
    ``state`` or ``scope`` when they are not a switch state / an existing global, lane or
    session scope. Used by ``kill_switch_set`` and by forms before they save."""
    try:
        new_state = SwitchState(state)
    except ValueError:
        raise ValidationFailed(f"unknown kill switch state {state!r}",
                               {"state": [f"expected one of {', '.join(s.value for s in SwitchState)}"]}) from None
    kind, _, name = scope.partition(":")
    sessions = PaperSession.objects.filter(status__in=_COVERED)
    if scope == "global":
        pass
    elif kind == "lane" and Lane.objects.filter(name=name).exists():
        sessions = sessions.filter(lane__name=name)
    elif kind == "session" and PaperSession.objects.filter(session_id=name).exists():
        sessions = sessions.filter(session_id=name)
    else:
        raise ValidationFailed(f"unknown kill switch scope {scope!r}",
                               {"scope": ["expected 'global', 'lane:<lane name>' or 'session:<session id>' "
                                          "naming an existing lane or session"]})
    return new_state, sessions


def kill_switch_record_automatic(*, scope: str, state: str, actor: str, reason: str) -> None:
    """A switch change the engine made itself (the DRA after a drawdown breach): the row and
    the change-log entry. Precondition: inside the step's transaction, the session locked;
    its ``kill_switch_change`` event is among the step's events."""
    _switch_write(scope=scope, state=SwitchState(state), actor=actor, reason=reason)


MAX_COOLDOWN_S = 7 * 24 * 3600


def cooldown_request(*, session_id: str, active: bool, actor: str, reason: str, duration_s: float | None = None,
                     now: datetime | None = None) -> SessionCooldown:
    """An operator starts a cooldown of ``duration_s`` seconds (no new risk; risk-reducing
    orders still pass) or ends the one in force, on a running, paused or faulted session.

    The engine owns the cooldown's clock, so the request waits on the session's cooldown row
    and its next step applies it (a ``cooldown_state_change`` naming the actor); a running
    session is stepped right after commit. Written with a change-log entry in one
    transaction; a newer request replaces one not yet applied. Raises ``NotFound``,
    ``ValidationFailed`` naming ``duration_s`` or ``reason``, or ``Conflict`` (a finished
    session; clearing a session with no cooldown in force)."""
    errors = {}
    if not reason.strip():
        errors["reason"] = ["say why: the reason goes to the change log"]
    if active and (duration_s is None or not 0 < duration_s <= MAX_COOLDOWN_S):
        errors["duration_s"] = [f"a cooldown needs a duration in seconds, above 0 and at most {MAX_COOLDOWN_S}"]
    if not active and duration_s is not None:
        errors["duration_s"] = ["only a cooldown being started takes a duration"]
    if errors:
        raise ValidationFailed("cooldown not changed", errors)
    now = now or timezone.now()
    with transaction.atomic():
        session = PaperSession.objects.select_for_update(of=("self",)).filter(session_id=session_id).first()
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        if session.status not in _COVERED:
            raise Conflict(f"session {session_id} is {session.status}: only a running, paused or faulted "
                           "session has a cooldown to change")
        row, _ = SessionCooldown.objects.select_for_update().get_or_create(session=session)
        if not active and not row.active and not (row.requested or {}).get("active"):
            raise Conflict(f"session {session_id} has no cooldown in force")
        row.requested = {"active": active, "duration_s": duration_s, "actor": actor, "reason": reason,
                         "at": now.isoformat()}
        row.save(update_fields=["requested", "updated_at"])
        changelog_record(actor=actor, action="cooldown_set" if active else "cooldown_clear",
                         target_type="paper_session", target_id=session_id, reason=reason,
                         before={"active": row.active, "until": row.until},
                         after={"active": active, "duration_s": duration_s})
        if session.status == SessionStatus.RUNNING:
            transaction.on_commit(lambda: dispatch.step_enqueue(session_id))
    return row


def cooldown_record(*, session: PaperSession, active: bool, at_ns: int, until_ns: int, reason: str,
                    actor: str) -> SessionCooldown:
    """A cooldown the engine started or ended: the session's cooldown row and a change-log
    entry (an operator's change was logged when it was requested: it only updates the
    row). Precondition: inside the step's transaction with ``session`` locked."""
    row, _ = SessionCooldown.objects.get_or_create(session=session)
    before = {"active": row.active, "until": row.until}
    row.active = active
    row.until = _dt(until_ns) if until_ns else None
    if active:
        row.started_at = _dt(at_ns)
    row.reason = reason
    row.save(update_fields=["active", "until", "started_at", "reason", "updated_at"])
    if actor.startswith("system:"):
        changelog_record(actor=actor, action="cooldown_start" if active else "cooldown_end",
                         target_type="paper_session", target_id=session.session_id, reason=reason, before=before,
                         after={"active": row.active, "until": row.until})
    return row


def cooldown_request_taken(*, session: PaperSession) -> None:
    """The step handed the waiting request to the engine. Precondition: the step's
    transaction, ``session`` locked."""
    SessionCooldown.objects.filter(session=session).update(requested=None)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)
