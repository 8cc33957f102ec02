"""Session lifecycle moves (spec §5.3): operators', the scheduler's and the system's.

Each move is one transaction: the session row locked, the move checked against
``engine.lifecycle``, status and timestamps updated, a
``paper_session_state_change`` event and a change-log entry written; the registry
file is rewritten after commit. A fault (``session_fault``) is a move too, taken
by the system with an ``incident`` event beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ifns_paper.engine.lifecycle import IllegalTransition, SessionAction, plan_transition
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from sessions_app import dispatch
from sessions_app.models import PaperSession
from sessions_app.registry import registry_export_after_commit
from sessions_app.services.changelog import changelog_record
from sessions_app.services.events import Event, session_events_append
from sessions_app.services.snapshots import session_snapshot
from telemetry_app.choices import EventType

SYSTEM_STEPS = "system:steps"


def session_transition(
    *, session_id: str, action: str, actor: str, reason: str = "", now: datetime | None = None,
    extra_events: list[Event] | None = None,
) -> PaperSession:
    """Move a session along the lifecycle table (see ``engine.lifecycle``).

    Raises ``Conflict`` for a move the table forbids (and writes nothing), ``NotFound``
    for an unknown session. ``extra_events`` are appended before the state change (an
    incident that caused it)."""
    now = now or timezone.now()
    with transaction.atomic():
        session = (
            PaperSession.objects.select_for_update(of=("self",))
            .select_related("lane", "strategy", "execution_policy")
            .filter(session_id=session_id)
            .first()
        )
        if session is None:
            raise NotFound(f"no paper session {session_id!r}")
        try:
            move = plan_transition(session.session_id, session.status, action)
        except IllegalTransition as exc:
            raise Conflict(str(exc), extra={"status": session.status, "action": action}) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc)) from exc
        before = session_snapshot(session)
        session.status = move.to_status.value
        if move.action is SessionAction.START:
            session.started_at = now
        elif move.action is SessionAction.PAUSE:
            session.paused_at = now
        elif move.action is SessionAction.RESUME:
            session.paused_at = None
            session.resumed_at = now
        elif move.action is SessionAction.FAULT:
            session.last_fault, session.last_fault_at = reason, now
        else:  # stop or abort: the session ends
            session.paused_at = None
            session.ended_at = now
        session.save(update_fields=["status", "started_at", "paused_at", "resumed_at", "ended_at", "last_fault",
                                    "last_fault_at", "updated_at"])
        session_events_append(session=session, events=[*(extra_events or []), (
            EventType.PAPER_SESSION_STATE_CHANGE, now,
            {"from": move.from_status.value, "to": move.to_status.value, "action": move.action.value,
             "actor": actor, "reason": reason})])
        changelog_record(actor=actor, action=f"session_{move.action.value}", target_type="paper_session",
                         target_id=session.session_id, reason=reason, before=before,
                         after=session_snapshot(session))
        transaction.on_commit(registry_export_after_commit)
        if move.action is not SessionAction.START:  # a summary as of the change (final once it ended)
            sid = session.session_id
            transaction.on_commit(lambda: dispatch.summary_enqueue(sid))
    return session


@dataclass(frozen=True)
class Fault:
    """What went wrong in a session's step, as its incident records it."""

    phase: str  # "load" (building or restoring the engine), "run" (the engine) or "persist" (its writes)
    exception: BaseException
    stream: dict = field(default_factory=dict)  # stream key -> [first entry id after the checkpoint, last read]
    checkpoint_steps: int | None = None  # the checkpoint the session stays at
    data_ts: int | None = None  # market-data time (epoch ns) it had reached

    @property
    def summary(self) -> str:
        text = str(self.exception).strip().splitlines()[0] if str(self.exception).strip() else ""
        return f"fault: {type(self.exception).__name__}: {text}"[:500]

    def payload(self) -> dict:
        return {"kind": "session_fault", "phase": self.phase, "exception": type(self.exception).__name__,
                "message": str(self.exception)[:2000], "stream": self.stream,
                "checkpoint_steps": self.checkpoint_steps, "data_ts": self.data_ts}


def session_fault(*, session_id: str, fault: Fault, now: datetime | None = None) -> PaperSession:
    """Take a running session out of its steps after a fault: status ``faulted`` (actor
    ``system:steps``, reason ``fault: <type>: <message>``), an ``incident`` event with what
    it was processing, and a change-log entry, in one transaction. Its checkpoint stays
    where the last good step left it; an operator resumes (from the resume time on),
    stops or aborts it."""
    now = now or timezone.now()
    return session_transition(session_id=session_id, action=SessionAction.FAULT.value, actor=SYSTEM_STEPS,
                              reason=fault.summary, now=now,
                              extra_events=[(EventType.INCIDENT, now, fault.payload())])
