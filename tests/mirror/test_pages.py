"""Mirror pages: the overview by lane and one session's detail, server-rendered."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db import transaction
from django.test.utils import CaptureQueriesContext

from sessions_app.services import session_transition
from tests.conftest import AUTH_QUERIES, clone_sessions

SID = "research_fx_momentum_v13"
SHIPPED_SESSIONS = {"gatecheck_fx_momentum_v12", "research_crypto_trend", "research_fx_momentum_v13"}

_ROW = re.compile(r'data-session="(?P<sid>[^"]+)"')
_STATUS = re.compile(r'data-role="status">\s*([^<\s]+)\s*<')
_SECTION = re.compile(r'<section class="lane" id="lane-(?P<lane>[^"]+)".*?</section>', re.S)


def _statuses(html: str) -> dict[str, str]:
    """session_id -> status shown in its row."""
    return {m["sid"]: _STATUS.search(html, m.end()).group(1) for m in _ROW.finditer(html)}


def _sections(html: str) -> dict[str, str]:
    return {m["lane"]: m.group(0) for m in _SECTION.finditer(html)}


def _fact(section: str, label: str) -> Decimal:
    """The number shown for ``label`` in a lane's facts (thousands separators ignored)."""
    match = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", section)
    assert match, f"no {label!r} in the lane facts"
    return Decimal(match.group(1).split()[0].replace(",", ""))


# --- overview --------------------------------------------------------------------------


def test_overview_lists_lanes_and_sessions(loaded, client):
    # when
    response = client.get("/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "PAPER" in html
    sections = _sections(html)
    assert set(sections) == {"paper_research", "paper_gatecheck"}
    assert _statuses(html) == {sid: "scheduled" for sid in SHIPPED_SESSIONS}
    # each session is listed in its own lane
    assert 'data-session="gatecheck_fx_momentum_v12"' in sections["paper_gatecheck"]
    assert 'data-session="research_crypto_trend"' in sections["paper_research"]
    assert f'data-session="{SID}"' in sections["paper_research"]
    assert f'href="/sessions/{SID}/"' in html
    # envelope figures from paper.yaml
    assert _fact(sections["paper_research"], "Max order") == 250000
    assert _fact(sections["paper_research"], "Max daily loss") == 25000
    assert _fact(sections["paper_gatecheck"], "Max order") == 50000
    assert _fact(sections["paper_gatecheck"], "Max gross") == 400000
    assert "2 (0 running, 2 scheduled)" in sections["paper_research"]
    assert "1 (0 running, 1 scheduled)" in sections["paper_gatecheck"]


def test_overview_shows_a_started_session_as_running(loaded, client):
    # given
    session_transition(session_id=SID, action="start", actor="cli:alice", reason="go")

    # when
    html = client.get("/").content.decode()

    # then
    statuses = _statuses(html)
    assert statuses[SID] == "running"
    assert statuses["research_crypto_trend"] == "scheduled"
    assert statuses["gatecheck_fx_momentum_v12"] == "scheduled"
    assert "2 (1 running, 1 scheduled)" in _sections(html)["paper_research"]


def test_overview_without_configuration_says_so(db, client):
    response = client.get("/")

    assert response.status_code == 200
    assert "No lanes loaded" in response.content.decode()


def test_overview_query_count_is_bounded_and_flat(loaded, client, django_assert_max_num_queries):
    # given the shipped sessions: lane names (the filter), lanes, sessions, switches and cooldowns
    # (health), summaries with their sparklines, the header's switches in force, feeds
    with django_assert_max_num_queries(AUTH_QUERIES + 9) as few:
        assert client.get("/").status_code == 200

    # when there are more sessions
    clone_sessions(4)
    with CaptureQueriesContext(transaction.get_connection()) as more:
        html = client.get("/").content.decode()

    # then all are shown with the same number of queries
    assert len(_statuses(html)) == 7
    assert len(more) == len(few)


# --- session detail --------------------------------------------------------------------


def test_session_detail_shows_definition_events_and_change_log(loaded, client):
    # given a started session
    session_transition(session_id=SID, action="start", actor="cli:alice", reason="kick-off run")

    # when
    response = client.get(f"/sessions/{SID}/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "PAPER" in html
    assert f"<h1>{SID} " in html
    assert "paper_research" in html
    assert "strat.momentum_fx@1.3.0" in html
    assert "alice" in html
    assert _statuses(html) == {SID: "running"}
    assert "allowed next: pause, stop, abort" in html

    events = response.context["events"]
    assert [(e["sequence"], e["type"]) for e in events] == [
        (2, "paper_session_state_change"), (1, "paper_session_state_change")]  # newest first
    events_table = html.split('id="events"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<tr data-sequence=\"(\d+)\"", events_table) == ["2", "1"]  # newest first
    # readable rows, the raw JSON one click away
    assert "scheduled → running by cli:alice · kick-off run" in events_table
    assert "<summary>raw JSON</summary>" in events_table

    changes = [(c.actor, c.action, c.reason) for c in response.context["changes"]]
    assert changes[0] == ("cli:alice", "session_start", "kick-off run")
    assert changes[1][:2] == ("test-setup", "session_register")
    assert "kick-off run" in html and "session_start" in html and "session_register" in html


def test_session_detail_of_a_scheduled_session(loaded, client):
    response = client.get(f"/sessions/{SID}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert _statuses(html) == {SID: "scheduled"}
    assert "allowed next: start, abort" in html
    assert [e["sequence"] for e in response.context["events"]] == [1]


def test_session_detail_of_a_terminal_session(loaded, client):
    session_transition(session_id=SID, action="abort", actor="cli:alice", reason="stop it")

    html = client.get(f"/sessions/{SID}/").content.decode()

    assert _statuses(html) == {SID: "aborted"}
    assert "none: terminal" in html


def test_session_detail_of_unknown_session_is_404(loaded, client):
    response = client.get("/sessions/no_such_session/")

    assert response.status_code == 404
