"""Real Celery worker processes, real feed processes, real Redis (and PostgreSQL in CI): kill
the step worker in the middle of a step — deterministically, after the step inserted its orders
and fills and before it wrote events and checkpoints — and with SIGKILL at a random point,
restart it, and check nothing was lost or duplicated: for sessions on three execution policies
(immediate, twap_5m, passive_limit), what the database holds is what an uninterrupted replay of
the consumed stream makes, positions included."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.system.procs import (
    REPLAY_CHECK,
    feed,
    manage,
    replay_differences,
    shell_json,
    stop,
    system_env,
    worker,
)

SESSIONS = ("research_fx_momentum_v13", "gatecheck_fx_momentum_v12", "research_crypto_trend")
STEPS = ("import json\nfrom sessions_app.models import SessionCheckpoint as C\n"
         "print(json.dumps({c.session.session_id: c.steps for c in C.objects.select_related('session')}))")


def _wait_steps(env, at_least: dict, proc, log, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        steps = shell_json(env, STEPS)
        if all(steps.get(sid, 0) >= n for sid, n in at_least.items()):
            return steps
        assert time.monotonic() < deadline, f"no progress: {steps} (wanted {at_least})"
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.mark.slow
def test_a_worker_killed_mid_step_loses_and_duplicates_nothing(tmp_path):
    die = tmp_path / "die-now"
    with system_env(tmp_path, redis_db=13, IFNS_TEST_STEP_HOOK_FILE=str(die)) as env:
        manage(env, "ifns_setup", "--no-demo-user")
        for sid in SESSIONS:
            manage(env, "paper_session", "start", sid)
        log = tmp_path / "worker.log"
        queues = "celery,steps.0,steps.1"
        market = feed(env, "synthetic_fx", "synthetic_crypto", log=tmp_path / "feed.log")
        steps = worker(env, queues, log, name="crash")
        try:
            seen = _wait_steps(env, dict.fromkeys(SESSIONS, 3), steps, log)

            # 1. the worker dies inside a step, after its first inserts, before its commit
            die.write_text("die")
            deadline = time.monotonic() + 60
            while steps.poll() is None:
                assert time.monotonic() < deadline, "the worker never reached the hook"
                time.sleep(0.2)
            assert steps.returncode == -signal.SIGKILL and not die.exists()
            time.sleep(2)  # the feeds go on publishing while no worker runs
            steps = worker(env, queues, log, name="crash")
            seen = _wait_steps(env, {sid: n + 3 for sid, n in seen.items()}, steps, log)

            # 2. and once more at a random point, with SIGKILL from outside
            os.killpg(steps.pid, signal.SIGKILL)
            steps.wait()
            time.sleep(2)
            steps = worker(env, queues, log, name="crash")
            _wait_steps(env, {sid: n + 3 for sid, n in seen.items()}, steps, log)
            stop(market)
            time.sleep(3)  # the last queued steps drain
        finally:
            stop(market, steps)
        result = shell_json(env, REPLAY_CHECK % {"sids": list(SESSIONS)})

    for sid in SESSIONS:
        r = result[sid]
        assert r["gapless"] and r["stored"] > 0, sid
        assert replay_differences(r["stored_events"], r["replayed_events"]) == [], sid
        assert r["fills"] == r["replayed_fills"], sid
        for symbol, qty in r["replayed_position"].items():
            assert r["position"].get(symbol, 0.0) == pytest.approx(qty, abs=1e-9), (sid, symbol)
    assert sum(result[sid]["fills"] for sid in SESSIONS) > 0
