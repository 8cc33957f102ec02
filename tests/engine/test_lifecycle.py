"""The session lifecycle transition table (spec §5.3), against a table written out by hand.

Nothing here is derived from ``TRANSITIONS`` or ``allowed_actions``: the expected moves,
the operator/system split and the error messages are spelled out below.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ifns_paper.engine.lifecycle import (
    OPERATOR_ACTIONS,
    SYSTEM_ACTIONS,
    TERMINAL,
    IllegalTransition,
    SessionAction,
    SessionStatus,
    allowed_actions,
    plan_transition,
)

S, A = SessionStatus, SessionAction

ALL_STATUSES = {"scheduled", "running", "paused", "completed", "aborted", "faulted"}
ALL_ACTIONS = ["start", "pause", "resume", "stop", "abort", "fault"]  # declaration order

#: (status, action) -> status it leads to; every pair not listed is illegal.
LEGAL = {
    ("scheduled", "start"): "running",
    ("scheduled", "abort"): "aborted",
    ("running", "pause"): "paused",
    ("running", "stop"): "completed",
    ("running", "abort"): "aborted",
    ("running", "fault"): "faulted",  # system only
    ("paused", "resume"): "running",
    ("paused", "stop"): "completed",
    ("paused", "abort"): "aborted",
    ("faulted", "resume"): "running",
    ("faulted", "stop"): "completed",
    ("faulted", "abort"): "aborted",
}
ILLEGAL = sorted((s, a) for s in ALL_STATUSES for a in ALL_ACTIONS if (s, a) not in LEGAL)

#: what an operator is offered in each status, in declaration order (no ``fault``)
OPERATOR_ALLOWED = {
    "scheduled": ["start", "abort"],
    "running": ["pause", "stop", "abort"],
    "paused": ["resume", "stop", "abort"],
    "faulted": ["resume", "stop", "abort"],
    "completed": [],
    "aborted": [],
}
#: the same with the system's actions
SYSTEM_ALLOWED = OPERATOR_ALLOWED | {"running": ["pause", "stop", "abort", "fault"]}

#: the sources an illegal move's message names, sorted by name
ALLOWED_FROM = {
    "start": "scheduled",
    "pause": "running",
    "resume": "faulted, paused",
    "stop": "faulted, paused, running",
    "abort": "faulted, paused, running, scheduled",
    "fault": "running",
}


def test_the_hand_written_table_covers_every_status_and_action():
    # guards the tables below: a status or action added to the code must be added here
    assert {s.value for s in S} == ALL_STATUSES
    assert [a.value for a in A] == ALL_ACTIONS
    assert len(LEGAL) + len(ILLEGAL) == 6 * 6


@pytest.mark.parametrize(("current", "action", "target"), [(s, a, t) for (s, a), t in LEGAL.items()])
def test_legal_moves_reach_the_expected_status(current, action, target):
    # given a session in `current`, when `action` is planned, then it leads to `target`
    move = plan_transition("s1", current, action)
    assert (move.action, move.from_status, move.to_status) == (action, current, target)


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_illegal_moves_raise_naming_the_states_the_action_is_allowed_from(current, action):
    # given a session in `current`, when an action the table forbids is planned
    with pytest.raises(IllegalTransition) as err:
        plan_transition("s1", current, action)

    # then the error says what was tried, the current status and where the action is allowed
    assert str(err.value) == (f"cannot {action} session 's1': it is {current}; "
                              f"{action} is allowed only from {ALLOWED_FROM[action]}")
    assert (err.value.session_id, err.value.action, err.value.current) == ("s1", action, current)


def test_faulted_can_only_be_resumed_stopped_or_aborted():
    assert plan_transition("s1", "running", "fault").to_status == "faulted"
    assert plan_transition("s1", "faulted", "resume").to_status == "running"
    assert plan_transition("s1", "faulted", "stop").to_status == "completed"
    assert plan_transition("s1", "faulted", "abort").to_status == "aborted"
    for action in ("start", "pause", "fault"):
        with pytest.raises(IllegalTransition):
            plan_transition("s1", "faulted", action)
    for source in ("scheduled", "paused", "faulted", "completed", "aborted"):  # only a running one faults
        with pytest.raises(IllegalTransition):
            plan_transition("s1", source, "fault")


@pytest.mark.parametrize("status", sorted(ALL_STATUSES))
def test_allowed_actions_offer_operators_no_system_action(status):
    assert allowed_actions(status) == OPERATOR_ALLOWED[status]
    assert allowed_actions(status, include_system=False) == OPERATOR_ALLOWED[status]


@pytest.mark.parametrize("status", sorted(ALL_STATUSES))
def test_allowed_actions_with_system_actions(status):
    assert allowed_actions(status, include_system=True) == SYSTEM_ALLOWED[status]


def test_operator_actions_are_every_action_but_fault():
    assert OPERATOR_ACTIONS == ("start", "pause", "resume", "stop", "abort")
    assert {"fault"} == SYSTEM_ACTIONS


def test_unknown_action_is_named_with_the_known_ones():
    with pytest.raises(ValueError) as err:
        plan_transition("s1", "running", "explode")
    assert str(err.value) == ("unknown session action 'explode' "
                              "(known: start, pause, resume, stop, abort, fault)")


def test_unknown_status_is_a_value_error():
    with pytest.raises(ValueError, match="'exploded'"):
        plan_transition("s1", "exploded", "start")


def test_terminal_statuses_are_completed_and_aborted_and_have_no_exits():
    assert {"completed", "aborted"} == TERMINAL
    for status in ("completed", "aborted"):
        assert allowed_actions(status, include_system=True) == []
        for action in ALL_ACTIONS:
            with pytest.raises(IllegalTransition):
                plan_transition("s", status, action)


@given(st.lists(st.sampled_from(ALL_ACTIONS), max_size=30))
def test_any_action_sequence_follows_the_hand_written_table(actions):
    # given a scheduled session, when any sequence of actions is tried,
    # then each one moves exactly as LEGAL says or raises and leaves the status as it was
    status = "scheduled"
    for action in actions:
        expected = LEGAL.get((status, action))
        if expected is None:
            with pytest.raises(IllegalTransition):
                plan_transition("s", status, action)
        else:
            status = plan_transition("s", status, action).to_status
            assert status == expected
