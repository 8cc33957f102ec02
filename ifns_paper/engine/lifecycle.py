"""Paper session lifecycle (spec §5.3) as a transition table.

``scheduled → running ⇄ paused → completed | aborted``; ``aborted`` is also
reachable from ``scheduled`` and ``paused``. Terminal states have no exits.

``faulted``: a running session whose step raised (its engine or its writes) is
taken out of the steps by the system (action ``fault``, actor ``system:steps``)
and waits for an operator, who can ``resume`` it (it reads the stream from the
resume time on, like a paused session), ``stop`` or ``abort`` it. It is its own
status, not ``paused``, so that nobody mistakes a fault for an operator's pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAULTED = "faulted"


class SessionAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # finish normally: the session is completed
    ABORT = "abort"
    FAULT = "fault"  # taken by the system when a step of the session raised


S, A = SessionStatus, SessionAction

#: action -> (statuses it may be taken from, status it leads to)
TRANSITIONS: dict[SessionAction, tuple[frozenset[SessionStatus], SessionStatus]] = {
    A.START: (frozenset({S.SCHEDULED}), S.RUNNING),
    A.PAUSE: (frozenset({S.RUNNING}), S.PAUSED),
    A.RESUME: (frozenset({S.PAUSED, S.FAULTED}), S.RUNNING),
    A.STOP: (frozenset({S.RUNNING, S.PAUSED, S.FAULTED}), S.COMPLETED),
    A.ABORT: (frozenset({S.SCHEDULED, S.RUNNING, S.PAUSED, S.FAULTED}), S.ABORTED),
    A.FAULT: (frozenset({S.RUNNING}), S.FAULTED),
}

TERMINAL: frozenset[SessionStatus] = frozenset({S.COMPLETED, S.ABORTED})


class IllegalTransition(ValueError):
    """An action that the session's current status does not allow."""

    def __init__(self, session_id: str, action: SessionAction, current: SessionStatus) -> None:
        allowed_from, _ = TRANSITIONS[action]
        allowed = ", ".join(sorted(allowed_from))
        super().__init__(
            f"cannot {action} session {session_id!r}: it is {current}; "
            f"{action} is allowed only from {allowed}"
        )
        self.session_id = session_id
        self.action = action
        self.current = current


@dataclass(frozen=True, slots=True)
class Transition:
    action: SessionAction
    from_status: SessionStatus
    to_status: SessionStatus


def plan_transition(session_id: str, current: str, action: str) -> Transition:
    """Return the transition ``action`` makes from ``current`` or raise.

    Raises ``IllegalTransition`` for a move the table forbids and
    ``ValueError`` for an unknown action or status name.
    """
    try:
        act = SessionAction(action)
    except ValueError:
        known = ", ".join(a.value for a in SessionAction)
        raise ValueError(f"unknown session action {action!r} (known: {known})") from None
    status = SessionStatus(current)
    allowed_from, target = TRANSITIONS[act]
    if status not in allowed_from:
        raise IllegalTransition(session_id, act, status)
    return Transition(action=act, from_status=status, to_status=target)


#: Actions only the system takes (never offered to operators in the API, admin or CLI).
SYSTEM_ACTIONS: frozenset[SessionAction] = frozenset({A.FAULT})
OPERATOR_ACTIONS: tuple[SessionAction, ...] = tuple(a for a in SessionAction if a not in SYSTEM_ACTIONS)


def allowed_actions(current: str, *, include_system: bool = False) -> list[SessionAction]:
    """Actions the table allows from ``current``, in declaration order; operator actions
    only unless ``include_system``."""
    status = SessionStatus(current)
    return [action for action, (sources, _) in TRANSITIONS.items()
            if status in sources and (include_system or action not in SYSTEM_ACTIONS)]


def completion_reason(*, elapsed_s: float | None, duration_s: float | None, trades: int,
                      target_trades: int | None, pnl: float | None, target_pnl: float | None) -> str | None:
    """Why a running session is finished (spec §5.3 "time or target reached"), or None.

    ``elapsed_s``: seconds since it started (None before); ``trades``: closed round trips
    (``engine.trades``) so far; ``pnl``: equity minus starting capital, account currency
    (None before the first checkpoint). Duration first, then the trade count, then P&L."""
    if duration_s and elapsed_s is not None and elapsed_s >= duration_s:
        return "duration reached"
    if target_trades is not None and trades >= target_trades:
        return f"target reached: {trades} trades >= {target_trades}"
    if target_pnl is not None and pnl is not None and pnl >= target_pnl:
        return f"target reached: P&L {pnl:.2f} >= {target_pnl:g}"
    return None
