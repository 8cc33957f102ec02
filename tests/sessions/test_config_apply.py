"""Loading the shipped configuration into the database."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from django.core.management import call_command

from broker_app.models import ExecutionPolicy, ExecutionRoute
from ifns_paper.config import load_config_dir
from sessions_app.models import ChangeLogEntry, Lane, PaperSession, RegistryEntry
from sessions_app.registry import registry_in_sync
from sessions_app.services import config_apply, session_transition
from telemetry_app.models import TelemetryEvent
from tests.conftest import SHIPPED_CONFIG


def test_shipped_config_creates_lanes_sessions_routes_and_registry(loaded):
    assert set(Lane.objects.values_list("name", flat=True)) == {"paper_research", "paper_gatecheck"}
    research = Lane.objects.get(name="paper_research")
    assert research.capital_amount == Decimal("1000000.00")
    assert research.risk_envelope.max_order_notional == Decimal("250000.00")
    assert research.policy.promotes_to == "paper_gatecheck"
    assert ExecutionPolicy.objects.get(policy_id="twap_5m").route.route_id == "SIM_VWAP"
    assert ExecutionRoute.objects.get(route_id="SIM_IMPACT").fill_model == "sqrt_impact"
    assert RegistryEntry.objects.filter(registry_id="strat.momentum_fx").count() == 2

    gatecheck = PaperSession.objects.get(session_id="gatecheck_fx_momentum_v12")
    assert gatecheck.status == "scheduled"
    assert gatecheck.lane.name == "paper_gatecheck"
    assert gatecheck.initial_portfolio["kind"] == "from_backtest"
    assert gatecheck.initial_portfolio["cash"] == "231480.25"
    assert gatecheck.end_duration_s == 20 * 86400
    assert [(str(link.entry), link.weight) for link in gatecheck.model_links.all()] == [
        ("model.momentum@2.1.0", 0.7), ("model.meanrev@1.0.0", 0.3)]
    # registration is the first lifecycle event of every session
    assert TelemetryEvent.objects.filter(payload__action="register").count() == 3
    assert registry_in_sync()


def test_applying_the_same_config_twice_changes_nothing(loaded, bundle):
    changes, events = ChangeLogEntry.objects.count(), TelemetryEvent.objects.count()
    report = config_apply(bundle=bundle, actor="again")
    assert report.created == [] and report.updated == [] and report.skipped == []
    assert (ChangeLogEntry.objects.count(), TelemetryEvent.objects.count()) == (changes, events)


def _edited_config(tmp_path, file, old, new):
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    path = root / file
    path.write_text(path.read_text().replace(old, new, 1))
    return load_config_dir(root)


def test_an_edited_envelope_is_updated_with_a_change_log_entry(loaded, tmp_path):
    bundle = _edited_config(tmp_path, "environments/paper.yaml", "max_daily_loss: 25000.00",
                            "max_daily_loss: 20000.00")
    report = config_apply(bundle=bundle, actor="ops")
    assert report.updated == ["risk_envelope:paper_research"]
    assert Lane.objects.get(name="paper_research").risk_envelope.max_daily_loss == Decimal("20000.00")
    change = ChangeLogEntry.objects.latest("id")
    assert (change.action, change.target_id) == ("config_update", "paper_research")
    assert change.before == {"max_daily_loss": "25000"} and change.after == {"max_daily_loss": "20000"}


def test_a_running_session_keeps_its_definition(loaded, tmp_path):
    session_transition(session_id="research_crypto_trend", action="start", actor="t")
    bundle = _edited_config(tmp_path, "paper_trading/session_research_crypto_trend.yaml",
                            "duration: 2d", "duration: 3d")
    report = config_apply(bundle=bundle, actor="ops")
    assert len(report.skipped) == 1 and "is running" in report.skipped[0]
    assert PaperSession.objects.get(session_id="research_crypto_trend").end_duration_s == 2 * 86400


def test_a_scheduled_session_is_redefined(loaded, tmp_path):
    bundle = _edited_config(tmp_path, "paper_trading/session_research_crypto_trend.yaml",
                            "duration: 2d", "duration: 3d")
    report = config_apply(bundle=bundle, actor="ops")
    assert report.updated == ["paper_session:research_crypto_trend"]
    assert PaperSession.objects.get(session_id="research_crypto_trend").end_duration_s == 3 * 86400
    assert ChangeLogEntry.objects.latest("id").action == "session_redefine"


# --- lane cooldown and abort on kill switch ----------------------------------------------


def _cooldown_row(lane: str) -> tuple:
    p = Lane.objects.get(name=lane).policy
    return p.cooldown_max_breaches, p.cooldown_window_s, p.cooldown_duration_s, p.cooldown_max_loss


def test_cooldown_and_abort_flag_round_trip_from_files_to_database_engines(loaded, bundle):
    from ifns_paper.session_setup import setup_from_bundle
    from sessions_app.engines import build_engine

    assert _cooldown_row("paper_research") == (5, 60, 300, Decimal("10000.00"))
    assert _cooldown_row("paper_gatecheck") == (3, 60, 600, Decimal("2000.00"))
    assert Lane.objects.get(name="paper_gatecheck").policy.max_breaches == 0  # promotion rule untouched
    assert dict(PaperSession.objects.values_list("session_id", "abort_on_kill_switch")) == {
        "gatecheck_fx_momentum_v12": True, "research_fx_momentum_v13": False, "research_crypto_trend": False}
    # an engine built from the database cools down exactly like a replay of the files
    for sid in ("gatecheck_fx_momentum_v12", "research_fx_momentum_v13"):
        from_db = build_engine(PaperSession.objects.get(session_id=sid)).cooldown.policy
        assert from_db == setup_from_bundle(bundle, sid).cooldown, sid


def test_an_edited_cooldown_is_updated_with_a_change_log_entry(loaded, tmp_path):
    bundle = _edited_config(tmp_path, "environments/paper.yaml", "max_loss: 2000.00", "max_loss: 1500.00")

    report = config_apply(bundle=bundle, actor="ops")

    assert report.updated == ["lane_policy:paper_gatecheck"]
    assert _cooldown_row("paper_gatecheck") == (3, 60, 600, Decimal("1500.00"))
    change = ChangeLogEntry.objects.latest("id")
    assert (change.action, change.target_type, change.target_id) == ("config_update", "lane_policy",
                                                                     "paper_gatecheck")
    assert change.before == {"cooldown_max_loss": "2000"} and change.after == {"cooldown_max_loss": "1500"}
    assert config_apply(bundle=bundle, actor="ops").updated == []  # and applying it again changes nothing


def test_a_lane_whose_cooldown_section_is_removed_gets_the_defaults(loaded, tmp_path):
    text = (SHIPPED_CONFIG / "environments/paper.yaml").read_text()
    section = text[text.index("    cooldown:\n      max_breaches: 3"):text.index("      max_loss: 2000.00\n")]
    bundle = _edited_config(tmp_path, "environments/paper.yaml", section + "      max_loss: 2000.00\n", "")

    report = config_apply(bundle=bundle, actor="ops")

    assert report.updated == ["lane_policy:paper_gatecheck"]
    assert _cooldown_row("paper_gatecheck") == (3, 60, 300, None)
    assert _cooldown_row("paper_research") == (5, 60, 300, Decimal("10000.00"))


def test_an_explicit_false_abort_flag_is_the_same_definition(loaded, tmp_path):
    bundle = _edited_config(tmp_path, "paper_trading/session_research_crypto_trend.yaml",
                            "duration: 2d", "duration: 2d\n  abort_on_kill_switch: false")
    assert bundle.sessions["research_crypto_trend"][1].end.abort_on_kill_switch is False

    report = config_apply(bundle=bundle, actor="ops")

    assert report.updated == [] and report.skipped == []


def test_setting_the_abort_flag_redefines_a_scheduled_session(loaded, tmp_path):
    bundle = _edited_config(tmp_path, "paper_trading/session_research_crypto_trend.yaml",
                            "duration: 2d", "duration: 2d\n  abort_on_kill_switch: true")

    report = config_apply(bundle=bundle, actor="ops")

    assert report.updated == ["paper_session:research_crypto_trend"]
    assert PaperSession.objects.get(session_id="research_crypto_trend").abort_on_kill_switch is True


@pytest.mark.django_db
def test_ifns_setup_is_idempotent(capsys, settings):
    settings.DEBUG = True
    call_command("ifns_setup")
    first = capsys.readouterr().out
    call_command("ifns_setup")
    second = capsys.readouterr().out
    assert "26 created" in first and "0 created, 0 updated, 26 unchanged" in second
    assert "admin / paper-admin" in second and "approver / paper-approver" in second
    assert "demo approver user created" in first and "demo approver user created" not in second
    from django.contrib.auth.models import User

    assert User.objects.get(username="approver").has_perm("sessions_app.approve_promotionrequest")
