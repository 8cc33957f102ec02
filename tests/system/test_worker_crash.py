"""Real Celery worker processes, a real feed process, real Redis: SIGKILL the worker in
the middle of a session, restart it, and check nothing was lost or duplicated by
comparing the database with an uninterrupted replay of the same stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, redis_url_with_db

SID = "research_fx_momentum_v13"

CHECK = """
import json, pickle
from ifns_paper import marketbus
from sessions_app.models import PaperSession, SessionCheckpoint
from sessions_app.dispatch import redis_client
from sessions_app.engines import build_engine
from sessions_app.steps import apply_items, start_entry
from telemetry_app.models import TelemetryEvent
from broker_app.models import PaperFill, PaperPosition
session = PaperSession.objects.get(session_id="%(sid)s")
cp = SessionCheckpoint.objects.get(session=session)
engine = build_engine(session)
key = marketbus.stream_key(session.feed)
first, last = start_entry(session), cp.offsets[key]
n = len(redis_client().xrange(key, first, last))  # only what the steps consumed, clocks included
read = marketbus.read(redis_client(), key, set(session.symbols), start=first, count=n)
replayed, _, _ = apply_items(engine, read.batches, 0)
stored = list(TelemetryEvent.objects.filter(session=session).exclude(event_type="paper_session_state_change")
              .order_by("sequence").values_list("event_type", "payload"))
fills = PaperFill.objects.filter(session=session)
print(json.dumps({
    "steps": cp.steps, "stored": len(stored), "replayed": len(replayed),
    "same": stored == [(r.type, r.payload) for r in replayed],
    "fills": fills.count(), "unique_fills": fills.values("fill_id").distinct().count(),
    "position": {p.symbol: p.quantity for p in PaperPosition.objects.filter(session=session)},
    "replayed_position": {s: p.quantity for s, p in engine.ledger.positions.items()},
}))
"""


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    return env | {"DATABASE_URL": f"sqlite:///{tmp_path / 'crash.sqlite3'}", "IFNS_DATA_DIR": str(tmp_path / "data"),
                  "REDIS_URL": redis_url_with_db(13), "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local"}


def _manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def _worker(env):
    # Both step queues and the default one in one prefork worker: engines move between its two
    # processes, which the steps must survive too (the cache is checked against the checkpoint).
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "ifns_paper.celery", "worker", "-c", "2",
                             "--queues", "celery,steps.0,steps.1",
                             "--loglevel", "WARNING", "--hostname", "crash@%h"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _steps(env) -> int:
    out = _manage(env, "shell", "-c", "from sessions_app.models import SessionCheckpoint as C;"
                  f"c=C.objects.filter(session__session_id='{SID}').first(); print(c.steps if c else 0)")
    return int(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkill_of_the_worker_loses_and_duplicates_nothing(tmp_path):
    import redis

    env = _env(tmp_path)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    _manage(env, "ifns_setup", "--no-demo-user")
    _manage(env, "paper_session", "start", SID)
    feed = subprocess.Popen([sys.executable, "manage.py", "paper_feed", "synthetic_fx", "--interval-ms", "50"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    worker = _worker(env)
    try:
        deadline = time.monotonic() + 60
        while _steps(env) < 5:
            assert time.monotonic() < deadline, "the worker made no steps"
            time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool processes, mid-session
        worker.wait()
        killed_at = _steps(env)
        time.sleep(2)  # the feed goes on publishing while no worker runs
        worker = _worker(env)
        deadline = time.monotonic() + 60
        while _steps(env) < killed_at + 5:
            assert time.monotonic() < deadline, "the restarted worker made no steps"
            time.sleep(0.5)
        os.killpg(feed.pid, signal.SIGTERM)
        feed.wait(10)
        time.sleep(3)  # the last queued steps drain
    finally:
        for proc in (feed, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result = json.loads(_manage(env, "shell", "-c", CHECK % {"sid": SID}).strip().splitlines()[-1])
    assert result["steps"] >= killed_at + 5
    assert result["stored"] > 0 and result["same"], result
    assert result["fills"] == result["unique_fills"] > 0
    for symbol, qty in result["replayed_position"].items():
        assert result["position"].get(symbol, 0.0) == pytest.approx(qty)
