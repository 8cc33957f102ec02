"""Broken configuration files, one defect each: rejected with the file, line
and field named, and nothing written to the database or the registry."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from broker_app.models import ExecutionPolicy, ExecutionRoute
from ifns_paper.config import ConfigError, load_config_dir
from sessions_app.models import ChangeLogEntry, Lane, PaperSession, RegistryEntry
from sessions_app.registry import registry_path
from telemetry_app.models import TelemetryEvent
from tests.conftest import SHIPPED_CONFIG

RESEARCH_FX = "paper_trading/session_research_fx_momentum.yaml"
GATECHECK_FX = "paper_trading/session_gatecheck_fx_momentum.yaml"
CRYPTO = "paper_trading/session_research_crypto_trend.yaml"
ENV = "environments/paper.yaml"
ROUTES = "policies/execution_routes.json"
POLICIES = "policies/execution_policies.json"


@dataclass
class Defect:
    id: str
    file: str  # file the defect is in (and the message names)
    old: str | None  # text replaced (first occurrence); None: see `create`/`delete`
    new: str
    expect: str  # substring of the reported problem, after "file:line: "
    line_of: str | None = None  # text whose first line in the broken file is the reported line
    create: bool = False  # write `new` as a whole new file named `file`
    delete: bool = False


DEFECTS = [
    Defect("unknown-route-in-policy", POLICIES, '"route": "SIM_VWAP"', '"route": "SIM_NOPE"',
           "policies.twap_5m.route: unknown route 'SIM_NOPE'", line_of='"SIM_NOPE"'),
    Defect("unknown-lane-in-session", CRYPTO, "lane: paper_research", "lane: paper_nowhere",
           "lane: unknown lane 'paper_nowhere'", line_of="paper_nowhere"),
    Defect("strategy-not-allowed-in-lane", GATECHECK_FX,
           "strategy: {registry_id: strat.momentum_fx, version: 1.2.0}",
           "strategy: {registry_id: strat.meanrev_fx, version: 0.4.0}",
           "strategy.registry_id: strategy 'strat.meanrev_fx' is not allowed in lane 'paper_gatecheck'",
           line_of="strat.meanrev_fx"),
    Defect("model-not-allowed-in-lane", GATECHECK_FX, "model.meanrev, version: 1.0.0",
           "model.vol_breakout, version: 0.3.0",
           "models[1].registry_id: model 'model.vol_breakout' is not allowed in lane 'paper_gatecheck'",
           line_of="model.vol_breakout"),
    Defect("negative-limit", ENV, "max_daily_loss: 5000.00", "max_daily_loss: -5000.00",
           "lanes.paper_gatecheck.risk_envelope.max_daily_loss: Input should be greater than 0",
           line_of="-5000.00"),
    Defect("inconsistent-envelope", ENV, "max_order_notional: 50000.00", "max_order_notional: 500000.00",
           "lanes.paper_gatecheck.risk_envelope: max_order_notional cannot exceed max_gross_exposure"),
    Defect("misspelt-field", ENV, "max_orders_per_minute: 120", "max_orders_per_minut: 120",
           "lanes.paper_research.risk_envelope.max_orders_per_minut: unknown field", line_of="per_minut:"),
    Defect("yaml-syntax", ENV, "  clock: realtime", "  clock: [realtime", "invalid YAML"),
    Defect("json-syntax", ROUTES, '"schema_version": 1,', '"schema_version": 1,,', "invalid JSON",
           line_of='"schema_version"'),
    Defect("duplicate-key", CRYPTO, "owner: carol", "owner: carol\nowner: dave",
           "owner: key appears more than once", line_of="owner: dave"),
    Defect("unknown-model-version", RESEARCH_FX, "model.vol_breakout, version: 0.3.0",
           "model.vol_breakout, version: 0.9.0",
           "models[1].version: 'model.vol_breakout' has no version 0.9.0", line_of="0.9.0"),
    Defect("symbol-not-on-feed", RESEARCH_FX, "symbols: [EURUSD, GBPUSD, USDJPY]",
           "symbols: [EURUSD, GBPUSD, XAUUSD]",
           "symbols[2]: feed 'synthetic_fx' does not carry XAUUSD", line_of="XAUUSD"),
    Defect("missing-backtest-state", GATECHECK_FX, "momentum_fx_1.2.0_end_state.json", "nope.json",
           "start.portfolio.from_backtest: backtest end-state file not found: backtests/nope.json",
           line_of="nope.json"),
    Defect("weights-do-not-sum-to-one", RESEARCH_FX, "weight: 0.4}", "weight: 0.5}",
           "model weights must sum to 1, got 1.1"),
    Defect("unknown-policy", CRYPTO, "execution_policy: passive_limit", "execution_policy: yolo",
           "execution_policy: unknown execution policy 'yolo'", line_of="yolo"),
    Defect("unknown-promotion-target", ENV, "promotes_to: live_canary", "promotes_to: live_yolo",
           "lanes.paper_gatecheck.promotion.promotes_to: unknown lane 'live_yolo'", line_of="live_yolo"),
    Defect("telemetry-not-labelled-paper", ENV, "      env: paper\n      lane: paper_gatecheck",
           "      env: live\n      lane: paper_gatecheck",
           "telemetry_tags must include env: paper and lane: paper_gatecheck"),
    Defect("lane-allows-unknown-model", ENV, "allowed_models: [model.momentum, model.meanrev]",
           "allowed_models: [model.momentum, model.nope]",
           "lanes.paper_gatecheck.allowed_models[1]: unknown registry id 'model.nope'", line_of="model.nope"),
    Defect("route-parameter-out-of-range", ROUTES, '"max_participation": 0.1', '"max_participation": 1.5',
           "routes.SIM_VWAP.simulation.max_participation: Input should be less than or equal to 1",
           line_of="1.5"),
    Defect("route-negative-depth", ROUTES, '"depth_levels": 10', '"depth_levels": -3',
           "routes.SIM_TOUCH.simulation.depth_levels: Input should be greater than or equal to 0",
           line_of="-3"),
    Defect("route-zero-refill", ROUTES, '"refill_ms": 2000', '"refill_ms": 0',
           "routes.SIM_CHAOS.simulation.refill_ms: Input should be greater than 0", line_of='"refill_ms": 0'),
    Defect("route-impact-share-above-one", ROUTES, '"max_window_share": 0.1', '"max_window_share": 2',
           "routes.SIM_IMPACT.simulation.max_window_share: Input should be less than or equal to 1",
           line_of='"max_window_share": 2'),
    Defect("limit-policy-without-offset", POLICIES, '"limit_offset_bps": 0.0,', "",
           "policies.passive_limit: a limit policy needs limit_offset_bps"),
    Defect("cooldown-fractional-breaches", ENV, "max_breaches: 3", "max_breaches: 2.5",
           "lanes.paper_gatecheck.cooldown.max_breaches: Input should be a valid integer", line_of="2.5"),
    Defect("cooldown-zero-duration", ENV, "duration_s: 600", "duration_s: 0",
           "lanes.paper_gatecheck.cooldown.duration_s: Input should be greater than or equal to 1",
           line_of="duration_s: 0"),
    Defect("cooldown-window-longer-than-a-day", ENV, "window_s: 60\n      duration_s: 600",
           "window_s: 172800\n      duration_s: 600",
           "lanes.paper_gatecheck.cooldown.window_s: Input should be less than or equal to 86400",
           line_of="172800"),
    Defect("cooldown-negative-loss", ENV, "max_loss: 2000.00", "max_loss: -2000.00",
           "lanes.paper_gatecheck.cooldown.max_loss: Input should be greater than 0", line_of="-2000.00"),
    Defect("cooldown-misspelt-field", ENV, "duration_s: 600", "duration: 600",
           "lanes.paper_gatecheck.cooldown.duration: unknown field", line_of="duration: 600"),
    Defect("abort-on-kill-switch-not-a-boolean", GATECHECK_FX, "abort_on_kill_switch: true",
           "abort_on_kill_switch: sometimes",
           "end.abort_on_kill_switch: Input should be a valid boolean", line_of="sometimes"),
    Defect("missing-file", ROUTES, None, "", "file is missing", delete=True),
    Defect("badly-named-session-file", "paper_trading/research.yaml", None, "session_id: x\n",
           "session files are named session_<name>.yaml", create=True),
    Defect("duplicate-session-id", "paper_trading/session_zz_copy.yaml", None,
           (SHIPPED_CONFIG / CRYPTO).read_text(),
           "session_id: session_id 'research_crypto_trend' is already defined", create=True),
]


def _break(tmp_path: Path, defect: Defect) -> tuple[Path, int | None]:
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    target = root / defect.file
    if defect.delete:
        target.unlink()
        return root, None
    if defect.create:
        target.write_text(defect.new)
        return root, None
    text = target.read_text()
    assert defect.old in text, f"fixture drifted: {defect.old!r} not in {defect.file}"
    text = text.replace(defect.old, defect.new, 1)
    target.write_text(text)
    line = None
    if defect.line_of:
        line = next(i for i, row in enumerate(text.splitlines(), 1) if defect.line_of in row)
    return root, line


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.id)
def test_loader_names_file_line_and_field(tmp_path, defect):
    root, line = _break(tmp_path, defect)
    with pytest.raises(ConfigError) as err:
        load_config_dir(root, label_root="config")
    where = f"config/{defect.file}:{line}: " if line else f"config/{defect.file}"
    matching = [str(p) for p in err.value.problems if defect.expect in str(p)]
    assert matching, f"expected {defect.expect!r} in:\n{err.value}"
    assert any(m.startswith(where) for m in matching), f"expected location {where!r} in {matching}"


@pytest.mark.django_db
@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.id)
def test_paper_config_load_writes_nothing_when_any_file_is_invalid(tmp_path, defect, capsys):
    root, _ = _break(tmp_path, defect)
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("paper_config", "load", str(root))
    assert defect.expect in capsys.readouterr().err
    for model in (Lane, RegistryEntry, ExecutionRoute, ExecutionPolicy, PaperSession, ChangeLogEntry,
                  TelemetryEvent):
        assert model.objects.count() == 0, model.__name__
    assert not registry_path().exists()


def test_check_command_exits_non_zero_and_lists_every_problem(tmp_path):
    root, _ = _break(tmp_path, DEFECTS[0])
    (root / CRYPTO).write_text((root / CRYPTO).read_text().replace("lane: paper_research", "lane: nope"))
    with pytest.raises(CommandError, match="2 problem"):
        call_command("paper_config", "check", str(root))


def test_missing_directory_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="configuration directory not found"):
        load_config_dir(tmp_path / "absent")
