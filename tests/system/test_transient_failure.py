"""A database outage is not a session's fault: PostgreSQL terminates the step worker's
connection in the middle of a run; the step fails, is retried after its backoff (never in a
hot loop), no session is faulted, and the final state is what an uninterrupted run makes."""

from __future__ import annotations

import re
import time

import pytest

from tests.system.procs import (
    REPLAY_CHECK,
    feed,
    manage,
    on_postgresql,
    replay_differences,
    shell_json,
    stop,
    system_env,
    worker,
)

SESSIONS = ("research_fx_momentum_v13", "gatecheck_fx_momentum_v12")
STATE = ("import json\nfrom sessions_app.models import PaperSession as P, SessionCheckpoint as C\n"
         "print(json.dumps({'steps': {c.session.session_id: c.steps for c in C.objects.select_related('session')},"
         " 'status': dict(P.objects.values_list('session_id', 'status'))}))")


def _terminate(url: str, application_name: str) -> int:
    """pg_terminate_backend on every connection of ``application_name``; how many there were."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s AND pid <> pg_backend_pid()", [application_name]).fetchall()
    return len(rows)


@pytest.mark.slow
@pytest.mark.skipif(not on_postgresql(), reason="terminates PostgreSQL backends; CI runs it on PostgreSQL")
def test_a_lost_database_connection_is_retried_after_a_backoff_and_loses_nothing(tmp_path):
    hook = tmp_path / "step-hook"
    with system_env(tmp_path, redis_db=15, IFNS_STEP_SHARDS="1", IFNS_TEST_STEP_HOOK_FILE=str(hook)) as env:
        manage(env, "ifns_setup", "--no-demo-user")
        for sid in SESSIONS:
            manage(env, "paper_session", "start", sid)
        log = tmp_path / "worker.log"
        worker_env = env | {"DATABASE_URL": env["DATABASE_URL"] + "?application_name=ifns_test_steps"}
        market = feed(env, "synthetic_fx", log=tmp_path / "feed.log")
        steps = worker(worker_env, "celery,steps.0", log, name="steps0")
        try:
            deadline = time.monotonic() + 60
            while min((state := shell_json(env, STATE))["steps"].get(s, 0) for s in SESSIONS) < 5:
                assert time.monotonic() < deadline, state
                time.sleep(0.5)
            # the outage: the worker's connection is cut while a step holds its transaction open
            # (orders and fills inserted, not committed), then twice more at random points
            hook.write_text("pause 3")
            deadline = time.monotonic() + 30
            while not (tmp_path / "step-hook.paused").exists():
                assert time.monotonic() < deadline, "no step reached the hook"
                time.sleep(0.05)
            killed = _terminate(env["DATABASE_URL"], "ifns_test_steps")
            assert killed >= 1, "the step worker had no connection to cut"
            for _ in range(2):
                time.sleep(1.0)
                _terminate(env["DATABASE_URL"], "ifns_test_steps")
            before = state["steps"]
            deadline = time.monotonic() + 60
            while min((state := shell_json(env, STATE))["steps"].get(s, 0) - before[s] for s in SESSIONS) < 5:
                assert time.monotonic() < deadline, f"no steps after the outage: {state}"
                time.sleep(0.5)
            stop(market)
            time.sleep(3)  # the last queued steps drain
        finally:
            stop(market, steps)
        state = shell_json(env, STATE)
        result = shell_json(env, REPLAY_CHECK % {"sids": list(SESSIONS)})

    text = log.read_text()
    retries = re.findall(r"step of synthetic_fx shard 0 failed, retrying in ([0-9.]+) s: (\w+)", text)
    assert retries, text[-3000:]
    assert {kind for _, kind in retries} <= {"OperationalError", "InterfaceError"}, retries
    # the backoff: 0.5 s, then doubling, per consecutive failure
    assert float(retries[0][0]) == 0.5
    assert "faulted" not in "".join(state["status"].values()) and "left its steps" not in text
    assert {state["status"][sid] for sid in SESSIONS} == {"running"}
    for sid in SESSIONS:
        r = result[sid]
        assert r["gapless"] and r["stored"] > 0, sid
        assert replay_differences(r["stored_events"], r["replayed_events"]) == [], sid
        for symbol, qty in r["replayed_position"].items():
            assert r["position"].get(symbol, 0.0) == pytest.approx(qty, abs=1e-9), (sid, symbol)
