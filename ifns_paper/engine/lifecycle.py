"""Paper session lifecycle (spec §5.3) as a transition table.

``scheduled → running ⇄ paused → completed | aborted``; ``aborted`` is also
reachable from ``scheduled`` and ``paused``. Terminal states have no exits.
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


class SessionAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # finish normally: the session is completed
    ABORT = "abort"


S, A = SessionStatus, SessionAction

#: action -> (statuses it may be taken from, status it leads to)
TRANSITIONS: dict[SessionAction, tuple[frozenset[SessionStatus], SessionStatus]] = {
    A.START: (frozenset({S.SCHEDULED}), S.RUNNING),
    A.PAUSE: (frozenset({S.RUNNING}), S.PAUSED),
    A.RESUME: (frozenset({S.PAUSED}), S.RUNNING),
    A.STOP: (frozenset({S.RUNNING, S.PAUSED}), S.COMPLETED),
    A.ABORT: (frozenset({S.SCHEDULED, S.RUNNING, S.PAUSED}), S.ABORTED),
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


def allowed_actions(current: str) -> list[SessionAction]:
    """Actions the table allows from ``current``, in declaration order."""
    status = SessionStatus(current)
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]
