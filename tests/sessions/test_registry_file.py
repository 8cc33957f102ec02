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


# The child runs one real ``registry_export`` with every way of writing a file (``open``,
# ``io.open`` - which ``os.fdopen`` and ``Path.write_bytes`` use - and ``os.write``) wrapped:
# the first write of more than one byte to a file in the registry folder (not the lock) writes
# only its first CUT bytes, makes them durable, tells the parent which file it was writing
# (a marker, itself written atomically) and waits to be killed. So the kill lands mid-write,
# whether the writer goes through a temp file or rewrites the registry in place.
PAUSING_EXPORT = """
import builtins, io, json, os, sys, time
from pathlib import Path

import django

django.setup()
from sessions_app.registry import registry_export, registry_path

FOLDER = registry_path().parent.resolve()
MARKER = Path(sys.argv[1])
CUT = sys.argv[2]  # "first" (1 byte), "half" or "last" (all but the last byte)
real_open, real_write = io.open, os.write


def target(fd):
    try:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None
    return path if path.parent == FOLDER and not path.name.endswith(".lock") else None


def pause_midway(fd, data, write):
    n = {"first": 1, "half": len(data) // 2, "last": len(data) - 1}[CUT]
    write(data[:n])
    os.fsync(fd)
    note = MARKER.with_suffix(".tmp")
    note.write_text(json.dumps({"path": str(target(fd)), "written": n, "total": len(data)}))
    os.replace(note, MARKER)
    time.sleep(600)  # killed here
    sys.exit("not killed")


class Pausing:
    def __init__(self, handle):
        self._handle = handle

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def write(self, data):
        fd = self._handle.fileno()
        if len(data) > 1 and target(fd) is not None:
            def write_flushed(part):
                self._handle.write(part)
                self._handle.flush()
            pause_midway(fd, data, write_flushed)
        return self._handle.write(data)


def pausing_open(*args, **kwargs):
    return Pausing(real_open(*args, **kwargs))


def pausing_write(fd, data):
    if len(data) > 1 and target(fd) is not None:
        pause_midway(fd, data, lambda part: real_write(fd, part))
    return real_write(fd, data)


io.open = builtins.open = pausing_open
os.write = pausing_write
registry_export()
sys.exit("the export finished without writing to the registry folder")
"""


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory):
    """A database set up with the shipped configuration (its registry file exported) for subprocesses."""
    root = tmp_path_factory.mktemp("registry_kill")
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.test",
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "IFNS_DATA_DIR": str(root / "data"),
    }
    subprocess.run([sys.executable, "manage.py", "ifns_setup", "--no-demo-user"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    return env, root / "data" / "registry" / "paper_sessions.json"


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["first", "half", "last"])
def test_registry_export_killed_mid_write_leaves_a_valid_registry(registry_db, tmp_path, cut):
    # given a registry file written by a completed export
    env, registry = registry_db
    old = registry.read_bytes()
    expected_ids = {"gatecheck_fx_momentum_v12", "research_crypto_trend", "research_fx_momentum_v13"}
    assert {s["session_id"] for s in json.loads(old)["sessions"]} == expected_ids

    # when an export has written part of its document (`cut`) and is killed right there
    marker = tmp_path / "writing.json"
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_EXPORT, str(marker), cut], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = json.loads(marker.read_text()) if marker.exists() else None
        partial = Path(started["path"]) if started else None
        size_at_kill = partial.stat().st_size if partial and partial.exists() else None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)

    # then the writer had really started writing: part of the document was on disk when it died
    assert started is not None, f"the export never wrote (exit {proc.returncode}): {stderr.decode()}"
    assert proc.returncode == -signal.SIGKILL
    assert stderr.decode().strip() == "" and stdout == b"", stderr.decode()  # no traceback, no complaint
    assert 0 < started["written"] < started["total"] and size_at_kill == started["written"]

    # and the registry file is the complete old document or a complete new one, never a torn one
    now = registry.read_bytes()
    document = json.loads(now)
    assert {s["session_id"] for s in document["sessions"]} == expected_ids
    assert now == old or len(now) == started["total"]
    # the part written went to a temp file next to it (left by the dead writer), not to the registry
    assert partial != registry and partial.parent == registry.parent


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
    assert entry["links"]["telemetry"] == "/api/v1/sessions/gatecheck_fx_momentum_v12/events/"
    assert entry["links"] == {
        "session": "/sessions/gatecheck_fx_momentum_v12/",
        "telemetry": "/api/v1/sessions/gatecheck_fx_momentum_v12/events/",
        "summary": "/api/v1/sessions/gatecheck_fx_momentum_v12/summary/",
        "incidents": "/api/v1/sessions/gatecheck_fx_momentum_v12/incidents/",
        "comparison": "/api/v1/sessions/gatecheck_fx_momentum_v12/comparison/",
        "sel_evaluations": "/api/v1/sessions/gatecheck_fx_momentum_v12/sel/",
        "series": "/api/v1/sessions/gatecheck_fx_momentum_v12/series/",
    }


def test_every_registry_link_answers(loaded, client):
    """No dead link in the registry: each answers 200 (the summary once one is written)."""
    registry_export()
    entry = next(e for e in json.loads(registry_path().read_text())["sessions"]
                 if e["session_id"] == "research_fx_momentum_v13")
    for name, link in entry["links"].items():
        response = client.get(link)
        if name == "summary":  # nothing to summarise before the session ran
            assert response.status_code == 404 and "no summary" in response.json()["error"]["message"]
        elif name == "comparison":  # nothing to compare with before a shadow backtest
            assert response.status_code == 404 and "no shadow backtest yet" in response.json()["error"]["message"]
        else:
            assert response.status_code == 200, (name, link)
