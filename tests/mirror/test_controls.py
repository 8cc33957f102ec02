"""The Admin controls on the Mirror pages (server side): lifecycle with a reason, kill
switches and cooldowns, register from a definition with every problem at once, clone and
tag; operators only, checked on every POST."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions_app.models import ChangeLogEntry, KillSwitch, PaperSession, SessionCooldown
from tests.conftest import role_user, signed_in

SID = "research_fx_momentum_v13"
DEFINITION = (Path(__file__).resolve().parents[2] / "config/paper_trading/session_research_crypto_trend.yaml").read_text()


@pytest.fixture
def olga(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "olga", "operator"))


@pytest.fixture
def vic(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "vic", "viewer"))


def test_viewers_get_no_controls_and_their_posts_are_refused(vic):
    page = vic.get(f"/sessions/{SID}/").content.decode()
    assert "section class=\"controls" not in page and "Register a session" not in vic.get("/").content.decode()
    for url, data in [(f"/sessions/{SID}/action/", {"action": "start", "reason": "x"}),
                      ("/controls/killswitch/", {"scope": "global", "state": "halted", "reason": "x"}),
                      (f"/sessions/{SID}/cooldown/", {"action": "set", "duration_s": "60", "reason": "x"}),
                      (f"/sessions/{SID}/clone/", {"new_id": "c1", "reason": "x"}),
                      (f"/sessions/{SID}/tag/", {"tag": "ignore", "reason": "x"}),
                      ("/sessions/new/", {"definition": DEFINITION})]:
        assert vic.post(url, data).status_code == 403, url
    assert PaperSession.objects.get(session_id=SID).status == "scheduled"
    assert not KillSwitch.objects.exists()


def test_lifecycle_needs_a_reason_and_goes_to_the_change_log(olga):
    page = olga.post(f"/sessions/{SID}/action/", {"action": "start", "reason": " "}, follow=True).content.decode()
    assert "reason: say why you start" in page
    assert PaperSession.objects.get(session_id=SID).status == "scheduled"

    page = olga.post(f"/sessions/{SID}/action/", {"action": "start", "reason": "kick-off"}, follow=True)
    assert f"{SID}: running" in page.content.decode()
    entry = ChangeLogEntry.objects.filter(action="session_start").get()
    assert (entry.actor, entry.reason) == ("web:olga", "kick-off")
    # an illegal move is refused with the lifecycle's words, nothing changes
    page = olga.post(f"/sessions/{SID}/action/", {"action": "resume", "reason": "x"}, follow=True).content.decode()
    assert "resume" in page and PaperSession.objects.get(session_id=SID).status == "running"


def test_kill_switch_and_cooldown_forms(olga):
    olga.post(f"/sessions/{SID}/action/", {"action": "start", "reason": "go"})
    page = olga.post("/controls/killswitch/", {"scope": "lane:paper_research", "state": "halted",
                                               "reason": "feed trouble", "next": "/"}, follow=True).content.decode()
    assert KillSwitch.objects.get(scope="lane:paper_research").state == "halted"
    # the header of every page says so
    assert 'class="switch-banner switch-banner-halted" data-scope="lane:paper_research"' in page
    assert "feed trouble" in olga.get("/changelog/").content.decode()
    bad = olga.post("/controls/killswitch/", {"scope": "lane:nowhere", "state": "halted", "reason": "x"},
                    follow=True).content.decode()
    assert "unknown kill switch scope" in bad

    olga.post(f"/sessions/{SID}/cooldown/", {"action": "set", "duration_s": "600", "reason": "CPI"})
    assert SessionCooldown.objects.get(session__session_id=SID).requested["duration_s"] == 600
    page = olga.post(f"/sessions/{SID}/cooldown/", {"action": "set", "duration_s": "ten", "reason": "x"},
                     follow=True).content.decode()
    assert "duration_s: &#x27;ten&#x27; is not a number of seconds" in page


def test_register_lists_every_problem_then_registers_the_fixed_definition(olga):
    broken = DEFINITION.replace("session_id: research_crypto_trend", "session_id: web_crypto") \
        .replace("lane: paper_research", "lane: paper_nowhere").replace("execution_policy: passive_limit",
                                                                        "execution_policy: yolo")
    response = olga.post("/sessions/new/", {"definition": broken, "reason": "try"})
    assert response.status_code == 400
    problems = response.context["problems"]
    assert len(problems) == 2, problems  # both at once, each with its line and field
    assert any("lane" in p and ":3:" in p for p in problems)
    assert any("execution_policy" in p and "yolo" in p for p in problems)
    assert not PaperSession.objects.filter(session_id="web_crypto").exists()
    assert "paper_nowhere" in response.content.decode()  # the text is kept to fix it

    fixed = broken.replace("paper_nowhere", "paper_research").replace("yolo", "passive_limit")
    done = olga.post("/sessions/new/", {"definition": fixed, "reason": "second try"}, follow=True)
    assert done.redirect_chain[-1][0] == "/sessions/web_crypto/"
    assert PaperSession.objects.get(session_id="web_crypto").status == "scheduled"


def test_clone_and_tag(olga):
    page = olga.post(f"/sessions/{SID}/clone/", {"new_id": "fx_rerun", "lane": "paper_gatecheck",
                                                 "reason": "rerun in gatecheck"}, follow=True)
    assert page.redirect_chain[-1][0] == "/sessions/fx_rerun/"
    assert PaperSession.objects.get(session_id="fx_rerun").lane.name == "paper_gatecheck"
    olga.post(f"/sessions/{SID}/tag/", {"tag": "promotion_evidence", "reason": "clean run"})
    assert "promotion_evidence" in PaperSession.objects.get(session_id=SID).tags
    olga.post(f"/sessions/{SID}/tag/", {"tag": "promotion_evidence", "remove": "1", "reason": "not clean"})
    assert "promotion_evidence" not in PaperSession.objects.get(session_id=SID).tags


def test_lane_envelope_and_rules_forms_name_every_bad_field_at_once(loaded, django_user_model, olga):
    from sessions_app.models import LanePolicy, RiskEnvelope

    ada = signed_in(role_user(django_user_model, "ada", "admin"))
    before = RiskEnvelope.objects.get(lane__name="paper_research").max_order_notional
    assert olga.post("/lanes/paper_research/envelope/", {"max_order_notional": "1", "reason": "x"}).status_code == 403
    page = olga.get("/lanes/paper_research/").content.decode()
    assert "Save envelope" not in page and 'name="max_order_notional"' in page  # shown, read-only

    refused = ada.post("/lanes/paper_research/envelope/", {"max_order_notional": "-5", "max_drawdown_pct": "abc",
                                                          "price_collar_bps": "0", "reason": "tighten"}, follow=True)
    page = refused.content.decode()
    for field, problem in [("max_order_notional", "greater than 0"), ("max_drawdown_pct", "valid number"),
                           ("price_collar_bps", "greater than 0")]:
        cell = page.split(f'id="f-{field}"', 1)[1].split("</div>", 1)[0]
        assert problem in cell, field
    assert 'value="abc"' in page  # what was typed comes back to be fixed
    assert RiskEnvelope.objects.get(lane__name="paper_research").max_order_notional == before
    assert not ChangeLogEntry.objects.filter(action="risk_envelope_update").exists()

    ada.post("/lanes/paper_research/envelope/", {"max_order_notional": "200000", "reason": "tighten"})
    assert RiskEnvelope.objects.get(lane__name="paper_research").max_order_notional == 200_000
    assert ChangeLogEntry.objects.get(action="risk_envelope_update").reason == "tighten"

    refused = ada.post("/lanes/paper_research/rules/", {"promotes_to": "paper_gatecheck", "min_days": "-1",
                                                        "min_trades": "200", "max_breaches": "5",
                                                        "t_min_hit_rate": "2", "reason": "stricter"}, follow=True)
    page = refused.content.decode()
    assert "greater than or equal to 0" in page.split('id="f-min_days"', 1)[1].split("</div>", 1)[0]
    assert "less than or equal to 1" in page.split('id="f-t_min_hit_rate"', 1)[1].split("</div>", 1)[0]
    ada.post("/lanes/paper_research/rules/", {"promotes_to": "paper_gatecheck", "min_days": "7", "min_trades": "250",
                                              "max_breaches": "5", "t_min_hit_rate": "0.5", "reason": "stricter"})
    policy = LanePolicy.objects.get(lane__name="paper_research")
    assert (policy.min_days, policy.min_trades, policy.thresholds["min_hit_rate"]) == (7, 250, 0.5)
