"""Promotion requests (spec §8.2, §9): their kinds, states and the one table of legal moves,
like the session lifecycle's. Plain Python, no Django.

    pending --approve--> applied      (by an approver who is not the requester; the change
                                       is made in the same step)
    pending --reject---> rejected     (by an approver who is not the requester)
    pending --withdraw-> withdrawn    (by the requester)

Lane transitions move one step along ``LANES`` (``promote``) or back (``downgrade``).
"""

from __future__ import annotations

from enum import StrEnum


class RequestKind(StrEnum):
    LANE_TRANSITION = "lane_transition"
    MODEL_STATUS = "model_status"
    RISK_ENVELOPE = "risk_envelope"  # a lane's new envelope, validated like paper.yaml
    EXECUTION_POLICY = "execution_policy"  # a policy's new parameters, validated like execution_policies.json


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class RequestAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"


_S, _A = RequestStatus, RequestAction
TRANSITIONS: dict[RequestAction, tuple[frozenset[RequestStatus], RequestStatus]] = {
    _A.APPROVE: (frozenset({_S.PENDING}), _S.APPLIED),
    _A.REJECT: (frozenset({_S.PENDING}), _S.REJECTED),
    _A.WITHDRAW: (frozenset({_S.PENDING}), _S.WITHDRAWN),
}

#: the lanes in promotion order; the last is Stage 07's, outside IFNS Paper
LANES = ("paper_research", "paper_gatecheck", "live_canary")
#: a strategy's registry status once it is in a lane
LANE_STATUS = {"paper_research": "research", "paper_gatecheck": "gatecheck", "live_canary": "live_canary"}
#: registry statuses a model-status request may set, from each status
MODEL_STATUS_MOVES = {
    "candidate": {"research", "retired"}, "research": {"gatecheck", "retired"},
    "gatecheck": {"live_canary", "research", "retired"}, "live_canary": {"live", "gatecheck", "retired"},
    "live": {"retired", "live_canary"}, "retired": set(),
}


class IllegalMove(ValueError):
    """The request cannot move that way from where it is."""


def next_status(status: RequestStatus | str, action: RequestAction | str) -> RequestStatus:
    """The status after ``action``, or ``IllegalMove`` naming both."""
    try:
        act = RequestAction(action)
    except ValueError:
        raise IllegalMove(f"action: expected one of {', '.join(a.value for a in RequestAction)}, "
                          f"got {action!r}") from None
    allowed, target = TRANSITIONS[act]
    if RequestStatus(status) not in allowed:
        raise IllegalMove(f"cannot {act.value} a request that is {RequestStatus(status).value}")
    return target


def lane_move(from_lane: str, to_lane: str) -> str:
    """``promote`` (one lane up) or ``downgrade`` (one lane down); ``IllegalMove`` otherwise."""
    if from_lane not in LANES or to_lane not in LANES:
        raise IllegalMove(f"to_lane: lanes are {', '.join(LANES)}; got {from_lane!r} -> {to_lane!r}")
    step = LANES.index(to_lane) - LANES.index(from_lane)
    if step == 1:
        return "promote"
    if step == -1:
        return "downgrade"
    raise IllegalMove(f"to_lane: {from_lane} can move to "
                      f"{' or '.join(x for x in LANES if abs(LANES.index(x) - LANES.index(from_lane)) == 1)}, "
                      f"not {to_lane}")
