"""Real-time latency of paper sessions: feed publish → step → fill committed → event pushed.

    python -m bench.realtime_bench [--sessions 20] [--symbols 5] [--rate 20] [--seconds 30]
                                   [--warmup 5] [--sweep 50,100,200,400] [--sweep-seconds 15]
                                   [--no-sweep] [--budget-s 170] [--keep-tmp] [--out bench/results]

Per run, everything is started fresh and isolated from the databases tests use:
Redis logical database 14 (flushed before each run; ``--redis-url`` refuses 0-13), a
temporary SQLite database, ``IFNS_DATA_DIR`` and a temporary copy of ``config/`` with
``--sessions`` files ``paper_trading/session_rt_bench_<n>.yaml`` (the shipped sessions
removed) and ``synthetic_fx.ticks_per_second`` set to the run's rate. Then:

1. ``manage.py shell`` calls ``ifns_setup --no-demo-user`` and ``paper_session start`` for
   every rt_bench session (``call_command``: one process instead of 21);
2. ``celery -A ifns_paper.celery worker -c 2`` (the Procfile's worker, INFO log) starts;
3. this process joins the Channels group ``paper.sessions`` through a ``RedisChannelLayer``
   built from ``settings.CHANNEL_LAYERS`` (hosts = the db-14 URL, same prefix, capacity and
   expiry), then ``manage.py paper_feed synthetic_fx --interval-ms 50`` starts (no beat: the
   feed queues the steps);
4. for ``--warmup`` + ``--seconds`` it receives every pushed event (``time.time_ns()`` on
   receipt) and samples the backlog once a second; then the feed stops, the worker stops
   warm (the steps under way commit and push), and every process started is killed by
   process group, on failure too.

Latency of each ``order_filled`` event received in the measured window (after the warm-up);
bench/README.md says what each part means:

* ``fill_ts_to_push``  = receipt − the fill's ``ts`` (exchange time of the fill = decision
  quote time + the route's market-data + order-insert latency: 5 + 20 ms on SIM_TOUCH).
* ``quote_to_push``    = receipt − the decision quote's time = ``fill_ts_to_push`` + 25 ms.
* ``publish_to_push``  = receipt − publish time (Redis stream entry id, 1 ms resolution) of
  the first entry of the fill's symbol that lets the broker resolve the order's arrival
  (entry ts + market-data latency >= arrival): the system's own latency, bus → Celery step
  → commit → channel layer → a client.
* ``market_wait``/``feed_wait``: that entry's ts − the fill ts; its publish time − its ts.

Backlog: every second, each session's checkpoint offset (SQLite, read-only) against the
stream's newest entry. Lag = publish time of the newest entry − that of the newest entry the
session consumed; the steps fall behind when the lag grows faster than
``BACKLOG_SLOPE_MS_PER_S`` (least-squares slope of the sessions' mean lag over the measured
window; the mean because each session's lag is a saw-tooth of its own step period).

Max sustained rate: after the main run, short runs (``--sweep-seconds``) at the higher rates
of ``--sweep`` until one falls behind (backlog grows or publish_to_push p99 > 1 s), or at
halved rates when the main run already falls behind, then one run at the geometric mean of
the bracket; no run is started that would end after ``--budget-s`` in all.

Writes ``<out>/realtime_<UTC stamp>.json`` and ``<out>/realtime_latest.json`` and prints a
short summary.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import yaml

from bench.broker_bench import code_info, machine_info
from ifns_paper.localredis import RedisUnavailable, ensure

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/14"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FEED = "synthetic_fx"
STREAM = f"ifns:md:{FEED}"
GROUP = "paper.sessions"
TEMPLATE_SESSION = "session_research_fx_momentum.yaml"
INTERVAL_MS = 20  # the feed's publish period (paper_feed --interval-ms)
TARGET_P99_MS = 100.0
FAIL_P99_MS = 1000.0  # the sweep stops when p99 exceeds this
BACKLOG_SLOPE_MS_PER_S = 20.0
SIZING = {  # the shipped research session's sizing, faster: see bench/README.md
    "vol_target": 0.00003,
    "budget_fraction": 0.1,
    "lot_size": 1000,
    "min_interval_s": 3.0,
}
APP_SOURCES = ("sessions_app/steps.py", "sessions_app/dispatch.py", "sessions_app/tasks.py",
               "ifns_paper/marketbus.py", "telemetry_app/sinks.py", "telemetry_app/broadcast.py",
               "sessions_app/management/commands/paper_feed.py")
STEP_LOG = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}): INFO/[^\]]*\] Task "
                      r"sessions_app\.tasks\.shard_step_task\[[^\]]+\] succeeded in ([0-9.eE+-]+)s: (\{.*\})")


class BenchError(RuntimeError):
    pass


# --- processes ---------------------------------------------------------------------------------------


class Processes:
    """Every process this benchmark starts, each in its own process group, all killed on exit."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.running.append((name, proc))
        return proc

    def run(self, name: str, cmd: list[str], env: dict, log: Path, timeout: float) -> None:
        proc = self.start(name, cmd, env, log)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise BenchError(f"{name} did not finish in {timeout:.0f} s (log: {log})") from None
        self.stop(proc)
        if code != 0:
            raise BenchError(f"{name} failed with exit code {code}: {_tail(log)}")

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0, *, leader_only: bool = False) -> None:
        """SIGTERM the process group (or its leader only: a Celery warm shutdown lets the pool
        finish its current tasks), SIGKILL whatever is left in the group after ``timeout``."""
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        if leader_only:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        else:
            _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()
            if proc.returncode is not None and not _group_alive(pgid):
                break
            time.sleep(0.05)
        _killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self.running)):
            self.stop(proc)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


# --- one run: config, setup ---------------------------------------------------------------------------


def check_redis_url(url: str) -> int:
    parsed = urlparse(url)
    try:
        db = int((parsed.path or "/0").lstrip("/") or 0)
    except ValueError:
        raise BenchError(f"--redis-url: cannot read the database number of {url!r}") from None
    if db < 14:
        raise BenchError(f"--redis-url: database {db} is one the tests use (0-13); use 14 or above")
    return db


def write_config(dest: Path, *, sessions: int, symbols: list[str], rate: float) -> list[str]:
    """Copy config/ to ``dest`` with only the rt_bench sessions and the feed at ``rate``."""
    shutil.copytree(ROOT / "config", dest)
    env_file = dest / "environments" / "paper.yaml"
    doc = yaml.safe_load(env_file.read_text())
    doc["environment"]["feeds"][FEED]["ticks_per_second"] = float(rate)
    env_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    template = yaml.safe_load((ROOT / "config" / "paper_trading" / TEMPLATE_SESSION).read_text())
    for path in (dest / "paper_trading").glob("session_*.yaml"):
        path.unlink()
    ids = []
    for n in range(1, sessions + 1):
        sid = f"rt_bench_{n}"
        session = {
            "session_id": sid, "lane": "paper_research", "owner": "bench",
            "objective": "bench/realtime_bench.py: tick-to-fill latency under load",
            "strategy": {"registry_id": "strat.momentum_fx", "version": "1.3.0"},
            "models": template["models"],
            "portfolio_id": f"pf_rt_bench_{n}", "execution_policy": "immediate", "feed": FEED,
            "symbols": symbols, "start": {"at": None, "portfolio": "flat"}, "end": {"duration": "1h"},
            "benchmark": "flat_cash", "tags": ["bench"],
            "sizing": {"vol_target": SIZING["vol_target"], "budget_fraction": SIZING["budget_fraction"],
                       "lot_sizes": {s: SIZING["lot_size"] for s in symbols},
                       "min_interval_s": SIZING["min_interval_s"]},
        }
        (dest / "paper_trading" / f"session_{sid}.yaml").write_text(yaml.safe_dump(session, sort_keys=False))
        ids.append(sid)
    return ids


def route_latency(config_dir: Path) -> dict:
    """Market-data and insert latency (ns) of the route of the ``immediate`` policy."""
    policies = json.loads((config_dir / "policies" / "execution_policies.json").read_text())["policies"]
    route_id = policies["immediate"]["route"]
    route = json.loads((config_dir / "policies" / "execution_routes.json").read_text())["routes"][route_id]
    lat = route["latency"]
    return {"route": route_id, "market_data_ns": int(lat["market_data_ms"] * 1e6),
            "insert_ns": int(lat["order_insert_ms"] * 1e6)}


SETUP_CODE = """
from django.core.management import call_command
call_command("ifns_setup", "--no-demo-user")
for sid in {ids!r}:
    call_command("paper_session", "start", sid, "--reason", "realtime benchmark", "--actor", "bench")
"""


# --- one run: measuring -------------------------------------------------------------------------------


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class BenchDB:
    """The run's database, read-only from here: a temporary SQLite file or a temporary
    PostgreSQL database (created on ``--pg-url``'s server, dropped afterwards)."""

    def __init__(self, kind: str, run_dir: Path, pg_url: str, index: int) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path = run_dir / "bench.sqlite3"
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"ifns_rt_bench_{os.getpid()}_{index}"
            self.admin_url = pg_url
            base = pg_url.rsplit("/", 1)[0]
            self.url = f"{base}/{self.name}"
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}"', f'CREATE DATABASE "{self.name}"')

    def _admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as con:
            for sql in statements:
                con.execute(sql)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` (``?`` placeholders); [] while the tables do not exist yet."""
        if self.kind == "sqlite":
            if not self.path.exists():
                return []
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            try:
                return con.execute(sql, params).fetchall()
            except sqlite3.Error:
                return []
            finally:
                con.close()
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as con:
                return con.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.Error:
            return []

    def drop(self) -> None:
        if self.kind == "postgres":
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def pg_available(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not usable here
        return False


class Sampler:
    """Backlog samples: stream tail, step queues, every session's checkpoint offset."""

    def __init__(self, redis_client, db: BenchDB, queues: list[str]) -> None:
        self.r = redis_client
        self.db = db
        self.queues = queues
        self.samples: list[dict] = []

    def offsets(self) -> dict[str, str]:
        """Where each session's steps stand: the consumed offsets the steps publish after each
        commit (``sessions_app.steps.HEALTH_KEY``; ahead of the checkpoints after quiet steps)."""
        raw = self.r.hgetall("ifns:step:health")
        return {sid.decode(): json.loads(h)["offsets"].get(STREAM) for sid, h in raw.items()}

    def sample(self) -> None:
        t = time.time_ns()
        pipe = self.r.pipeline(transaction=False)
        pipe.xrevrange(STREAM, count=1)
        pipe.xlen(STREAM)
        for q in self.queues:
            pipe.llen(q)
        last, xlen, *lengths = pipe.execute()
        queue = sum(lengths)
        self.samples.append({"t_ns": t, "last_id": last[0][0].decode() if last else None, "xlen": xlen,
                             "queue": queue, "offsets": self.offsets()})


class StreamIndex:
    """The whole stream, read after the run: publish time (entry id) and ts of every entry."""

    def __init__(self, redis_client) -> None:
        keys, syms, kinds, ts = [], [], [], []
        start = "-"
        while True:
            chunk = redis_client.xrange(STREAM, min=start, max="+", count=20_000)
            if not chunk:
                break
            for entry_id, fields in chunk:
                keys.append(_id_key(entry_id.decode()))
                syms.append(fields.get(b"y", b"").decode())  # clocks have no symbol
                kinds.append(fields[b"k"].decode())
                ts.append(int(fields[b"ts"]))
            start = f"({chunk[-1][0].decode()}"
        self.keys = keys
        self.publish_ms = np.array([k[0] for k in keys], dtype=np.int64)
        self.ts = np.array(ts, dtype=np.int64)
        self.kinds = np.array(kinds)
        self.syms = np.array(syms)
        self.by_symbol = {}
        for s in set(syms) - {""}:
            idx = np.flatnonzero(self.syms == s)
            self.by_symbol[s] = (idx, self.ts[idx])
        clock_idx = np.flatnonzero(self.kinds == "c")
        self.clocks = (clock_idx, self.ts[clock_idx])
        self.clock_entries = len(clock_idx)

    def unconsumed(self, offset: str | None) -> int:
        """Entries after ``offset`` (all of them when the session has no checkpoint yet)."""
        if offset is None:
            return len(self.keys)
        return len(self.keys) - bisect.bisect_right(self.keys, _id_key(offset))

    def resolving_entry(self, symbol: str, at_ts: int) -> int | None:
        """Index of the first entry that lets the broker resolve an arrival at venue time
        ``at_ts`` + market-data latency: an entry of ``symbol`` with ts >= ``at_ts``, or a feed
        clock at or past it, whichever the stream has first."""
        first = []
        for idx, ts in (self.by_symbol.get(symbol, (None, None)), self.clocks):
            if idx is None or not len(idx):
                continue
            j = int(np.searchsorted(ts, at_ts, "left"))
            if j < len(idx):
                first.append(int(idx[j]))
        return min(first) if first else None


def stats(values) -> dict:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"count": 0}
    return {"count": int(a.size), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            "min": float(a.min())}


def _slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    return float(np.polyfit(np.asarray(xs), np.asarray(ys, dtype=float), 1)[0])


def proc_cpu_seconds(pids: list[int], *, descendants: bool = True) -> float:
    """utime + stime of processes (and all their descendants), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo, seen = 0.0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
        if descendants:
            todo += children.get(pid, [])
    return total


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    parts = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def parse_steps(logs: list[Path], t0: float, t1: float) -> dict:
    """Celery's 'succeeded in' lines of step tasks whose log time is in [t0, t1] (epoch s)."""
    durations, rows, events, fills, sessions = [], [], [], [], []
    parts: dict[str, list[float]] = {}
    total = 0
    lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
    for line in lines:
        m = STEP_LOG.match(line)
        if not m:
            continue
        total += 1
        when = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        if not t0 <= when <= t1:
            continue
        try:
            res = json.loads(m.group(4).replace("'", '"'))
        except ValueError:
            res = {}
        durations.append(float(m.group(3)) * 1000)
        rows.append(res.get("rows", 0))
        events.append(res.get("events", 0))
        fills.append(res.get("fills", 0))
        sessions.append(res.get("sessions", 0))
        for name, ms in (res.get("ms") or {}).items():
            parts.setdefault(name, []).append(ms)
    n = len(durations)
    span = max(t1 - t0, 1e-9)
    return {"steps_in_window": n, "steps_per_s": n / span, "steps_logged_total": total,
            "duration_ms": stats(durations), "rows_per_step_mean": float(np.mean(rows)) if rows else None,
            "events_per_step_mean": float(np.mean(events)) if events else None,
            "sessions_per_step_mean": float(np.mean(sessions)) if sessions else None,
            "parts_ms": {name: stats(v) for name, v in parts.items()},
            "fills": int(sum(fills)), "worker_busy_fraction": (sum(durations) / 1000) / span}


def db_summary(db: BenchDB, since_ns: int) -> dict:
    """What the run committed; events only from ``since_ns`` (when this process joined the group)."""
    since = dt.datetime.fromtimestamp(since_ns / 1e9, tz=dt.UTC)
    since_param = since.strftime("%Y-%m-%d %H:%M:%S.%f") if db.kind == "sqlite" else since
    events = dict(db.query("SELECT event_type, count(*) FROM telemetry_app_telemetryevent WHERE recorded_at >= ? "
                           "GROUP BY event_type", (since_param,)))
    fills = db.query("SELECT count(*) FROM broker_app_paperfill")[0][0]
    ck = db.query("SELECT steps, length(engine_state) FROM sessions_app_sessioncheckpoint")
    statuses = dict(db.query("SELECT status, count(*) FROM sessions_app_papersession GROUP BY status"))
    return {"events_committed_by_type": events, "events_committed": sum(events.values()),
            "events_committed_since": since.isoformat(), "fills_committed": fills,
            "session_status": statuses,
            "checkpoint_steps": stats([s for s, _ in ck]),
            "engine_state_bytes": stats([b for _, b in ck])}


def run_once(*, tmp_root: Path, index: int, rate: float, sessions: int, symbols: list[str], warmup_s: float,
             seconds: float, redis_url: str, procs: Processes, shards: int, database: str, pg_url: str,
             interval_ms: int, keep_db: bool = False) -> dict:
    import redis
    from channels_redis.core import RedisChannelLayer
    from django.conf import settings

    t_run = time.monotonic()
    run_dir = tmp_root / f"run{index}_rate{rate:g}"
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    config_dir = run_dir / "config"
    db = BenchDB(database, run_dir, pg_url, index)
    ids = write_config(config_dir, sessions=sessions, symbols=symbols, rate=rate)
    lat = route_latency(config_dir)
    env = os.environ.copy()
    env.update({"DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local", "REDIS_URL": redis_url,
                "DATABASE_URL": db.url, "IFNS_DATA_DIR": str(data_dir), "IFNS_STEP_SHARDS": str(shards),
                "IFNS_CONFIG_DIR": str(config_dir), "PYTHONUNBUFFERED": "1",
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # database 14 (checked): ours only
    t_setup = time.monotonic()
    procs.run("setup", [sys.executable, "manage.py", "shell", "-c", SETUP_CODE.format(ids=ids)], env,
              run_dir / "setup.log", timeout=180)
    setup_s = time.monotonic() - t_setup
    # The step workers of `make run`: one solo worker per step queue (ifns_paper/devserver.py).
    worker_logs = [run_dir / f"steps{n}.log" for n in range(shards)]
    workers = [procs.start(f"steps{n}", [str(VENV_BIN / "celery"), "-A", "ifns_paper.celery", "worker", "--pool",
                                         "solo", "--queues", f"steps.{n}", "--loglevel", "INFO", "--hostname",
                                         f"rtbench{index}s{n}@%h", "--without-gossip", "--without-mingle"],
                           env, log) for n, log in enumerate(worker_logs)]
    deadline = time.monotonic() + 90
    for worker, worker_log in zip(workers, worker_logs, strict=True):
        while " ready." not in _tail(worker_log, 100_000):
            if worker.poll() is not None:
                raise BenchError(f"a step worker exited with {worker.returncode}: {_tail(worker_log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"a step worker was not ready in 90 s: {_tail(worker_log)}")
            time.sleep(0.1)
    feed_log = run_dir / "feed.log"
    holder: dict = {}

    def start_feed() -> None:
        holder["feed"] = procs.start("feed", [sys.executable, "manage.py", "paper_feed", FEED, "--interval-ms",
                                              str(interval_ms)], env, feed_log)

    def stop_feed_and_worker() -> None:
        if "feed" in holder:
            procs.stop(holder["feed"])
        for worker in workers:
            procs.stop(worker, 20, leader_only=True)  # warm: the steps under way commit and push

    redis_pid = int(client.info("server").get("process_id", 0))

    def cpu_probe() -> dict:
        pids = {"worker": [w.pid for w in workers], "feed": [holder["feed"].pid] if "feed" in holder else [],
                "redis_server": [redis_pid] if redis_pid else []}
        return {"t": time.monotonic(), "system": system_cpu(),
                "bench": proc_cpu_seconds([os.getpid()], descendants=False),  # its children are the above
                **{k: proc_cpu_seconds(v) for k, v in pids.items()}}

    cfg = settings.CHANNEL_LAYERS["default"]
    assert cfg["BACKEND"] == "channels_redis.core.RedisChannelLayer", cfg["BACKEND"]
    assert cfg["CONFIG"]["hosts"] == [redis_url], cfg["CONFIG"]["hosts"]
    layer = RedisChannelLayer(**cfg["CONFIG"])
    sampler = Sampler(client, db, [f"steps.{n}" for n in range(shards)])

    async def go() -> dict:
        return await _measure(layer, sampler, start_feed, stop_feed_and_worker, warmup_s, seconds, cpu_probe)

    try:
        raw = asyncio.run(go())
        index_ = StreamIndex(client)
    finally:
        procs.stop_all()  # normally already stopped by _measure; on failure, everything now
    feed_alive = "feed" in holder
    result = analyse(raw, sampler, index_, lat=lat, t_measure_ns=raw["t_measure_ns"], t_end_ns=raw["t_end_ns"],
                     symbols=symbols)
    result.update({"rate_ticks_per_s_per_symbol": rate, "sessions": sessions, "symbols": symbols,
                   "warmup_s": warmup_s, "seconds": seconds, "setup_s": setup_s, "route": lat,
                   "feed_started": feed_alive})
    result["steps"] = parse_steps(worker_logs, raw["t_measure_ns"] / 1e9, raw["t_end_ns"] / 1e9)
    result["db"] = db_summary(db, raw["t_subscribed_ns"])
    if not keep_db:
        db.drop()
    result["stream"] = {"clock_entries": index_.clock_entries, "entries": len(index_.keys)}
    rec_total = sum(raw["received"].values())
    result["push"] = {"events_received_by_type": dict(raw["received"]), "events_received": rec_total,
                      "events_committed": result["db"]["events_committed"],
                      "delivery_ratio": rec_total / result["db"]["events_committed"]
                      if result["db"]["events_committed"] else None}
    c0, c1 = raw["cpu_start"], raw["cpu_end"]
    span = max(c1["t"] - c0["t"], 1e-9)
    busy = (c1["system"][0] - c0["system"][0]) / max(c1["system"][1] - c0["system"][1], 1e-9)
    result["cpu"] = {"window_s": span, "system_busy_fraction_all_cpus": busy,
                     **{f"{k}_cores": (c1[k] - c0[k]) / span for k in ("worker", "feed", "redis_server", "bench")}}
    pub = result["latency"]["publish_to_push"]
    result["keeps_up"] = bool(pub["count"] > 0 and not result["backlog"]["grows"] and pub["p99"] <= FAIL_P99_MS)
    result["run_dir"] = str(run_dir)
    result["wall_s"] = time.monotonic() - t_run
    return result


async def _measure(layer, sampler, start_feed, stop_all, warmup_s, seconds, cpu_probe) -> dict:
    channel = await layer.new_channel(prefix="rtbench")
    await layer.group_add(GROUP, channel)
    t_subscribed = time.time_ns()
    received: Counter = Counter()
    fills: list[tuple[int, str, int, str]] = []  # (receipt ns, session, fill ts, symbol)
    last_rx = [time.monotonic()]

    async def rx() -> None:
        while True:
            msg = await layer.receive(channel)
            now = time.time_ns()
            # one group message carries a step's events of one session ("telemetry.batch")
            for event in msg.get("events") or ([msg["event"]] if "event" in msg else []):
                kind = event.get("type", "?")
                received[kind] += 1
                last_rx[0] = time.monotonic()
                if kind == "order_filled":
                    p = event["payload"]
                    rec = event.get("recorded_at")
                    rec_ns = int(dt.datetime.fromisoformat(rec).timestamp() * 1e9) if rec else None
                    fills.append((now, event["session_id"], int(p["ts"]), p["symbol"], rec_ns))

    task = asyncio.create_task(rx())
    try:
        await asyncio.to_thread(start_feed)
        t_start = time.time_ns()
        marks: dict = {"t_start_ns": t_start, "t_subscribed_ns": t_subscribed}
        end = time.monotonic() + warmup_s + seconds
        while time.monotonic() < end:
            if task.done():
                task.result()  # raises what the receiver raised
            tick = time.monotonic()
            await asyncio.to_thread(sampler.sample)
            if "t_measure_ns" not in marks and time.time_ns() - t_start >= warmup_s * 1e9:
                marks["t_measure_ns"] = time.time_ns()
                marks["cpu_start"] = await asyncio.to_thread(cpu_probe)
            await asyncio.sleep(max(0.0, min(1.0 - (time.monotonic() - tick), end - time.monotonic())))
        marks["t_end_ns"] = time.time_ns()
        marks["cpu_end"] = await asyncio.to_thread(cpu_probe)
        if "t_measure_ns" not in marks:
            marks["t_measure_ns"], marks["cpu_start"] = t_start, marks["cpu_end"]
        await asyncio.to_thread(sampler.sample)
        # Stop the feed, then the worker (warm: the steps under way commit and push); the pushes
        # still in flight arrive within the next second. Counted for the delivery ratio, not timed.
        await asyncio.to_thread(stop_all)
        await asyncio.sleep(1.0)
        marks["t_stopped_ns"] = time.time_ns()
    finally:
        task.cancel()
        # redis-py turns the cancelled BZPOPMIN into a TimeoutError: whatever it ends with is moot
        # now (an error during the measurement was raised above by task.result()).
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await layer.group_discard(GROUP, channel)
        with contextlib.suppress(Exception):
            await layer.close_pools()
    return {"received": received, "fills": fills, **marks}


def analyse(raw: dict, sampler: Sampler, index: StreamIndex, *, lat: dict, t_measure_ns: int, t_end_ns: int,
            symbols: list[str]) -> dict:
    md, route_ns = lat["market_data_ns"], lat["market_data_ns"] + lat["insert_ns"]
    fill_lat, quote_lat, pub_lat, market_wait, feed_wait, to_rec, rec_to_push = [], [], [], [], [], [], []
    unresolved = 0
    in_window = [f for f in raw["fills"] if t_measure_ns <= f[0] <= t_end_ns]
    for recv, _sid, ts, symbol, rec_ns in in_window:
        fill_lat.append((recv - ts) / 1e6)
        if rec_ns is not None:
            rec_to_push.append((recv - rec_ns) / 1e6)
        quote_lat.append((recv - ts + route_ns) / 1e6)
        j = index.resolving_entry(symbol, ts - md)
        if j is None:
            unresolved += 1
            continue
        pub_ms = int(index.publish_ms[j])
        pub_lat.append(recv / 1e6 - pub_ms)
        if rec_ns is not None:
            to_rec.append(rec_ns / 1e6 - pub_ms)
        market_wait.append((int(index.ts[j]) - ts) / 1e6)
        feed_wait.append(pub_ms - int(index.ts[j]) / 1e6)
    # The feed: measured tick rate and how long entries waited to be published, in the window.
    lo, hi = t_measure_ns // 1_000_000, t_end_ns // 1_000_000
    sel = (index.publish_ms >= lo) & (index.publish_ms <= hi)
    span_s = max((t_end_ns - t_measure_ns) / 1e9, 1e-9)
    quotes = int(np.count_nonzero(sel & (index.kinds == "q")))
    feed = {"entries_per_s": int(np.count_nonzero(sel)) / span_s,
            "quotes_per_s_per_symbol": quotes / span_s / max(len(symbols), 1),
            "trades_per_s": int(np.count_nonzero(sel & (index.kinds == "t"))) / span_s,
            "publish_minus_ts_ms": stats(index.publish_ms[sel] - index.ts[sel] / 1e6) if sel.any() else {}}
    # Backlog: lag of every session behind the stream's newest entry, per sample.
    rows = []
    for s in sampler.samples:
        if s["last_id"] is None:
            continue
        last_ms = _id_ms(s["last_id"])
        offs = s["offsets"]
        lags = [last_ms - _id_ms(o) for o in offs.values() if o]
        backlog = [index.unconsumed(o) - index.unconsumed(s["last_id"]) for o in offs.values()]
        rows.append({"t_s": (s["t_ns"] - raw["t_start_ns"]) / 1e9, "xlen": s["xlen"], "queue": s["queue"],
                     "sessions_with_checkpoint": sum(1 for o in offs.values() if o),
                     "max_lag_ms": max(lags) if lags else None,
                     "mean_lag_ms": float(np.mean(lags)) if lags else None,
                     "median_lag_ms": float(np.median(lags)) if lags else None,
                     "max_unconsumed_entries": max(backlog) if backlog else None})
    t_meas = (t_measure_ns - raw["t_start_ns"]) / 1e9
    window = [r for r in rows if r["t_s"] >= t_meas and r["max_lag_ms"] is not None]
    xs = [r["t_s"] for r in window]
    lag_slope = _slope(xs, [r["mean_lag_ms"] for r in window])
    max_slope = _slope(xs, [r["max_lag_ms"] for r in window])
    entries_slope = _slope(xs, [r["max_unconsumed_entries"] for r in window])
    grows = lag_slope is None or lag_slope > BACKLOG_SLOPE_MS_PER_S
    backlog = {"samples": rows, "window_samples": len(window), "mean_lag_slope_ms_per_s": lag_slope,
               "max_lag_slope_ms_per_s": max_slope, "max_unconsumed_slope_entries_per_s": entries_slope,
               "mean_lag_ms": stats([r["mean_lag_ms"] for r in window]),
               "max_lag_ms": stats([r["max_lag_ms"] for r in window]),
               "final_max_lag_ms": window[-1]["max_lag_ms"] if window else None,
               "final_max_unconsumed_entries": window[-1]["max_unconsumed_entries"] if window else None,
               "max_queue": max((r["queue"] for r in window), default=None),
               "grows": grows,
               "criterion": f"least-squares slope of the sessions' mean lag > {BACKLOG_SLOPE_MS_PER_S:g} ms/s "
                            "(the mean: each session's lag is a saw-tooth of its own step period)"}
    return {"latency": {"fill_ts_to_push": stats(fill_lat), "quote_to_push": stats(quote_lat),
                        "publish_to_push": stats(pub_lat), "market_wait": stats(market_wait),
                        "feed_wait": stats(feed_wait), "publish_to_recorded": stats(to_rec),
                        "recorded_to_push": stats(rec_to_push), "fills_in_window": len(in_window),
                        "fills_received_total": len(raw["fills"]), "fills_without_resolving_entry": unresolved},
            "feed": feed, "backlog": backlog,
            "window_s": span_s}


# --- the whole benchmark -----------------------------------------------------------------------------


SWEEP_CRITERIA = (f"keeps up: order_filled pushes received, the sessions' mean lag does not grow "
                  f"(slope <= {BACKLOG_SLOPE_MS_PER_S:g} ms/s) and publish_to_push p99 <= {FAIL_P99_MS:g} ms")


def run_sweep(main_run: dict, up: list[float], *, args, common: dict, procs: Processes, t0: float) -> dict:
    """Bracket the highest rate that keeps up (upwards through ``up`` when the main run kept up,
    halving otherwise), then refine the bracket once by its geometric mean — the backlog-only
    bracket when no rate kept up — while ``--budget-s`` lasts."""
    base = main_run["rate_ticks_per_s_per_symbol"]
    tried = {base: main_run}
    runs: list[dict] = []
    note = ""

    def attempt(rate: float) -> bool | None:
        nonlocal note
        walls = [r["wall_s"] for r in runs] or [args.warmup + args.sweep_seconds + 15]
        if time.monotonic() - t0 + max(walls) > args.budget_s:
            note = f"stopped by --budget-s {args.budget_s:g} before {rate:g}"
            return None
        print(f"sweep run: {rate:g} ticks/s/symbol, {args.warmup:g}+{args.sweep_seconds:g} s ...", flush=True)
        try:
            run = run_once(index=len(runs) + 1, rate=rate, seconds=args.sweep_seconds, **common)
        except BenchError as exc:
            procs.stop_all()
            note = f"the run at {rate:g} failed: {exc}"[:2000]
            return None
        runs.append(run)
        tried[rate] = run
        return run["keeps_up"]

    def bracket(ok_of) -> tuple[float | None, float | None]:
        ok = [r for r, run in tried.items() if ok_of(run)]
        bad = [r for r, run in tried.items() if not ok_of(run) and (not ok or r > max(ok))]
        return (max(ok) if ok else None), (min(bad) if bad else None)

    def no_growth(run: dict) -> bool:
        return not run["backlog"]["grows"]

    if main_run["keeps_up"]:
        for rate in (r for r in up if r > base):
            if attempt(rate) is not True:
                break
    else:
        rate = base
        for _ in range(3):
            rate = round(rate / 2, 2)
            if attempt(rate) is not False:
                break
    ok, bad = bracket(lambda run: run["keeps_up"])
    if ok is None:
        ok, bad = bracket(no_growth)
    if not note and ok is not None and bad is not None and bad / ok >= 1.4:
        attempt(round(float(np.sqrt(ok * bad)), 1))
    ok, bad = bracket(lambda run: run["keeps_up"])
    ok_b, bad_b = bracket(no_growth)
    if ok is not None and bad is None and not note:
        note = "no tried rate fell behind: the maximum is above the highest one tried"
    return {"runs": runs, "sweep_seconds": args.sweep_seconds,
            "tried": {f"{r:g}": {"keeps_up": run["keeps_up"], "backlog_grows": run["backlog"]["grows"]}
                      for r, run in sorted(tried.items())},
            "max_sustained_rate": ok, "first_failing_rate": bad,
            "max_rate_without_backlog_growth": ok_b, "first_rate_with_backlog_growth": bad_b,
            "criteria": SWEEP_CRITERIA, "note": note}


def app_code_info() -> dict:
    h = hashlib.sha256()
    for rel in APP_SOURCES:
        p = ROOT / rel
        h.update(rel.encode() + b"\0" + (p.read_bytes() if p.exists() else b""))
    out = {"app_sources": list(APP_SOURCES), "app_sources_sha256": h.hexdigest()}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *APP_SOURCES],
                               capture_output=True, text=True, check=True).stdout.split("\n")
        out["app_uncommitted_changes"] = [ln[3:] for ln in dirty if ln.strip()]
    return out


def _f(v, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _lat_line(name: str, s: dict) -> str:
    if not s.get("count"):
        return f"  {name:<17} no samples"
    return (f"  {name:<17} p50 {s['p50']:7.1f}  p95 {s['p95']:7.1f}  p99 {s['p99']:7.1f}  max {s['max']:7.1f} ms"
            f"  (n={s['count']})")


def summary(report: dict) -> str:
    m = report["main"]
    p = report["params"]
    lat = m["latency"]
    b = m["backlog"]
    st = m["steps"]
    lines = [
        f"IFNS real-time benchmark: {p['sessions']} sessions x {len(p['symbols'])} symbols, "
        f"{p['rate']:g} ticks/s/symbol (measured {m['feed']['quotes_per_s_per_symbol']:.1f}), "
        f"{p['seconds']:g} s after {p['warmup']:g} s warm-up, {p['shards']} solo step workers, "
        f"{p['database'].split(',')[0]}, "
        f"{report['machine']['cpus_usable']} CPUs",
        "  latency of order_filled pushes (receipt in a channel-layer client − ...):",
        _lat_line("fill ts", lat["fill_ts_to_push"]),
        _lat_line("quote ts (+25ms)", lat["quote_to_push"]),
        _lat_line("stream publish", lat["publish_to_push"]),
        _lat_line("  market wait", lat["market_wait"]) + "  [resolving entry ts − fill ts]",
        _lat_line("  feed wait", lat["feed_wait"]) + "  [its publish − its ts]",
        _lat_line("  publish→record", lat["publish_to_recorded"]) + "  [step: event row built]",
        _lat_line("  record→push", lat["recorded_to_push"]) + "  [rest of step, commit, push]",
        f"  target p99 < {TARGET_P99_MS:g} ms (fill ts): "
        f"{'PASS' if report['targets']['p99_pass'] else 'FAIL'}",
        f"  backlog: mean lag slope {_f(b['mean_lag_slope_ms_per_s'])} ms/s (slowest session "
        f"{_f(b['max_lag_slope_ms_per_s'])}), mean lag p50 {_f(b['mean_lag_ms'].get('p50'), '.0f')} ms, slowest "
        f"max {_f(b['max_lag_ms'].get('max'), '.0f')} ms, final {_f(b['final_max_lag_ms'], '.0f')} ms / "
        f"{_f(b['final_max_unconsumed_entries'], '.0f')} entries: {'GROWS (FAIL)' if b['grows'] else 'bounded (PASS)'}",
        "  step parts p50/p99 ms: " + ", ".join(f"{k} {_f(v.get('p50'))}/{_f(v.get('p99'))}"
                                                for k, v in st.get("parts_ms", {}).items()),
        f"  steps: {st['steps_per_s']:.1f}/s, duration p50 {_f(st['duration_ms'].get('p50'))} ms p99 "
        f"{_f(st['duration_ms'].get('p99'))} ms, {_f(st['sessions_per_step_mean'])} sessions and "
        f"{_f(st['rows_per_step_mean'])} rows/step; CPU (cores): step workers "
        f"{m['cpu']['worker_cores']:.2f}, feed {m['cpu']['feed_cores']:.2f}, redis {m['cpu']['redis_server_cores']:.2f}, "
        f"bench {m['cpu']['bench_cores']:.2f}; machine busy {m['cpu']['system_busy_fraction_all_cpus']:.0%}",
        f"  pushes: {m['push']['events_received']:,} events received / {m['push']['events_committed']:,} committed"
        f" ({_f(m['push']['delivery_ratio'], '.3f')}); engine_state mean "
        f"{_f(m['db']['engine_state_bytes'].get('mean'), ',.0f')} bytes",
    ]
    sw = report.get("sweep")
    if sw:
        tried = ", ".join(sw["tried"])
        lines.append("  max sustained rate (no growing backlog and stream-publish p99 <= "
                     f"{FAIL_P99_MS:g} ms): " + (f"{sw['max_sustained_rate']:g} ticks/s/symbol"
                                                  if sw["max_sustained_rate"] is not None else f"none of {tried}")
                     + (f", fails at {sw['first_failing_rate']:g}" if sw["first_failing_rate"] else ""))
        lines.append("  max rate without a growing backlog (latency aside): "
                     + (f"{sw['max_rate_without_backlog_growth']:g}" if sw["max_rate_without_backlog_growth"]
                        is not None else "none tried")
                     + (f", grows at {sw['first_rate_with_backlog_growth']:g}"
                        if sw["first_rate_with_backlog_growth"] else "") + " ticks/s/symbol")
        for r, secs in [(m, p["seconds"]), *((r, sw["sweep_seconds"]) for r in sw["runs"])]:
            rl = r["latency"]
            lines.append(
                f"    {r['rate_ticks_per_s_per_symbol']:>6g} ticks/s ({secs:g} s): publish p99 "
                f"{_f(rl['publish_to_push'].get('p99'), '.0f')} ms, fill ts p50/p99 "
                f"{_f(rl['fill_ts_to_push'].get('p50'), '.0f')}/{_f(rl['fill_ts_to_push'].get('p99'), '.0f')} ms, "
                f"lag slope {_f(r['backlog']['mean_lag_slope_ms_per_s'], '.0f')} ms/s, "
                f"{r['steps']['steps_per_s']:.1f} steps/s  {'ok' if r['keeps_up'] else 'FAIL'}")
        if sw.get("note"):
            lines.append(f"    note: {sw['note']}")
    lines.append(f"  wrote {report['_out']} (and realtime_latest.json) in {report['wall_seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--symbols", type=int, default=5, help="the first N symbols of the synthetic_fx feed")
    p.add_argument("--rate", type=float, default=20.0, help="ticks/s per symbol (feed ticks_per_second)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds, after the warm-up")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--interval-ms", type=int, default=INTERVAL_MS, help="the feed's publish period")
    p.add_argument("--shards", type=int, default=2, help="step queues, one solo worker each (IFNS_STEP_SHARDS)")
    p.add_argument("--database", choices=("auto", "postgres", "sqlite"), default="auto",
                   help="auto: PostgreSQL when --pg-url answers, else SQLite")
    p.add_argument("--pg-url", default=PG_URL, help="a PostgreSQL server to create the run's databases on")
    p.add_argument("--sweep", default="50,100,200,400", help="rates tried after the main run (ascending)")
    p.add_argument("--sweep-seconds", type=float, default=15.0)
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--budget-s", type=float, default=170.0,
                   help="no sweep run is started that would end after this many seconds in all")
    p.add_argument("--redis-url", default=REDIS_URL)
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temporary directory (logs, SQLite) and PostgreSQL databases")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    check_redis_url(args.redis_url)
    database = args.database
    if database == "auto":
        database = "postgres" if pg_available(args.pg_url) else "sqlite"
    elif database == "postgres" and not pg_available(args.pg_url):
        raise BenchError(f"--database postgres: nothing answers at {args.pg_url}")

    config = yaml.safe_load((ROOT / "config" / "environments" / "paper.yaml").read_text())
    feed_symbols = config["environment"]["feeds"][FEED]["symbols"]
    if not 1 <= args.symbols <= len(feed_symbols):
        p.error(f"--symbols: 1..{len(feed_symbols)}")
    symbols = feed_symbols[: args.symbols]

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)  # runs the cleanup below

    signal.signal(signal.SIGTERM, on_term)
    tmp_root = Path(tempfile.mkdtemp(prefix="ifns_rt_bench_"))
    try:  # like `make run`: a local Redis when none answers (stopped at the end)
        local_redis = ensure(args.redis_url, workdir=tmp_root / "redis")
    except RedisUnavailable as exc:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise BenchError(str(exc)) from None
    # This process reads settings.CHANNEL_LAYERS with the same environment as the processes it starts.
    os.environ.update({"DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local", "REDIS_URL": args.redis_url,
                       "DATABASE_URL": f"sqlite:///{tmp_root / 'unused.sqlite3'}",
                       "IFNS_DATA_DIR": str(tmp_root / "data"), "IFNS_CONFIG_DIR": str(tmp_root / "config")})
    procs = Processes()
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    common = {"tmp_root": tmp_root, "sessions": args.sessions, "symbols": symbols, "warmup_s": args.warmup,
              "redis_url": args.redis_url, "procs": procs, "shards": args.shards, "database": database,
              "pg_url": args.pg_url, "interval_ms": args.interval_ms, "keep_db": args.keep_tmp}
    sweep: dict | None = None
    try:
        print(f"main run: {args.rate:g} ticks/s/symbol, {args.warmup:g}+{args.seconds:g} s ...", flush=True)
        main_run = run_once(index=0, rate=args.rate, seconds=args.seconds, **common)
        if not args.no_sweep:
            up = sorted(float(x) for x in args.sweep.split(",") if x.strip())
            sweep = run_sweep(main_run, up, args=args, common=common, procs=procs, t0=t0)
    finally:
        procs.stop_all()
        if not args.keep_tmp:
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(args.redis_url).flushdb()  # database >= 14 (checked): ours
        if local_redis is not None:
            local_redis.stop()
        if not args.keep_tmp:
            shutil.rmtree(tmp_root, ignore_errors=True)
    machine = machine_info()
    machine["loadavg"] = list(os.getloadavg())
    fl = main_run["latency"]["fill_ts_to_push"]
    report = {
        "benchmark": "realtime",
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine,
        "code": {**code_info(), **app_code_info()},
        "params": {"sessions": args.sessions, "symbols": symbols, "rate": args.rate, "seconds": args.seconds,
                   "warmup": args.warmup, "shards": args.shards, "feed_interval_ms": args.interval_ms,
                   "sizing": SIZING, "execution_policy": "immediate", "strategy": "strat.momentum_fx 1.3.0",
                   "redis_url": args.redis_url,
                   "database": "temporary SQLite (WAL), one per run" if database == "sqlite" else
                   "temporary PostgreSQL database, one per run"},
        "method": {
            "receipt": "time.time_ns() when this process's RedisChannelLayer.receive() returns the message "
                       "of the paper.sessions group",
            "fill_ts_to_push": "receipt - payload.ts of order_filled (= decision quote ts + market-data + "
                               "insert latency of the route)",
            "quote_to_push": "fill_ts_to_push + the route's market-data + insert latency",
            "publish_to_push": "receipt - Redis entry-id time of the first stream entry of the fill's symbol "
                               "with ts >= fill ts - market-data latency (the entry that lets the broker "
                               "resolve the arrival); 1 ms resolution",
            "backlog": "per second: newest stream entry id vs each session's consumed offset (published by the steps "
                       "after each commit)",
        },
        "main": main_run,
        "sweep": sweep,
        "targets": {"p99_ms": TARGET_P99_MS, "p99_pass": bool(fl.get("count") and fl["p99"] < TARGET_P99_MS),
                    "backlog_pass": not main_run["backlog"]["grows"]},
        "wall_seconds": time.monotonic() - t0,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    report["_out"] = str(out / f"realtime_{stamp}.json")
    text = json.dumps(report, indent=2) + "\n"
    for name in (f"realtime_{stamp}.json", "realtime_latest.json"):
        (out / name).write_text(text)
    print(summary(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
