"""The lane ``cooldown`` section and the session ``end.abort_on_kill_switch`` flag, from the files
to the engine setup a replay runs (the database path is in tests/sessions)."""

from __future__ import annotations

import shutil
from decimal import Decimal

from ifns_paper.config import load_config_dir
from ifns_paper.config.schema import CooldownRules
from ifns_paper.engine.controls import CooldownPolicy
from ifns_paper.session_setup import cooldown_policy, setup_from_bundle
from tests.conftest import SHIPPED_CONFIG

S = 1_000_000_000


def _without_cooldown_section(tmp_path, lane: str):
    """A copy of the shipped config in which ``lane`` has no ``cooldown`` section."""
    root = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, root)
    path = root / "environments" / "paper.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = lines.index(f"  {lane}:\n")
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("    cooldown:"))
    end = next(i for i in range(at + 1, len(lines)) if not lines[i].startswith("      "))
    path.write_text("".join(lines[:at] + lines[end:]))
    return load_config_dir(root)


def test_shipped_lanes_set_their_cooldown_and_replays_use_it(bundle):
    lanes = bundle.environment.lanes
    assert lanes["paper_research"].cooldown == CooldownRules(
        max_breaches=5, window_s=60, duration_s=300, max_loss=Decimal("10000.00"))
    assert lanes["paper_gatecheck"].cooldown == CooldownRules(
        max_breaches=3, window_s=60, duration_s=600, max_loss=Decimal("2000.00"))

    assert setup_from_bundle(bundle, "research_fx_momentum_v13").cooldown == CooldownPolicy(
        max_breaches=5, max_loss=10_000.0, window_ns=60 * S, duration_ns=300 * S)
    assert setup_from_bundle(bundle, "gatecheck_fx_momentum_v12").cooldown == CooldownPolicy(
        max_breaches=3, max_loss=2_000.0, window_ns=60 * S, duration_ns=600 * S)


def test_a_lane_without_a_cooldown_section_gets_the_documented_defaults(tmp_path):
    bundle = _without_cooldown_section(tmp_path, "paper_research")

    lane = bundle.environment.lanes["paper_research"]
    assert lane.cooldown == CooldownRules()
    assert (lane.cooldown.max_breaches, lane.cooldown.window_s, lane.cooldown.duration_s,
            lane.cooldown.max_loss) == (3, 60, 300, None)
    # the promotion rule's breach count (5) is not the cooldown's any more; no loss rule
    assert lane.promotion.max_breaches == 5
    assert setup_from_bundle(bundle, "research_fx_momentum_v13").cooldown == CooldownPolicy(
        max_breaches=3, max_loss=float("inf"), window_ns=60 * S, duration_ns=300 * S)
    # the other lane keeps its own section
    assert bundle.environment.lanes["paper_gatecheck"].cooldown.duration_s == 600


def test_cooldown_policy_mapping():
    assert cooldown_policy(None) == CooldownPolicy()
    assert cooldown_policy({"max_breaches": 2, "window_s": 5, "duration_s": 7, "max_loss": "12.50"}) == \
        CooldownPolicy(max_breaches=2, max_loss=12.5, window_ns=5 * S, duration_ns=7 * S)
    assert cooldown_policy({"max_breaches": 2, "window_s": 5, "duration_s": 7, "max_loss": None}).max_loss == \
        float("inf")


def test_abort_on_kill_switch_is_off_unless_a_session_sets_it(bundle):
    flags = {sid: definition.end.abort_on_kill_switch for sid, (_, definition) in bundle.sessions.items()}
    assert flags == {"gatecheck_fx_momentum_v12": True, "research_fx_momentum_v13": False,
                     "research_crypto_trend": False}
