"""The registry export is atomic: a writer killed at any moment leaves the
old file or the new one, never a half-written file."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessions_app.registry import registry_entries, registry_export, registry_in_sync, registry_path
from sessions_app.tasks import registry_sync
from tests.conftest import ROOT

WRITER = """
import json, sys
from pathlib import Path
from ifns_paper.atomic import write_atomic
path = Path(sys.argv[1])
i = 0
while True:
    i += 1
    body = {"version": i, "filler": [chr(65 + i % 26) * 100] * 40000}  # ~4 MB
    write_atomic(path, json.dumps(body).encode())
"""


def _kill_at_random(cmd, env, check, *, rounds: int, tmp_path: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    for _ in range(rounds):
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check()


def test_atomic_write_survives_sigkill_at_any_moment(tmp_path):
    target = tmp_path / "registry.json"
    versions_seen = set()

    def check():
        body = json.loads(target.read_text())  # a torn file would not parse
        assert len(body["filler"]) == 40000
        versions_seen.add(body["version"])

    _kill_at_random([sys.executable, "-c", WRITER, str(target)], os.environ.copy(), check, rounds=8,
                    tmp_path=tmp_path)
    assert len(versions_seen) > 1  # the writer really was rewriting while killed
    # Leftover temp files of dead writers are removed by the next write.
    registry_tmp = list(tmp_path.glob(".registry.json.*.tmp"))
    from ifns_paper.atomic import write_atomic

    write_atomic(target, b"{}")
    assert not [p for p in registry_tmp if p.exists()]


@pytest.mark.slow
def test_registry_export_killed_mid_write_leaves_a_valid_registry(tmp_path):
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IFNS_DATA_DIR": str(tmp_path / "data"),
    }
    subprocess.run([sys.executable, "manage.py", "ifns_setup", "--no-demo-user"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    registry = tmp_path / "data" / "registry" / "paper_sessions.json"
    expected_ids = {"gatecheck_fx_momentum_v12", "research_crypto_trend", "research_fx_momentum_v13"}
    loop = ("import django; django.setup()\n"
            "from sessions_app.registry import registry_export\n"
            "while True: registry_export()\n")

    def check():
        document = json.loads(registry.read_text())
        assert {s["session_id"] for s in document["sessions"]} == expected_ids

    _kill_at_random([sys.executable, "-c", loop], env, check, rounds=5, tmp_path=tmp_path)


def test_registry_sync_task_heals_a_drifted_file(loaded):
    assert registry_in_sync()
    assert registry_sync() is False  # nothing to do
    registry_path().write_text('{"sessions": []}')
    assert not registry_in_sync()
    assert registry_sync() is True
    assert registry_in_sync()


def test_registry_entries_carry_env_lane_ids_and_links(loaded):
    registry_export()
    document = json.loads(registry_path().read_text())
    assert document["env"] == "paper"
    entry = next(e for e in document["sessions"] if e["session_id"] == "gatecheck_fx_momentum_v12")
    assert entry == registry_entries()[0]
    assert entry["lane"] == "paper_gatecheck"
    assert entry["strategy_id"] == "strat.momentum_fx" and entry["portfolio_id"] == "pf_gatecheck_fx"
    assert entry["status"] == "scheduled"
    assert entry["scheduled_start"] == "2026-11-24T08:00:00+00:00"
    assert entry["links"]["telemetry"] == "/api/sessions/gatecheck_fx_momentum_v12/events/"
    assert set(entry["links"]) == {"session", "telemetry", "summary", "incidents", "sel_evaluations"}
