"""`make run` smoke test: the supervised group starts, serves `/`, answers a
Celery ping, and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, redis_url_with_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_make_run_serves_the_overview_and_a_celery_worker(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "IFNS_DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url_with_db(11),  # the test Redis, a database of its own
    }
    # What `make run` runs once the virtualenv is in place.
    proc = subprocess.Popen([sys.executable, "-m", "ifns_paper.devserver"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        body = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"make run exited early:\n{proc.stdout.read()}"
            try:
                status, body = _get(f"http://127.0.0.1:{port}/")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("`/` did not answer 200 within 90 s")
        assert "PAPER" in body
        assert "paper_research" in body and "paper_gatecheck" in body
        assert "research_fx_momentum_v13" in body and "gatecheck_fx_momentum_v12" in body

        ping = None
        while time.monotonic() < deadline:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "ifns_paper.celery", "inspect", "ping", "--timeout", "2"],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )
            if ping.returncode == 0 and "pong" in ping.stdout:
                break
            time.sleep(1)
        assert ping is not None and "pong" in ping.stdout, ping.stdout + ping.stderr

        # The demo sessions trade on paper within a minute: fills show up in the telemetry API.
        filled = []
        trade_deadline = time.monotonic() + 60
        while time.monotonic() < trade_deadline and not filled:
            _, body = _get(f"http://127.0.0.1:{port}/api/sessions/research_fx_momentum_v13/events/"
                           "?type=order_filled")
            filled = json.loads(body)["events"]
            time.sleep(1)
        assert filled, "no paper fill within a minute of start"
        assert filled[0]["env"] == "paper" and filled[0]["payload"]["quantity"] > 0

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = proc.communicate(timeout=60)
        assert "open http://127.0.0.1:" in output
        for name in ("web.1", "worker.1", "beat.1", "feed.1", "steps0.1", "steps1.1"):
            assert f"{name} stopped" in output, output[-2000:]
        assert not _port_open(port), "web server still listening after Ctrl-C"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
