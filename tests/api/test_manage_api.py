"""Running the desk over the API: lane envelopes and policies changed by admins and
validated like paper.yaml; sessions registered from a definition (problems named by line
and path, nothing written), cloned and tagged; a traded session's orders, fills and
positions; the change log; system health."""

from __future__ import annotations

import pytest

from sessions_app.models import ChangeLogEntry, PaperSession, RiskEnvelope
from tests.conftest import ROOT, role_user, signed_in
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures

DEFINITION = (ROOT / "config" / "paper_trading" / "session_research_crypto_trend.yaml").read_text()


@pytest.fixture
def admin(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "ada", "admin"))


@pytest.fixture
def operator(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "olga", "operator"))


def patch(client, path, body):
    return client.patch(path, body, content_type="application/json")


def post(client, path, body):
    return client.post(path, body, content_type="application/json")


@pytest.mark.django_db
def test_an_admin_changes_an_envelope_field_validated_and_logged(admin):
    done = patch(admin, "/api/v1/lanes/paper_research/envelope/",
                 {"values": {"max_order_notional": "200000.00"}, "reason": "tighter"})
    assert done.status_code == 200 and done.json()["risk_envelope"]["max_order_notional"] == "200000.00"
    assert done.json()["risk_envelope"]["max_gross_exposure"] == "2000000.00"  # the rest unchanged
    entry = ChangeLogEntry.objects.get(action="risk_envelope_update")
    assert (entry.actor, entry.target_id, entry.reason) == ("api:ada", "paper_research", "tighter")
    bad = patch(admin, "/api/v1/lanes/paper_research/envelope/",
                {"values": {"max_order_notional": "-5", "nonsense": 1}, "reason": "x"})
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"nonsense"}
    negative = patch(admin, "/api/v1/lanes/paper_research/envelope/",
                     {"values": {"max_order_notional": "-5"}, "reason": "x"})
    assert negative.status_code == 400 and "max_order_notional" in negative.json()["error"]["fields"]
    assert str(RiskEnvelope.objects.get(lane__name="paper_research").max_order_notional) == "200000.00"
    assert patch(admin, "/api/v1/lanes/nowhere/envelope/", {"values": {"max_order_notional": "1"},
                                                            "reason": "x"}).status_code == 404


@pytest.mark.django_db
def test_an_admin_changes_a_lane_policy_with_its_cross_checks(admin):
    done = patch(admin, "/api/v1/lanes/paper_research/policy/", {"values": {"min_days": 3}, "reason": "faster"})
    assert done.status_code == 200 and done.json()["policy"]["min_days"] == 3
    bad = patch(admin, "/api/v1/lanes/paper_research/policy/",
                {"values": {"promotes_to": "paper_nowhere"}, "reason": "x"})
    assert bad.status_code == 400 and "promotes_to" in " ".join(bad.json()["error"]["fields"])


@pytest.mark.django_db
def test_a_session_is_registered_from_its_definition_or_refused_by_line(operator):
    text = DEFINITION.replace("session_id: research_crypto_trend", "session_id: crypto_trend_api")
    made = post(operator, "/api/v1/sessions/", {"definition": text, "reason": "from a script"})
    assert made.status_code == 201, made.json()
    assert made.json()["session_id"] == "crypto_trend_api" and made.json()["status"] == "scheduled"
    assert post(operator, "/api/v1/sessions/", {"definition": text}).status_code == 409  # the id exists
    broken = text.replace("session_id: crypto_trend_api", "session_id: crypto_broken").replace(
        "lane: paper_research", "lane: paper_nowhere")
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if ln.startswith("lane:"))
    refused = post(operator, "/api/v1/sessions/", {"definition": broken})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert any(p.startswith(f"request body:{line}: lane:") for p in error["problems"]), error["problems"]
    assert "lane" in error["fields"] and not PaperSession.objects.filter(session_id="crypto_broken").exists()
    as_object = post(operator, "/api/v1/sessions/", {"definition": {"session_id": "x"}})
    assert as_object.status_code == 400 and "lane" in error["fields"]
    assert post(operator, "/api/v1/sessions/", {"definition": ""}).status_code == 400


@pytest.mark.django_db
def test_clone_and_tag(operator):
    cloned = post(operator, f"/api/v1/sessions/{SID}/clone/",
                  {"new_id": "fx_again", "lane": "paper_gatecheck", "reason": "second look"})
    assert cloned.status_code == 201 and cloned.json()["lane"] == "paper_gatecheck"
    assert PaperSession.objects.get(session_id="fx_again").provenance["cloned_from"]["session"] == SID
    tagged = post(operator, f"/api/v1/sessions/{SID}/tags/", {"tag": "promotion_evidence", "reason": "good run"})
    assert tagged.status_code == 200 and "promotion_evidence" in tagged.json()["tags"]
    assert post(operator, f"/api/v1/sessions/{SID}/tags/", {"tag": "shiny", "reason": "x"}).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_a_traded_sessions_orders_fills_and_positions_page_by_id(traded, django_user_model):  # noqa: F811
    reader = signed_in(role_user(django_user_model, "vera", "viewer"))
    fills = reader.get(f"/api/v1/sessions/{SID}/fills/?limit=2").json()
    assert len(fills["items"]) == 2 and fills["next_after"] == fills["items"][-1]["id"]
    rest = reader.get(f"/api/v1/sessions/{SID}/fills/?after={fills['next_after']}").json()["items"]
    everything = reader.get(f"/api/v1/sessions/{SID}/fills/").json()["items"]
    assert [f["id"] for f in fills["items"] + rest] == [f["id"] for f in everything]
    orders = reader.get(f"/api/v1/sessions/{SID}/orders/").json()["items"]
    assert {f["order__client_order_id"] for f in everything} <= {o["client_order_id"] for o in orders}
    positions = reader.get(f"/api/v1/sessions/{SID}/positions/").json()
    net = {}
    for f in everything:
        net[f["symbol"]] = net.get(f["symbol"], 0.0) + (f["quantity"] if f["side"] == "buy" else -f["quantity"])
    assert {p["symbol"]: p["quantity"] for p in positions} == pytest.approx(
        {s: q for s, q in net.items() if q or s in {p["symbol"] for p in positions}})
    assert reader.get("/api/v1/sessions/nope/fills/").status_code == 404


@pytest.mark.django_db
def test_change_log_and_system_health(operator):
    post(operator, f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "go"})
    log = operator.get(f"/api/v1/changelog/?target_type=paper_session&target_id={SID}").json()["items"]
    assert [e["action"] for e in log] == ["session_register", "session_start"]
    assert log[1]["actor"] == "api:olga" and log[1]["reason"] == "go"
    health = operator.get("/api/v1/system/health/").json()
    assert set(health) == {"feeds", "sessions", "workers"}
    assert SID in health["sessions"] and "step_lag_ms" in health["sessions"][SID]
    assert set(health["workers"]["queues"]) >= {"celery", "steps.0"}



@pytest.mark.django_db(transaction=True)
def test_events_filter_by_type_symbol_time_and_sequence(traded, django_user_model):  # noqa: F811
    from telemetry_app.models import TelemetryEvent

    reader = signed_in(role_user(django_user_model, "vera", "viewer"))
    stored = list(TelemetryEvent.objects.filter(session__session_id=SID).order_by("sequence"))
    fills = [e for e in stored if e.event_type == "order_filled"]
    symbol = fills[0].payload["symbol"]

    def seqs(query: str) -> list[int]:
        response = reader.get(f"/api/v1/sessions/{SID}/events/?{query}")
        assert response.status_code == 200, response.json()
        return [e["sequence"] for e in response.json()["events"]]

    assert seqs(f"type=order_filled&symbol={symbol}") == [e.sequence for e in fills
                                                           if e.payload["symbol"] == symbol]
    assert seqs("after=3&until=7") == [4, 5, 6, 7]
    middle = stored[len(stored) // 2].event_time
    since = middle.isoformat().replace("+00:00", "Z")
    assert seqs(f"since={since}&limit=1000") == [e.sequence for e in stored if e.event_time >= middle][:1000]
    assert seqs(f"before={since}&limit=1000") == [e.sequence for e in stored if e.event_time < middle][:1000]
    bad = reader.get(f"/api/v1/sessions/{SID}/events/?since=yesterday")
    assert bad.status_code == 400 and "since" in bad.json()["error"]["fields"]
