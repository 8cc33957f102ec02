"""The session lifecycle transition table (spec §5.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ifns_paper.engine.lifecycle import (
    TERMINAL,
    IllegalTransition,
    SessionAction,
    SessionStatus,
    allowed_actions,
    plan_transition,
)

S, A = SessionStatus, SessionAction

LEGAL = [
    (S.SCHEDULED, A.START, S.RUNNING),
    (S.RUNNING, A.PAUSE, S.PAUSED),
    (S.PAUSED, A.RESUME, S.RUNNING),
    (S.RUNNING, A.STOP, S.COMPLETED),
    (S.PAUSED, A.STOP, S.COMPLETED),
    (S.SCHEDULED, A.ABORT, S.ABORTED),
    (S.RUNNING, A.ABORT, S.ABORTED),
    (S.PAUSED, A.ABORT, S.ABORTED),
]
ILLEGAL = [(s, a) for s in S for a in A if (s, a) not in {(f, act) for f, act, _ in LEGAL}]


@pytest.mark.parametrize(("current", "action", "target"), LEGAL)
def test_legal_moves_reach_the_expected_status(current, action, target):
    move = plan_transition("s1", current, action)
    assert (move.from_status, move.to_status) == (current, target)


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_illegal_moves_raise_with_a_clear_message(current, action):
    with pytest.raises(IllegalTransition) as err:
        plan_transition("s1", current, action)
    assert f"cannot {action} session 's1': it is {current}" in str(err.value)


def test_unknown_action_is_named():
    with pytest.raises(ValueError, match="unknown session action 'explode'"):
        plan_transition("s1", "running", "explode")


def test_terminal_statuses_have_no_exits():
    assert {S.COMPLETED, S.ABORTED} == TERMINAL
    for status in TERMINAL:
        assert allowed_actions(status) == []


@given(st.lists(st.sampled_from(list(A)), max_size=30))
def test_any_action_sequence_keeps_a_valid_status_and_never_leaves_a_terminal_one(actions):
    status = S.SCHEDULED
    for action in actions:
        legal = action in allowed_actions(status)
        try:
            status = plan_transition("s", status, action).to_status
        except IllegalTransition:
            assert not legal
            continue
        assert legal
    assert status in set(S)
