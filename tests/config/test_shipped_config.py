"""Every shipped configuration file validates, and `paper_config check` says so."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.management import call_command

from ifns_paper.config import load_config_dir
from ifns_paper.config.schema import (
    BacktestEndState,
    PaperEnvironmentFile,
    PoliciesFile,
    RegistryFile,
    RoutesFile,
    SessionDefinition,
)
from tests.conftest import SHIPPED_CONFIG


def test_shipped_config_directory_is_valid():
    bundle = load_config_dir(SHIPPED_CONFIG)
    assert set(bundle.environment.lanes) == {"paper_research", "paper_gatecheck"}
    assert {"SIM_TOUCH", "SIM_VWAP", "SIM_IMPACT", "SIM_LIMIT_QUEUE"} <= set(bundle.routes.routes)
    assert {"immediate", "passive_limit", "twap_5m", "participation_10pct"} <= set(bundle.policies.policies)
    lanes_with_sessions = {definition.lane for _, definition in bundle.sessions.values()}
    assert lanes_with_sessions == {"paper_research", "paper_gatecheck"}


SCHEMAS = {
    "environments": PaperEnvironmentFile,
    "registry": RegistryFile,
    "paper_trading": SessionDefinition,
    "backtests": BacktestEndState,
    "execution_routes.json": RoutesFile,
    "execution_policies.json": PoliciesFile,
}
SHIPPED_FILES = sorted(
    p.relative_to(SHIPPED_CONFIG) for p in SHIPPED_CONFIG.rglob("*") if p.suffix in {".yaml", ".json"}
)


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=str)
def test_each_shipped_file_validates_against_its_own_schema(path):
    schema = SCHEMAS.get(path.parts[0]) or SCHEMAS[path.name]
    text = (SHIPPED_CONFIG / path).read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    schema.model_validate(data)  # raises ValidationError naming the field


def test_every_lane_is_labelled_paper_in_telemetry():
    bundle = load_config_dir(SHIPPED_CONFIG)
    for name, lane in bundle.environment.lanes.items():
        assert lane.telemetry_tags["env"] == "paper"
        assert lane.telemetry_tags["lane"] == name


def test_paper_config_check_command_reports_ok(capsys):
    call_command("paper_config", "check", str(SHIPPED_CONFIG))
    assert "OK: 2 lanes" in capsys.readouterr().out
