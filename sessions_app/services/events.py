"""A session's telemetry events: this side owns the sequence numbers.

Every event of a session gets the next number of its ``last_event_seq``, under the
session's row lock, and goes to ``telemetry_app.services.events_record`` (the one
writer of events). Services append one or a few events; a step appends the events
of many sessions at once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from sessions_app.models import PaperSession
from telemetry_app.services import EventDraft, events_record

Event = tuple[str, datetime, dict]  # (type, event time, payload)


def session_events_append(*, session: PaperSession, events: list[Event]) -> list:
    """Append ``events`` to one session's stream. Precondition: inside a transaction with
    ``session`` locked (``select_for_update``) and its ``lane`` loaded."""
    return sessions_events_append(items=[(session, events)])


def sessions_events_append(*, items: list[tuple[PaperSession, list[Event]]]) -> list:
    """Append events to several (locked) sessions' streams: one INSERT for all the events
    and one UPDATE of all the sessions' ``last_event_seq``."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("session events must be appended inside a transaction holding the session locks")
    drafts: list[EventDraft] = []
    moved: list[PaperSession] = []
    for session, events in items:
        if not events:
            continue
        seq = session.last_event_seq
        for event_type, event_time, payload in events:
            seq += 1
            drafts.append(EventDraft(session.pk, session.session_id, session.lane.name, seq, str(event_type),
                                     event_time, payload))
        session.last_event_seq = seq
        moved.append(session)
    rows = events_record(events=drafts)
    if moved:
        _set_event_seqs(moved)
    return rows


def _set_event_seqs(sessions: list[PaperSession]) -> None:
    """``last_event_seq`` of several sessions in one UPDATE: what ``bulk_update`` writes,
    without its per-row expression objects (a third of a busy step's writing time)."""
    if len(sessions) == 1:
        PaperSession.objects.filter(pk=sessions[0].pk).update(last_event_seq=sessions[0].last_event_seq)
        return
    table = PaperSession._meta.db_table
    cases = " ".join("WHEN %s THEN %s" for _ in sessions)
    params: list[int] = []
    for s in sessions:
        params += [s.pk, s.last_event_seq]
    params += [s.pk for s in sessions]
    marks = ", ".join("%s" for _ in sessions)
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "last_event_seq" = CASE "id" {cases} END WHERE "id" IN ({marks})',
                       params)
