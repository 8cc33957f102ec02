"""REST API for lanes, sessions, session actions and telemetry backfill.

Reads are open; actions need a logged-in user with
``sessions_app.operate_papersession``. Application errors come back as
``{"detail": ...}`` with 404 / 409, input errors as 400 naming the field.
"""

from __future__ import annotations

from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app.models import ChangeLogEntry, PaperSession
from sessions_app.services import session_transition
from sessions_app.services.events import session_events_append
from telemetry_app.choices import EventType
from telemetry_app.models import TelemetryEvent
from tests.conftest import AUTH_QUERIES, clone_sessions

SID = "research_fx_momentum_v13"  # paper_research, operator start, momentum_fx 1.3.0
SHIPPED_SESSIONS = {"gatecheck_fx_momentum_v12", "research_crypto_trend", "research_fx_momentum_v13"}


def _counts() -> tuple[int, int]:
    return TelemetryEvent.objects.count(), ChangeLogEntry.objects.count()


def _status(session_id: str = SID) -> str:
    return PaperSession.objects.get(session_id=session_id).status


# --- lanes ---------------------------------------------------------------------------


def test_lane_list_shows_both_lanes_with_envelope_and_policy(loaded, client):
    # given the shipped configuration
    # when
    response = client.get("/api/v1/lanes/")

    # then
    assert response.status_code == 200
    lanes = {lane["name"]: lane for lane in response.json()}
    assert set(lanes) == {"paper_research", "paper_gatecheck"}
    assert {lane["env"] for lane in lanes.values()} == {"paper"}

    research = lanes["paper_research"]
    assert research["capital_amount"] == "1000000.00"
    assert research["currency"] == "USD"
    assert research["risk_envelope"]["max_order_notional"] == "250000.00"
    assert research["risk_envelope"]["max_daily_loss"] == "25000.00"
    assert research["risk_envelope"]["max_drawdown_pct"] == 8.0
    assert research["risk_envelope"]["max_orders_per_minute"] == 120
    assert research["policy"]["promotes_to"] == "paper_gatecheck"
    assert research["policy"]["allowed_strategies"] == [
        "strat.momentum_fx", "strat.meanrev_fx", "strat.crypto_trend"]
    assert (research["n_sessions"], research["n_running"]) == (2, 0)

    gatecheck = lanes["paper_gatecheck"]
    assert gatecheck["risk_envelope"]["max_gross_exposure"] == "400000.00"
    assert gatecheck["risk_envelope"]["price_collar_bps"] == 25
    assert gatecheck["policy"]["allowed_strategies"] == ["strat.momentum_fx"]
    assert gatecheck["policy"]["promotes_to"] == "live_canary"
    assert gatecheck["policy"]["max_breaches"] == 0
    assert gatecheck["policy"]["thresholds"]["max_tracking_error_bps"] == 50
    # the lanes' cooldown sections of paper.yaml
    assert research["policy"]["cooldown"] == {"max_breaches": 5, "window_s": 60, "duration_s": 300,
                                              "max_loss": "10000.00"}
    assert gatecheck["policy"]["cooldown"] == {"max_breaches": 3, "window_s": 60, "duration_s": 600,
                                               "max_loss": "2000.00"}
    assert (gatecheck["n_sessions"], gatecheck["n_running"]) == (1, 0)


def test_lane_list_counts_running_sessions(loaded, client):
    # given a started research session
    session_transition(session_id=SID, action="start", actor="test", reason="go")

    # when
    lanes = {lane["name"]: lane for lane in client.get("/api/v1/lanes/").json()}

    # then
    assert (lanes["paper_research"]["n_sessions"], lanes["paper_research"]["n_running"]) == (2, 1)
    assert lanes["paper_gatecheck"]["n_running"] == 0


# --- session list and detail ---------------------------------------------------------


def test_session_list_shows_the_shipped_sessions(loaded, client):
    response = client.get("/api/v1/sessions/")

    assert response.status_code == 200
    sessions = response.json()
    assert {s["session_id"] for s in sessions} == SHIPPED_SESSIONS
    assert len(sessions) == 3
    assert {s["env"] for s in sessions} == {"paper"}
    assert {s["status"] for s in sessions} == {"scheduled"}


def test_session_list_filters_by_lane(loaded, client):
    response = client.get("/api/v1/sessions/", {"lane": "paper_gatecheck"})

    assert response.status_code == 200
    assert [(s["session_id"], s["lane"]) for s in response.json()] == [
        ("gatecheck_fx_momentum_v12", "paper_gatecheck")]


def test_session_list_filters_by_status(loaded, client):
    # given nothing is running yet
    assert client.get("/api/v1/sessions/", {"status": "running"}).json() == []
    assert len(client.get("/api/v1/sessions/", {"status": "scheduled"}).json()) == 3

    # when one session starts
    session_transition(session_id=SID, action="start", actor="test", reason="go")

    # then the running filter finds exactly it
    running = client.get("/api/v1/sessions/", {"status": "running"}).json()
    assert [s["session_id"] for s in running] == [SID]


def test_session_detail_returns_the_definition(loaded, client, settings):
    # given links without a public URL prefix
    settings.IFNS_PUBLIC_URL = ""

    # when
    response = client.get(f"/api/v1/sessions/{SID}/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == SID
    assert body["env"] == "paper"
    assert body["lane"] == "paper_research"
    assert body["status"] == "scheduled"
    assert body["owner"] == "alice"
    assert body["strategy"] == "strat.momentum_fx@1.3.0"
    assert body["models"] == [{"model": "model.momentum@2.1.0", "weight": 0.6},
                              {"model": "model.vol_breakout@0.3.0", "weight": 0.4}]
    assert body["portfolio_id"] == "pf_research_fx"
    assert body["execution_policy"] == "immediate"
    assert body["feed"] == "synthetic_fx"
    assert body["symbols"] == ["EURUSD", "GBPUSD", "USDJPY"]
    assert body["start_at"] is None
    assert body["initial_portfolio"] == {"kind": "flat"}
    assert body["end_duration_s"] == 8 * 3600
    assert body["end_target"] == {"trades": 2000}
    assert body["benchmark"] == "flat_cash"
    assert body["started_at"] is None and body["ended_at"] is None
    assert body["last_event_seq"] == 1  # the registration
    assert body["allowed_actions"] == ["start", "abort"]
    assert body["links"]["telemetry"] == f"/api/v1/sessions/{SID}/events/"
    assert body["links"]["session"] == f"/sessions/{SID}/"


def test_session_detail_of_a_gatecheck_session_with_a_backtest_start(loaded, client):
    body = client.get("/api/v1/sessions/gatecheck_fx_momentum_v12/").json()

    assert body["lane"] == "paper_gatecheck"
    assert body["strategy"] == "strat.momentum_fx@1.2.0"
    assert body["start_at"].startswith("2026-11-24T08:00:00")
    assert body["initial_portfolio"]["kind"] == "from_backtest"
    assert body["end_duration_s"] == 20 * 86400


def test_session_detail_of_unknown_session_is_404_naming_it(loaded, client):
    response = client.get("/api/v1/sessions/no_such_session/")

    assert response.status_code == 404
    assert "no_such_session" in response.json()["error"]["message"]


# --- session actions -----------------------------------------------------------------


def test_anonymous_cannot_act_on_a_session(loaded, client):
    counts = _counts()

    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "anon"},
                           content_type="application/json")

    assert response.status_code in (401, 403)
    assert _status() == "scheduled"
    assert _counts() == counts


def test_viewer_without_permission_gets_403(loaded, client, viewer):
    # given a logged-in user who may only read
    client.force_login(viewer)
    counts = _counts()

    # when
    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "try"},
                           content_type="application/json")

    # then
    assert response.status_code == 403
    assert "needs the operator role" in response.json()["error"]["message"]
    assert _status() == "scheduled"
    assert _counts() == counts


def test_operator_starts_a_session(loaded, client, operator, django_capture_on_commit_callbacks):
    # given
    client.force_login(operator)
    events_before, changes_before = _counts()
    last_change_id = ChangeLogEntry.objects.latest("id").id

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/sessions/{SID}/actions/",
                               {"action": "start", "reason": "morning run"},
                               content_type="application/json")

    # then the response is the updated session
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["session_id"] == SID
    assert body["status"] == "running"
    assert body["started_at"] is not None
    assert body["allowed_actions"] == ["pause", "stop", "abort"]
    assert body["last_event_seq"] == 2
    assert _status() == "running"

    # and exactly one change-log entry and one event were written
    assert _counts() == (events_before + 1, changes_before + 1)
    new = list(ChangeLogEntry.objects.filter(id__gt=last_change_id))
    assert len(new) == 1
    change = new[0]
    assert (change.actor, change.action, change.target_type, change.target_id, change.reason) == (
        "api:olga_operator", "session_start", "paper_session", SID, "morning run")
    assert (change.before["status"], change.after["status"]) == ("scheduled", "running")
    event = TelemetryEvent.objects.filter(session__session_id=SID).latest("sequence")
    assert event.payload["actor"] == "api:olga_operator"
    assert event.payload["to"] == "running"


def test_operator_illegal_move_is_409_and_writes_nothing(loaded, client, operator):
    # given a scheduled session
    client.force_login(operator)
    counts = _counts()

    # when the operator tries to resume it
    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"action": "resume", "reason": "?"},
                           content_type="application/json")

    # then
    assert response.status_code == 409
    body = response.json()
    assert "cannot resume" in body["error"]["message"]
    assert SID in body["error"]["message"]
    assert body["error"]["status"] == "scheduled"
    assert body["error"]["action"] == "resume"
    assert _status() == "scheduled"
    assert _counts() == counts


def test_operator_bad_action_is_400_naming_the_field(loaded, client, operator):
    client.force_login(operator)
    counts = _counts()

    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"action": "explode"},
                           content_type="application/json")

    assert response.status_code == 400
    assert "action" in response.json()["error"]["fields"]
    assert _status() == "scheduled"
    assert _counts() == counts


def test_operator_missing_action_is_400(loaded, client, operator):
    client.force_login(operator)

    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"reason": "no action"},
                           content_type="application/json")

    assert response.status_code == 400
    assert "action" in response.json()["error"]["fields"]


def test_operator_action_on_unknown_session_is_404(loaded, client, operator):
    client.force_login(operator)
    counts = _counts()

    response = client.post("/api/v1/sessions/no_such_session/actions/", {"action": "start"},
                           content_type="application/json")

    assert response.status_code == 404
    assert "no_such_session" in response.json()["error"]["message"]
    assert _counts() == counts


def test_reason_is_optional(loaded, client, operator):
    client.force_login(operator)

    response = client.post(f"/api/v1/sessions/{SID}/actions/", {"action": "abort"},
                           content_type="application/json")

    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    assert response.json()["allowed_actions"] == []
    change = ChangeLogEntry.objects.latest("id")
    assert (change.action, change.reason) == ("session_abort", "")


# --- telemetry backfill --------------------------------------------------------------


def _events(client, session_id: str = SID, **params):
    return client.get(f"/api/v1/sessions/{session_id}/events/", params)


def test_backfill_returns_events_after_a_sequence(loaded, client):
    # given a registered (seq 1) and started (seq 2) session
    session_transition(session_id=SID, action="start", actor="test", reason="go")

    # when / then: everything
    body = _events(client).json()
    assert body["session_id"] == SID and body["env"] == "paper"
    assert [e["sequence"] for e in body["events"]] == [1, 2]
    assert [e["payload"]["to"] for e in body["events"]] == ["scheduled", "running"]
    assert {(e["env"], e["lane"], e["session_id"]) for e in body["events"]} == {
        ("paper", "paper_research", SID)}
    assert body["next_after"] == 2

    # only what came after 1
    body = _events(client, after=1).json()
    assert [e["sequence"] for e in body["events"]] == [2]
    assert body["events"][0]["type"] == "paper_session_state_change"
    assert body["next_after"] == 2

    # nothing after the last one: next_after stays put
    body = _events(client, after=2).json()
    assert body["events"] == [] and body["next_after"] == 2


def test_backfill_limit_pages_oldest_first(loaded, client):
    session_transition(session_id=SID, action="start", actor="test", reason="go")

    body = _events(client, limit=1).json()

    assert [e["sequence"] for e in body["events"]] == [1]
    assert body["next_after"] == 1


def test_backfill_does_not_mix_sessions(loaded, client):
    session_transition(session_id="research_crypto_trend", action="start", actor="test")

    body = _events(client).json()

    assert [e["sequence"] for e in body["events"]] == [1]
    assert {e["session_id"] for e in body["events"]} == {SID}


def test_backfill_filters_by_type(loaded, client):
    # given a state change and an event of another type
    session_transition(session_id=SID, action="start", actor="test", reason="go")
    with transaction.atomic():
        session = PaperSession.objects.select_for_update().select_related("lane").get(session_id=SID)
        session_events_append(session=session, events=[
            (EventType.ORDER_FILLED, timezone.now(), {"symbol": "EURUSD", "quantity": "1000"})])

    # when / then
    state_changes = _events(client, type="paper_session_state_change").json()["events"]
    assert [(e["sequence"], e["type"]) for e in state_changes] == [
        (1, "paper_session_state_change"), (2, "paper_session_state_change")]

    fills = _events(client, type="order_filled").json()["events"]
    assert [(e["sequence"], e["type"]) for e in fills] == [(3, "order_filled")]

    assert [e["sequence"] for e in _events(client, after=1, type="paper_session_state_change")
            .json()["events"]] == [2]


def test_backfill_bad_after_is_400_naming_it(loaded, client):
    response = _events(client, after=-1)

    assert response.status_code == 400
    assert "after" in response.json()["error"]["fields"]


def test_backfill_bad_type_is_400_naming_it(loaded, client):
    response = _events(client, type="not_a_type")

    assert response.status_code == 400
    assert "type" in response.json()["error"]["fields"]


def test_backfill_of_unknown_session_is_404(loaded, client):
    response = _events(client, "no_such_session")

    assert response.status_code == 404
    assert "no_such_session" in response.json()["error"]["message"]


# --- query counts --------------------------------------------------------------------


def test_session_list_query_count_is_bounded_and_flat(loaded, client, django_assert_max_num_queries):
    # given the shipped sessions
    with django_assert_max_num_queries(AUTH_QUERIES + 6) as few:
        assert len(client.get("/api/v1/sessions/").json()) == 3

    # when there are more sessions
    clone_sessions(4)
    with CaptureQueriesContext(transaction.get_connection()) as more:
        assert len(client.get("/api/v1/sessions/").json()) == 7

    # then the same number of queries is needed
    assert len(more) == len(few)


def test_lane_list_query_count_is_bounded_and_flat(loaded, client, django_assert_max_num_queries):
    with django_assert_max_num_queries(AUTH_QUERIES + 6) as few:
        assert client.get("/api/v1/lanes/").status_code == 200

    clone_sessions(4)
    with CaptureQueriesContext(transaction.get_connection()) as more:
        lanes = {lane["name"]: lane for lane in client.get("/api/v1/lanes/").json()}

    assert lanes["paper_research"]["n_sessions"] == 6
    assert len(more) == len(few)


def test_the_fast_session_list_renders_exactly_what_the_serializer_does(loaded):
    from sessions_app import selectors, services
    from sessions_app.api import SessionOutput, session_records

    services.session_transition(session_id="research_fx_momentum_v13", action="start", actor="t", reason="go")
    services.session_transition(session_id="research_fx_momentum_v13", action="pause", actor="t", reason="wait")
    sessions = list(selectors.session_list())
    health = {s.session_id: {"session_id": s.session_id, "marker": i} for i, s in enumerate(sessions)}
    expected = SessionOutput(sessions, many=True, context={"health": health}).data
    assert session_records(sessions, health) == expected
    models = selectors.session_models([s.pk for s in sessions])
    assert session_records(list(selectors.session_list_rows()), health, models) == expected
