"""The Admin controls on the Mirror pages (server side): lifecycle with a reason, kill
switches and cooldowns, register from a definition with every problem at once, clone and
tag; operators only, checked on every POST."""

from __future__ import annotations

import html
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


def test_lane_rules_form_changes_allowed_strategies_and_cooldown_rules(loaded, django_user_model):
    from sessions_app.models import LanePolicy

    ada = signed_in(role_user(django_user_model, "ada", "admin"))
    page = ada.get("/lanes/paper_research/").content.decode()
    for field in ("allowed_strategies", "allowed_models", "cooldown_max_breaches", "cooldown_window_s",
                  "cooldown_duration_s", "cooldown_max_loss"):
        assert f'name="{field}"' in page, field
    before = LanePolicy.objects.get(lane__name="paper_research")
    form = {"promotes_to": "paper_gatecheck", "min_days": str(before.min_days), "min_trades": str(before.min_trades),
            "max_breaches": str(before.max_breaches), "reason": "cooldowns for CPI days"}

    # a model named as a strategy, an unknown id and a zero window: all three named at once
    refused = ada.post("/lanes/paper_research/rules/", form | {
        "allowed_strategies": "strat.momentum_fx, model.momentum strat.nowhere", "allowed_models": "model.momentum",
        "cooldown_max_breaches": "2", "cooldown_window_s": "0", "cooldown_duration_s": "600",
        "cooldown_max_loss": ""}, follow=True).content.decode()
    refused = html.unescape(refused)
    strategies = refused.split('id="f-allowed_strategies"', 1)[1].split("</div>", 1)[0]
    assert "'model.momentum' is a model, not a strategy" in strategies
    assert "unknown registry id 'strat.nowhere'" in strategies
    assert "greater than or equal to 1" in refused.split('id="f-cooldown_window_s"', 1)[1].split("</div>", 1)[0]
    assert 'value="strat.momentum_fx, model.momentum strat.nowhere"' in refused  # kept to be fixed
    after_refusal = LanePolicy.objects.get(lane__name="paper_research")
    assert (after_refusal.allowed_strategies, after_refusal.cooldown_window_s) == (before.allowed_strategies,
                                                                                   before.cooldown_window_s)

    ada.post("/lanes/paper_research/rules/", form | {
        "allowed_strategies": "strat.momentum_fx,strat.crypto_trend", "allowed_models": "model.momentum",
        "cooldown_max_breaches": "2", "cooldown_window_s": "120", "cooldown_duration_s": "600",
        "cooldown_max_loss": "1,500"})
    policy = LanePolicy.objects.get(lane__name="paper_research")
    assert policy.allowed_strategies == ["strat.momentum_fx", "strat.crypto_trend"]
    assert policy.allowed_models == ["model.momentum"]
    assert (policy.cooldown_max_breaches, policy.cooldown_window_s, policy.cooldown_duration_s) == (2, 120, 600)
    assert policy.cooldown_max_loss == 1500
    entry = ChangeLogEntry.objects.filter(action="lane_policy_update").latest("id")
    assert entry.reason == "cooldowns for CPI days" and entry.before["cooldown_window_s"] == before.cooldown_window_s

    # an empty loss clears the loss rule
    ada.post("/lanes/paper_research/rules/", form | {"cooldown_max_loss": "", "reason": "no loss rule"})
    assert LanePolicy.objects.get(lane__name="paper_research").cooldown_max_loss is None


def _textarea(response) -> str:
    """The definition box's text as the browser shows it."""
    raw = response.content.decode().split('name="definition"', 1)[1].split(">", 1)[1]
    return html.unescape(raw.split("</textarea>", 1)[0])


def test_a_session_is_cloned_from_an_imported_backtest_through_the_register_page(olga, tmp_path):
    import yaml

    from sessions_app.services.backtests import results_import
    from tests.sessions.test_results_import import write_results

    meta = {"id": "bt_fx_momo_2025", "strategy": "strat.momentum_fx@1.3.0", "symbols": ["EURUSD"],
            "starting_capital": 1_000_000.0, "currency": "USD"}  # no session: a Stage 04 run
    results_import(folder=write_results(tmp_path / "bt", summary=meta,
                                        fills="ts,symbol,side,quantity,price,fee\n"), actor="t")
    page = olga.get("/sessions/new/").content.decode()
    assert '<option value="bt_fx_momo_2025"' in page

    text = _textarea(olga.get("/sessions/new/?backtest=bt_fx_momo_2025"))
    assert text.startswith("# Cloned from imported backtest bt_fx_momo_2025")
    definition = yaml.safe_load(text)
    assert definition["session_id"] == "bt_fx_momo_2025_paper"
    assert definition["strategy"] == {"registry_id": "strat.momentum_fx", "version": "1.3.0"}
    assert definition["symbols"] == ["EURUSD"] and set(definition["sizing"]["lot_sizes"]) == {"EURUSD"}
    assert definition["start"] == {"at": None, "portfolio": "flat"}

    done = olga.post("/sessions/new/", {"definition": text, "backtest": "bt_fx_momo_2025",
                                        "reason": "paper run of the 2025 backtest"}, follow=True)
    assert "registered bt_fx_momo_2025_paper in paper_research (scheduled)" in done.content.decode()
    clone = PaperSession.objects.get(session_id="bt_fx_momo_2025_paper")
    assert (clone.status, clone.symbols, str(clone.strategy)) == ("scheduled", ["EURUSD"], "strat.momentum_fx@1.3.0")
    assert clone.provenance["cloned_from"]["backtest"] == "bt_fx_momo_2025"
    entry = ChangeLogEntry.objects.get(action="session_register", target_id="bt_fx_momo_2025_paper")
    assert entry.after["provenance"]["cloned_from"]["kind"] == "imported"

    # the next clone of the same backtest gets a free id; an unknown backtest is named
    again = yaml.safe_load(_textarea(olga.get("/sessions/new/?backtest=bt_fx_momo_2025")))
    assert again["session_id"] == "bt_fx_momo_2025_paper_2"
    missing = olga.get("/sessions/new/?backtest=bt_nowhere")
    assert missing.status_code == 404 and "no backtest &#x27;bt_nowhere&#x27;" in missing.content.decode()


def test_a_backtest_of_a_session_clones_that_sessions_definition(olga, tmp_path):
    import yaml

    from sessions_app.services.backtests import results_import
    from sessions_app.services.promotions import backtest_definition
    from tests.sessions.test_results_import import write_results

    results_import(folder=write_results(tmp_path / "bt"), actor="t")  # names SID as its session
    text, provenance = backtest_definition("bt_fx_momo_2025")
    definition = yaml.safe_load(text)
    source = PaperSession.objects.get(session_id=SID)
    assert (definition["lane"], definition["feed"], definition["execution_policy"], definition["symbols"]) == \
        ("paper_research", source.feed, source.execution_policy.policy_id, source.symbols)
    assert provenance == {"cloned_from": {"backtest": "bt_fx_momo_2025", "kind": "imported", "definition_of": SID}}
