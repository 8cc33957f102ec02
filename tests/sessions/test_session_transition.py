"""session_transition: every legal move writes one event and one change-log
entry; every illegal one raises and writes nothing; the registry follows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ifns_paper.engine.lifecycle import TRANSITIONS, SessionAction, SessionStatus
from ifns_paper.exceptions import Conflict, NotFound
from sessions_app.models import ChangeLogEntry, PaperSession
from sessions_app.registry import registry_entries, registry_path
from sessions_app.services import session_transition
from telemetry_app.models import TelemetryEvent

SID = "research_fx_momentum_v13"
# The shortest action path from "scheduled" to each status.
PATH_TO = {
    SessionStatus.SCHEDULED: [],
    SessionStatus.RUNNING: [SessionAction.START],
    SessionStatus.PAUSED: [SessionAction.START, SessionAction.PAUSE],
    SessionStatus.COMPLETED: [SessionAction.START, SessionAction.STOP],
    SessionStatus.ABORTED: [SessionAction.ABORT],
    SessionStatus.FAULTED: [SessionAction.START, SessionAction.FAULT],
}
LEGAL = [(src, action) for action, (sources, _) in TRANSITIONS.items() for src in sorted(sources)]
ILLEGAL = [(src, action) for src in SessionStatus for action in SessionAction if (src, action) not in LEGAL]


def _bring_to(status: SessionStatus) -> None:
    for action in PATH_TO[status]:
        session_transition(session_id=SID, action=action, actor="test", reason="setup")


def _counts() -> tuple[int, int]:
    return TelemetryEvent.objects.count(), ChangeLogEntry.objects.count()


def _registry_sessions() -> list[dict]:
    return json.loads(registry_path().read_text())["sessions"]


@pytest.mark.parametrize(("source", "action"), LEGAL, ids=lambda v: str(v))
def test_legal_transition_writes_one_event_and_one_change_log_entry(
    loaded, source, action, django_capture_on_commit_callbacks
):
    _bring_to(source)
    events_before, changes_before = _counts()
    when = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)

    with django_capture_on_commit_callbacks(execute=True):
        session = session_transition(session_id=SID, action=action, actor="cli:alice", reason="why not",
                                     now=when)

    target = TRANSITIONS[action][1]
    assert session.status == target
    assert PaperSession.objects.get(session_id=SID).status == target
    assert _counts() == (events_before + 1, changes_before + 1)

    event = TelemetryEvent.objects.filter(session__session_id=SID).latest("sequence")
    assert event.event_type == "paper_session_state_change"
    assert (event.env, event.lane) == ("paper", "paper_research")
    assert event.sequence == PaperSession.objects.get(session_id=SID).last_event_seq
    assert event.event_time == when
    assert event.payload == {"from": source, "to": target, "action": action, "actor": "cli:alice",
                             "reason": "why not"}

    change = ChangeLogEntry.objects.latest("id")
    assert (change.actor, change.action, change.target_id, change.reason) == (
        "cli:alice", f"session_{action}", SID, "why not")
    assert change.before["status"] == source and change.after["status"] == target

    # The registry export matches the database after the change.
    assert _registry_sessions() == registry_entries()
    entry = next(e for e in _registry_sessions() if e["session_id"] == SID)
    assert entry["status"] == target and entry["env"] == "paper"


@pytest.mark.parametrize(("source", "action"), ILLEGAL, ids=lambda v: str(v))
def test_illegal_transition_raises_and_writes_nothing(loaded, source, action):
    _bring_to(source)
    before = PaperSession.objects.values().get(session_id=SID)
    counts = _counts()

    with pytest.raises(Conflict, match=f"cannot {action} session '{SID}': it is {source}"):
        session_transition(session_id=SID, action=action, actor="cli:alice")

    assert PaperSession.objects.values().get(session_id=SID) == before
    assert _counts() == counts


def test_unknown_session_is_not_found(loaded):
    with pytest.raises(NotFound, match="no paper session 'nope'"):
        session_transition(session_id="nope", action="start", actor="t")


def test_sequence_numbers_are_gap_free_per_session(loaded):
    for action in ["start", "pause", "resume", "pause", "stop"]:
        session_transition(session_id=SID, action=action, actor="t")
    sequences = list(TelemetryEvent.objects.filter(session__session_id=SID).values_list("sequence", flat=True))
    assert sequences == list(range(1, 7))  # 1 = registration


def test_timestamps_follow_the_lifecycle(loaded):
    t0, t1, t2 = (datetime(2026, 11, 24, h, tzinfo=UTC) for h in (9, 10, 11))
    session_transition(session_id=SID, action="start", actor="t", now=t0)
    session_transition(session_id=SID, action="pause", actor="t", now=t1)
    paused = PaperSession.objects.get(session_id=SID)
    assert (paused.started_at, paused.paused_at, paused.ended_at) == (t0, t1, None)
    session_transition(session_id=SID, action="abort", actor="t", now=t2)
    ended = PaperSession.objects.get(session_id=SID)
    assert (ended.started_at, ended.paused_at, ended.ended_at) == (t0, None, t2)


def test_telemetry_and_change_log_are_append_only(loaded):
    event = TelemetryEvent.objects.first()
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        ChangeLogEntry.objects.first().delete()
