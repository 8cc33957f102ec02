"""The once-a-second tick (beat): start sessions whose start time came, end the ones that
reached their end condition or must abort on a halted kill switch, and queue a step for
every shard with running sessions (a safety net: feeds queue steps as they publish)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import SessionAction, SessionStatus, completion_reason
from ifns_paper.exceptions import ApplicationError
from sessions_app import dispatch
from sessions_app.models import KillSwitch, PaperSession
from sessions_app.services.sessions import session_transition

log = logging.getLogger(__name__)
SCHEDULER = "scheduler"


@dataclass
class TickReport:
    started: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    steps_queued: int = 0

    def as_dict(self) -> dict:
        return {"started": self.started, "completed": self.completed, "aborted": self.aborted,
                "steps_queued": self.steps_queued}


def end_reason(session: PaperSession, now: datetime) -> str | None:
    """Why a running session should complete now, from its definition and its checkpoint
    (no per-session query: ``checkpoint`` is selected with the session)."""
    checkpoint = getattr(session, "checkpoint", None)
    target = session.end_target or {}
    elapsed = (now - session.started_at).total_seconds() if session.started_at else None
    return completion_reason(
        elapsed_s=elapsed, duration_s=session.end_duration_s,
        trades=checkpoint.trades if checkpoint else 0,
        target_trades=None if target.get("trades") is None else int(target["trades"]),
        pnl=checkpoint.pnl if checkpoint else None,
        target_pnl=None if target.get("pnl") is None else float(target["pnl"]))


def abort_reason(session: PaperSession, halted: dict[str, str]) -> str | None:
    """Why a running session should abort now, or None.

    Only sessions whose definition sets ``end.abort_on_kill_switch`` abort, when their
    effective switch (global, their lane's or their own) is halted; ``halted`` maps the
    halted scopes to their reasons. Others stay running: the engine already denies them
    any new order while halted."""
    if not session.abort_on_kill_switch:
        return None
    for scope in ("global", f"lane:{session.lane.name}", f"session:{session.session_id}"):
        if scope in halted:
            return f"kill switch {scope} halted" + (f": {halted[scope]}" if halted[scope] else "")
    return None


def sessions_tick(*, now: datetime) -> TickReport:
    report = TickReport()
    for session_id in PaperSession.objects.filter(status=SessionStatus.SCHEDULED, start_at__lte=now
                                                  ).values_list("session_id", flat=True):
        try:
            session_transition(session_id=session_id, action=SessionAction.START, actor=SCHEDULER,
                               reason="start time reached", now=now)
            report.started.append(session_id)
        except ApplicationError as exc:  # someone else moved it meanwhile
            log.info("scheduler could not start %s: %s", session_id, exc.message)
    halted = dict(KillSwitch.objects.filter(state=SwitchState.HALTED).values_list("scope", "reason"))
    running = PaperSession.objects.filter(status=SessionStatus.RUNNING).select_related("checkpoint", "lane")
    for session in running:
        # A halt wins over a natural end reached in the same tick: the session did not end cleanly.
        action, why = SessionAction.ABORT, abort_reason(session, halted)
        if why is None:
            action, why = SessionAction.STOP, end_reason(session, now)
        if why is None:
            continue
        try:
            session_transition(session_id=session.session_id, action=action, actor=SCHEDULER, reason=why, now=now)
            (report.aborted if action is SessionAction.ABORT else report.completed).append(session.session_id)
        except ApplicationError as exc:
            log.info("scheduler could not %s %s: %s", action, session.session_id, exc.message)
    shards = {(feed, dispatch.shard_of(sid)) for sid, feed in
              PaperSession.objects.filter(status=SessionStatus.RUNNING).values_list("session_id", "feed")}
    for feed, shard in sorted(shards):
        report.steps_queued += dispatch.shard_enqueue(feed, shard)
    return report
