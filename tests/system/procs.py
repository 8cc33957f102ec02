"""Real processes for system tests: a database of their own (PostgreSQL when the run has
``DATABASE_URL=postgres://...``, as CI does, else a SQLite file), a Redis database of their
own, ``manage.py`` commands, Celery step workers and feed processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, redis_url_with_db

PG_PREFIX = ("postgres://", "postgresql://")


def on_postgresql() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(PG_PREFIX)


@contextmanager
def system_env(tmp_path: Path, *, redis_db: int, **extra: str):
    """Environment variables for the processes of one test, with a fresh database and Redis
    database; the PostgreSQL database is dropped afterwards."""
    import redis

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {"IFNS_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url_with_db(redis_db),
            "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local", **extra}
    dropped = None
    if on_postgresql():
        import psycopg

        base = os.environ["DATABASE_URL"]
        name = f"ifns_sys_{uuid.uuid4().hex[:10]}"
        admin = base.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = base.rsplit("/", 1)[0] + f"/{name}"
        dropped = (admin, name)
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'system.sqlite3'}"
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    try:
        yield env
    finally:
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        if dropped:
            import psycopg

            with psycopg.connect(dropped[0], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)')


def manage(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def shell_json(env: dict, code: str):
    """Run ``code`` in ``manage.py shell``; it prints one JSON document as its last line."""
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def worker(env: dict, queues: str, log: Path, *, name: str, concurrency: int | None = None) -> subprocess.Popen:
    """A Celery worker (solo pool unless ``concurrency``) logging at INFO to ``log``."""
    pool = ["--pool", "solo"] if concurrency is None else ["-c", str(concurrency)]
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "ifns_paper.celery", "worker", *pool,
                             "--queues", queues, "--loglevel", "INFO", "--hostname", f"{name}@%h"],
                            cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def feed(env: dict, *feeds: str, log: Path, interval_ms: int = 50) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "paper_feed", *feeds, "--interval-ms", str(interval_ms)],
                            cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(*procs: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# What the steps stored against an uninterrupted replay of exactly what they consumed:
# printed as JSON by ``shell_json(env, REPLAY_CHECK % {"sids": [...]})``.
REPLAY_CHECK = """
import json
from datetime import UTC, datetime, timedelta
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
from ifns_paper import marketbus
from sessions_app.models import PaperSession, SessionCheckpoint
from sessions_app.dispatch import redis_client
from sessions_app.engines import build_engine
from sessions_app.steps import apply_items, start_entry
from telemetry_app.models import TelemetryEvent
from broker_app.models import PaperFill, PaperPosition
out = {}
for sid in %(sids)r:
    session = PaperSession.objects.get(session_id=sid)
    cp = SessionCheckpoint.objects.get(session=session)
    engine = build_engine(session)
    key = marketbus.stream_key(session.feed)
    first, last = start_entry(session), cp.offsets[key]
    n = len(redis_client().xrange(key, first, last))  # only what the steps consumed, clocks included
    read = marketbus.read(redis_client(), key, set(session.symbols), start=first, count=n)
    replayed, _, _ = apply_items(engine, read.batches, 0)
    stored = [[e.event_type, (e.event_time - EPOCH) // timedelta(microseconds=1), e.payload] for e in
              TelemetryEvent.objects.filter(session=session).exclude(event_type="paper_session_state_change")
              .exclude(event_type="incident", payload__kind="session_fault").order_by("sequence")]
    seqs = list(TelemetryEvent.objects.filter(session=session).order_by("sequence").values_list("sequence", flat=True))
    fills = PaperFill.objects.filter(session=session)
    out[sid] = {
        "steps": cp.steps, "stored": len(stored), "replayed": len(replayed),
        "stored_events": stored,
        "replayed_events": [[r.type, r.ts // 1000, r.payload] for r in replayed],
        "gapless": seqs == list(range(1, len(seqs) + 1)),
        "fills": fills.count(), "replayed_fills": engine.ledger.fill_count,
        "position": {p.symbol: p.quantity for p in PaperPosition.objects.filter(session=session)},
        "replayed_position": {s: p.quantity for s, p in engine.ledger.positions.items()},
    }
print(json.dumps(out))
"""


SNAPSHOT_FIELDS = {"cash", "position", "avg_cost"}  # running ledger totals inside fill records


def replay_differences(stored: list, replayed: list) -> list[str]:
    """How stored events (type, event time µs, payload) differ from a replay's: the decisions
    must be the same in the same order; every other record once, floats to 1e-9 relative,
    ledger snapshots inside fill records aside (fills of different symbols within one
    market-data latency may be booked in another order when the stream was cut elsewhere)."""
    import math

    def close(a, b) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
        return a == b

    def key(e) -> tuple:
        p = e[2]
        return (e[0], e[1], *(str(p.get(k)) for k in ("fill_id", "client_order_id", "decision_id", "proposal_id",
                                                       "kind", "scope", "active", "status")))

    problems = []
    decisions = ([e[2] for e in stored if e[0] == "dra_decision"], [e[2] for e in replayed if e[0] == "dra_decision"])
    if len(decisions[0]) != len(decisions[1]) or not all(close(a, b) for a, b in zip(*decisions, strict=False)):
        problems.append(f"decisions differ: {len(decisions[0])} stored, {len(decisions[1])} replayed")
    want = {}
    for e in replayed:
        want.setdefault(key(e), []).append(e)
    for e in stored:
        match = want.get(key(e))
        if not match:
            problems.append(f"stored but not replayed: {e[:2]} {str(e[2])[:200]}")
            continue
        other = match.pop(0)
        strip = lambda p: {k: v for k, v in p.items() if k not in SNAPSHOT_FIELDS}  # noqa: E731
        if not close(strip(e[2]), strip(other[2])):
            problems.append(f"different: {e[:2]} {str(e[2])[:200]} vs {str(other[2])[:200]}")
    problems += [f"replayed but not stored: {e[:2]}" for rest in want.values() for e in rest]
    return problems[:20]
