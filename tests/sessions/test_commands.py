"""`paper_session` drives the lifecycle from the shell."""

from __future__ import annotations

import shutil

import pytest
from django.core.management import CommandError, call_command

from sessions_app.models import ChangeLogEntry, PaperSession
from telemetry_app.models import TelemetryEvent
from tests.conftest import SHIPPED_CONFIG

NEW_SESSION = """\
session_id: research_fx_meanrev
lane: paper_research
owner: dora
objective: Mean reversion on EURUSD under live-like spreads.
strategy: {registry_id: strat.meanrev_fx, version: 0.4.0}
models:
  - {registry_id: model.meanrev, version: 1.0.0, weight: 1.0}
portfolio_id: pf_research_meanrev
execution_policy: passive_limit
feed: synthetic_fx
symbols: [EURUSD]
end: {duration: 4h}
benchmark: flat_cash
"""


def test_full_lifecycle_from_the_shell(loaded, capsys):
    sid = "research_crypto_trend"
    for action, status in [("start", "running"), ("pause", "paused"), ("resume", "running"),
                           ("stop", "completed")]:
        call_command("paper_session", action, sid, "--reason", f"{action} it", "--actor", "cli:carol")
        assert capsys.readouterr().out.strip() == f"{sid}: {status}"
    assert PaperSession.objects.get(session_id=sid).status == "completed"
    assert list(ChangeLogEntry.objects.filter(target_id=sid, actor="cli:carol")
                .order_by("id").values_list("action", flat=True)) == [
        "session_start", "session_pause", "session_resume", "session_stop"]


def test_illegal_move_from_the_shell_is_a_clear_error(loaded):
    with pytest.raises(CommandError, match="cannot resume session 'research_crypto_trend': it is scheduled"):
        call_command("paper_session", "resume", "research_crypto_trend")


def test_list_shows_sessions_labelled_paper(loaded, capsys):
    call_command("paper_session", "start", "research_fx_momentum_v13")
    capsys.readouterr()
    call_command("paper_session", "list", "--lane", "paper_research")
    out = capsys.readouterr().out
    assert out.startswith("PAPER sessions (env=paper)")
    assert "research_fx_momentum_v13" in out and "running" in out
    assert "gatecheck_fx_momentum_v12" not in out


def test_register_a_new_session_file(loaded, tmp_path, capsys):
    path = tmp_path / "session_research_fx_meanrev.yaml"
    path.write_text(NEW_SESSION)
    call_command("paper_session", "register", str(path), "--config-dir", str(SHIPPED_CONFIG))
    assert "registered research_fx_meanrev in paper_research (scheduled)" in capsys.readouterr().out
    session = PaperSession.objects.get(session_id="research_fx_meanrev")
    assert session.status == "scheduled" and session.owner == "dora"
    assert TelemetryEvent.objects.filter(session=session).count() == 1

    with pytest.raises(CommandError, match="already registered"):
        call_command("paper_session", "register", str(path), "--config-dir", str(SHIPPED_CONFIG))


def test_register_rejects_an_invalid_file_and_writes_nothing(loaded, tmp_path, capsys):
    path = tmp_path / "session_bad.yaml"
    path.write_text(NEW_SESSION.replace("lane: paper_research", "lane: paper_gatecheck"))
    changes = ChangeLogEntry.objects.count()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("paper_session", "register", str(path), "--config-dir", str(SHIPPED_CONFIG))
    err = capsys.readouterr().err
    assert f"{path}:5: strategy.registry_id: strategy 'strat.meanrev_fx' is not allowed in lane 'paper_gatecheck'" in err
    assert not PaperSession.objects.filter(session_id="research_fx_meanrev").exists()
    assert ChangeLogEntry.objects.count() == changes


def test_register_before_config_load_says_what_to_do(db, tmp_path):
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    path = tmp_path / "session_research_fx_meanrev.yaml"
    path.write_text(NEW_SESSION)
    with pytest.raises(CommandError, match="run 'python manage.py paper_config load' first"):
        call_command("paper_session", "register", str(path), "--config-dir", str(root))
