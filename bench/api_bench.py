"""API latency and throughput over loopback HTTP (issue 11), on PostgreSQL.

    python -m bench.api_bench [--events 1000000] [--sessions 200] [--requests 300] [--clients 20]
                              [--load-seconds 15] [--runs 3] [--database-url postgres://...]
                              [--keep-db] [--out bench/results]

Setup (fresh each time, apart from the databases tests use): PostgreSQL database
``ifns_bench`` (dropped and created; ``--database-url`` for another), Redis logical database
15, a temporary ``IFNS_DATA_DIR``. ``ifns_setup`` loads the shipped configuration and the
role groups; ``--sessions`` sessions in all are registered (clones of
``research_fx_momentum_v13``); one of them gets ``--events`` telemetry events, written with
PostgreSQL's COPY. A viewer's API token signs the requests. Then uvicorn serves the app
(one process, as ``make run`` does).

Measured, ``--runs`` times each, medians reported:

- **latency**, one client, ``--requests`` sequential requests on one keep-alive connection:
  the first page of the events (``after=0&limit=100``), a page deep in the table
  (``after=<events - 1000>&limit=100``: keyset, should cost the same), the session list
  (all ``--sessions``), and the baseline in the same run: the API root (no database read);
  p50 and p99 in ms, and each p50 over the baseline's.
- **throughput**, ``--clients`` concurrent clients (threads, keep-alive connections) for
  ``--load-seconds`` on the deep events page: requests per second and p99. (An equivalent of
  locust's headless mode with a fixed user count; no extra dependency.)

Targets: events p99 < 50 ms for the first and the deep page; session list p99 < 100 ms.
Writes ``<out>/api_<UTC stamp>.json`` and ``api_latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "research_fx_momentum_v13"
BUSY = "bench_events_000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _manage(env: dict, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         input=stdin)
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


SEED = r'''
import io, json
from datetime import datetime, timedelta, timezone
from django.db import connection
from sessions_app.models import PaperSession
from tests.conftest import clone_sessions

n_sessions, n_events, busy = {n_sessions}, {n_events}, "{busy}"
clone_sessions(n_sessions - PaperSession.objects.count() - 1, template="{template}")
src = PaperSession.objects.get(session_id="{template}")
src.pk, src.session_id = None, busy
src.save()
session = PaperSession.objects.select_related("lane").get(session_id=busy)
lane, pk = session.lane.name, session.pk  # read now: no query may run on the connection during the COPY
start = datetime(2026, 11, 1, tzinfo=timezone.utc)
with connection.cursor() as cur:
    with cur.copy("COPY telemetry_app_telemetryevent (env, lane, session_id, event_type, sequence, event_time, "
                  "recorded_at, payload) FROM STDIN") as copy:
        for i in range(1, n_events + 1):
            at = (start + timedelta(milliseconds=i)).isoformat()
            payload = json.dumps({{"symbol": "EURUSD", "quantity": 1000.0, "price": 1.08 + (i % 100) * 1e-5,
                                  "fill_id": f"f{{i}}"}})
            copy.write_row(("paper", lane, pk, "order_filled", i, at, at, payload))
PaperSession.objects.filter(pk=session.pk).update(last_event_seq=n_events)
print(PaperSession.objects.count(), "sessions;", n_events, "events")
'''


class Client:
    """One keep-alive connection; ``token`` signs with an API token, ``headers`` add others
    (a session cookie: bench.pages_bench); neither: anonymous."""

    def __init__(self, port: int, token: str | None = None, *, headers: dict | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Accept": "application/json"} if token else {}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.headers |= headers or {}

    def get(self, path: str) -> float:
        t = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - t
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return elapsed


def latency(port: int, token: str | None, path: str, n: int, *, headers: dict | None = None) -> dict:
    client = Client(port, token, headers=headers)
    for _ in range(5):  # warm the connection and the server's caches
        client.get(path)
    times = [client.get(path) * 1000 for _ in range(n)]
    return {"p50_ms": _pct(times, 0.5), "p99_ms": _pct(times, 0.99), "n": n}


def load(port: int, token: str, path: str, clients: int, seconds: float) -> dict:
    times: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker():
        client, mine = Client(port, token), []
        while time.perf_counter() < stop:
            mine.append(client.get(path) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"requests_per_s": len(times) / wall, "p50_ms": _pct(times, 0.5), "p99_ms": _pct(times, 0.99),
            "requests": len(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/ifns_bench")
    parser.add_argument("--keep-db", action="store_true", help="reuse a seeded ifns_bench (skip the seeding)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="api-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {"DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local", "DATABASE_URL": args.database_url,
            "REDIS_URL": "redis://127.0.0.1:6379/15", "IFNS_DATA_DIR": str(tmp / "data"), "DEBUG": "0",
            "IFNS_API_WRITE_RATE": "100000/min", "SECRET_KEY": "bench-only-not-secret",
            "IFNS_DB_POOL_MAX": "8"}  # as the Procfile's web server
    db = args.database_url.rsplit("/", 1)[-1]
    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    probe = subprocess.run(["psql", admin_url, "-q", "-c", "select 1"], capture_output=True, text=True) \
        if shutil.which("psql") else None
    if probe is None or probe.returncode != 0:
        print(f"IFNS API bench skipped: no PostgreSQL at {admin_url} (psql: "
              f"{'missing' if probe is None else probe.stderr.strip()[:200]})")
        return 0
    if not args.keep_db:
        t = time.perf_counter()
        subprocess.run(["psql", admin_url, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", "-c",
                        f"CREATE DATABASE {db}"], check=True, capture_output=True)
        _manage(env, "ifns_setup", "--no-demo-user")
        print(_manage(env, "shell", stdin=SEED.format(n_sessions=args.sessions, n_events=args.events, busy=BUSY,
                                                      template=TEMPLATE)).strip(),
              f"(seeded in {time.perf_counter() - t:.0f} s)")
    _manage(env, "shell", stdin="from django.contrib.auth.models import User\n"
                                "User.objects.filter(username='bench').delete()\n"
                                "from sessions_app.services.roles import user_roles_set\n"
                                "User.objects.create_user('bench')\n"
                                "user_roles_set(username='bench', roles=['viewer'])\n")
    token = _manage(env, "paper_token", "create", "bench", "--name", "api bench").splitlines()[1]
    port = _free_port()
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "ifns_paper.asgi:application", "--host", "127.0.0.1",
                               "--port", str(port), "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                Client(port, token).get("/api/v1/")
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise RuntimeError((tmp / "server.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        paths = {
            "baseline_api_root": "/api/v1/",
            "events_first_page": f"/api/v1/sessions/{BUSY}/events/?after=0&limit=100",
            "events_deep_page": f"/api/v1/sessions/{BUSY}/events/?after={max(0, args.events - 1000)}&limit=100",
            "session_list": "/api/v1/sessions/",
        }
        runs = []
        for i in range(args.runs):
            run = {name: latency(port, token, path, args.requests) for name, path in paths.items()}
            run["load_events_deep_page"] = load(port, token, paths["events_deep_page"], args.clients,
                                                args.load_seconds)
            runs.append(run)
            print(f"run {i + 1}: " + ", ".join(f"{k} p50 {v['p50_ms']:.1f} ms p99 {v['p99_ms']:.1f} ms"
                                               for k, v in run.items() if "p99_ms" in v and k != "load_events_deep_page")
                  + f"; {run['load_events_deep_page']['requests_per_s']:.0f} req/s at {args.clients} clients")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        log.close()
    med = {name: {k: statistics.median(r[name][k] for r in runs) for k in runs[0][name] if k != "n"}
           for name in runs[0]}
    base = med["baseline_api_root"]["p50_ms"]
    report = {
        "benchmark": "api", "started_utc": started.isoformat(timespec="seconds"),
        "workload": {"events": args.events, "sessions": args.sessions, "requests_per_measure": args.requests,
                     "clients": args.clients, "load_seconds": args.load_seconds, "runs": args.runs,
                     "database": "postgresql", "server": "uvicorn, 1 process"},
        "runs": runs, "medians": med,
        "ratio_p50_over_baseline": {k: v["p50_ms"] / base for k, v in med.items() if "p50_ms" in v and base},
        "targets": {"events_p99_ms": 50, "session_list_p99_ms": 100,
                    "pass": med["events_first_page"]["p99_ms"] < 50 and med["events_deep_page"]["p99_ms"] < 50
                    and med["session_list"]["p99_ms"] < 100},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"api_{stamp}.json", "api_latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"IFNS API ({args.events:,} events, {args.sessions} sessions, PostgreSQL, uvicorn), medians of {args.runs}:")
    for name, v in med.items():
        if name == "load_events_deep_page":
            print(f"  {args.clients} clients on the deep events page: {v['requests_per_s']:.0f} req/s, "
                  f"p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms")
        else:
            print(f"  {name}: p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms"
                  f" ({v['p50_ms'] / base:.1f}x the root)")
    print(f"  targets (events p99 < 50 ms, session list p99 < 100 ms): {'PASS' if report['targets']['pass'] else 'FAIL'}")
    print(f"  wrote {args.out / ('api_' + stamp + '.json')} (and api_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
