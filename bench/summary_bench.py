"""Session summary benchmark (issue 9): how long a full summary takes on a big session, and
what refreshing many live sessions every minute costs.

    python -m bench.summary_bench [--events 1000000] [--fills 100000] [--runs 3]
                                  [--sessions 100] [--database-url postgres://postgres@127.0.0.1:5432/postgres]

PostgreSQL only (the production database); a fresh database ``ifns_bench_summary`` is created
on the given server and dropped at the end. Rows are loaded with COPY:

* **big**: one session with ``--fills`` orders, each filled once, and ``--events`` telemetry
  events (a decision, an order and a fill per order; the rest MSI proposals), an equity
  series of one week at one point a minute plus its last hour at one a second (13,680
  points), and a checkpoint. Timed: ``summary_compute`` (reads, metrics, no write), each run
  in a fresh process whose peak RSS (``VmHWM``) is read at the end; the median of ``--runs``.
  Baseline, same run: a one-shot pandas computation of the fill-level figures (P&L of the
  fills, fees, slippage mean/p50/p90/p99) from one ``read_sql`` of the fills table: the
  least any summary costs. ``ratio`` = summary seconds / baseline seconds.
* **refresh**: ``--sessions`` running sessions with an hour each (3,600 series points, 1,000
  fills, 10,000 events), refreshed by ``summaries_refresh_running`` in one long-lived
  process as beat does: the first refresh reads everything; then, ``--minutes`` times, every
  session gets one more minute of rows at the same rate (60 series points, 16 fills, 166
  events) and a checkpoint one minute on, and is refreshed again (reading only the new
  rows). Timed: the CPU seconds (``time.process_time``, this process: the application's
  share; PostgreSQL's own work is not in it) and wall seconds of each refresh; the target
  (< 2 s CPU a minute) is on the median of the minute refreshes.

Writes ``bench/results/summary_<UTC stamp>.json`` and ``summary_latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "ifns_bench_summary"
NS = 1_000_000_000
T0 = 1_764_000_000 * NS  # 2025-11-24T16:00:00Z, a whole minute


def _copy(conn, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    buf.seek(0)
    with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        copy.write(buf.read())


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


def populate(url: str, session_pk: int, session_id: str, *, fills: int, events: int, week: bool, t0: int,
             span_s: int = 3_600, first: int = 0) -> None:
    """One session's rows from ``t0`` on: orders + fills (numbered from ``first``), events,
    series, its last event sequence; a week (``week``) or ``span_s`` seconds."""
    import psycopg

    span = 7 * 86_400 if week else span_s
    step = span * NS // max(fills, 1)
    with psycopg.connect(url, autocommit=False) as conn:
        base = conn.execute('SELECT COALESCE(MAX(id), 0) FROM "broker_app_paperorder"').fetchone()[0]
        orders, fill_rows, ev = [], [], []
        seq = conn.execute('SELECT last_event_seq FROM "sessions_app_papersession" WHERE id = %s',
                           [session_pk]).fetchone()[0]
        proposals_per_order = max(0, (events - 3 * fills) // max(fills, 1))
        for i in range(fills):
            ts = t0 + i * step
            side = "buy" if i % 2 == 0 else "sell"
            mid = 1.1 + 0.0001 * ((i * 7919) % 200 - 100) / 100
            price = mid + (0.00001 if side == "buy" else -0.00001)
            coid, did = f"{session_id}-d{first + i}-1", f"{session_id}-d{first + i}"
            oid = base + i + 1
            orders.append((oid, session_pk, coid, did, "EURUSD", side, 10_000.0, "market", "IOC", None, None,
                           "SIM_TOUCH", "immediate", "filled", 10_000.0, price, "", _iso(ts), _iso(ts), _iso(ts)))
            fill_rows.append((session_pk, oid, f"{coid}-1", "EURUSD", side, 10_000.0, price, mid, 0.9, 0.55,
                              "taker", "SIM_TOUCH", _iso(ts + 25_000_000), _iso(ts)))
            for _ in range(proposals_per_order):
                seq += 1
                ev.append((session_pk, "paper", "paper_research", "msi_proposal", seq, _iso(ts), _iso(ts),
                           json.dumps({"proposal_id": f"p{seq}", "symbol": "EURUSD", "signal": 0.1, "mid": mid})))
            seq += 1
            ev.append((session_pk, "paper", "paper_research", "dra_decision", seq, _iso(ts), _iso(ts), json.dumps(
                {"decision_id": did, "symbol": "EURUSD", "side": side, "requested_quantity": 10000.0,
                 "approved_quantity": 10000.0, "verdict": "ALLOW", "reasons": [], "mid": mid})))
            seq += 1
            ev.append((session_pk, "paper", "paper_research", "order_submitted", seq, _iso(ts), _iso(ts),
                       json.dumps({"client_order_id": coid, "decision_id": did})))
            seq += 1
            ev.append((session_pk, "paper", "paper_research", "order_filled", seq, _iso(ts + 25_000_000),
                       _iso(ts), json.dumps({"fill_id": f"{coid}-1", "client_order_id": coid})))
        _copy(conn, "broker_app_paperorder",
              ["id", "session_id", "client_order_id", "decision_id", "symbol", "side", "quantity", "order_type",
               "time_in_force", "limit_price", "stop_price", "route_id", "policy_id", "status", "filled_quantity",
               "average_price", "reason", "submitted_at", "created_at", "updated_at"], orders)
        _copy(conn, "broker_app_paperfill",
              ["session_id", "order_id", "fill_id", "symbol", "side", "quantity", "price", "arrival_mid",
               "slippage_bps", "fee", "liquidity", "route_id", "event_time", "created_at"], fill_rows)
        _copy(conn, "telemetry_app_telemetryevent",
              ["session_id", "env", "lane", "event_type", "sequence", "event_time", "recorded_at", "payload"], ev)
        end = t0 + span * NS
        points = list(range(t0, end - 3_600 * NS, 60 * NS)) + list(range(end - 3_600 * NS, end, NS)) if week \
            else list(range(t0, end, NS))
        _copy(conn, "telemetry_app_equitysample",
              ["session_id", "ts_ns", "equity", "cash", "realized", "unrealized", "fees", "gross", "net", "drawdown",
               "positions", "marks"],
              ((session_pk, t, 1e6 + (k % 97) - 48, 1e6, 0.0, 0.0, 0.0, 11_000.0, 11_000.0, 0.0001,
                json.dumps({"EURUSD": 10000.0}), json.dumps({"EURUSD": 1.1})) for k, t in enumerate(points)))
        conn.execute('UPDATE "sessions_app_papersession" SET last_event_seq = %s WHERE id = %s', [seq, session_pk])
        conn.commit()


CHILD = """
import json, os, resource, statistics, sys, time
import django
django.setup()
from sessions_app.services.summaries import summary_compute
t = time.perf_counter()
s = summary_compute(session_id=sys.argv[1], final=False)
elapsed = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(json.dumps({"seconds": elapsed, "peak_rss_mib": hwm / 1024, "fills": s["fills"]["count"],
                  "trades": s["trades"]["trades"], "pnl": s["pnl"]["total"]}))
"""

BASELINE = """
import json, sys, time
import numpy as np, pandas as pd, psycopg
t = time.perf_counter()
with psycopg.connect(sys.argv[1]) as conn:
    cur = conn.execute('SELECT side, quantity, price, fee, slippage_bps FROM broker_app_paperfill '
                       'WHERE session_id = %s', [int(sys.argv[2])])
    f = pd.DataFrame(cur.fetchall(), columns=["side", "quantity", "price", "fee", "slippage_bps"])
sign = np.where(f.side == "buy", -1.0, 1.0)
cash_flow = float((sign * f.quantity * f.price).sum() - f.fee.sum())
s = f.slippage_bps.to_numpy()
out = {"cash_flow": cash_flow, "fees": float(f.fee.sum()), "mean": float(s.mean()),
       "p": [float(np.percentile(s, q)) for q in (50, 90, 99)]}
print(json.dumps({"seconds": time.perf_counter() - t, "fills": len(f)}))
"""

REFRESH = """
import json, sys, time
import django
django.setup()
from bench.summary_bench import add_minute
from sessions_app.services.summaries import summaries_refresh_running
url, sessions, minutes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = []
for minute in range(minutes + 1):  # the first refresh reads everything; then one minute of new rows each
    if minute:
        add_minute(url, sessions, minute)
    cpu, wall = time.process_time(), time.perf_counter()
    n = summaries_refresh_running()
    runs.append({"written": n, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall})
print(json.dumps(runs))
"""

LIVE_FILLS, LIVE_EVENTS = 1_000, 10_000  # per live session and hour


def add_minute(url: str, sessions: int, minute: int) -> None:
    """One more minute of the live sessions: their rows at the hour's rate, and a checkpoint
    one minute on (what the steps write while a session runs)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pks = dict(conn.execute('SELECT session_id, id FROM "sessions_app_papersession" '
                                "WHERE session_id LIKE 'bench_live_%%'").fetchall())
    for n in range(sessions):
        sid = f"bench_live_{n}"
        populate(url, pks[sid], sid, fills=LIVE_FILLS // 60, events=LIVE_EVENTS // 60, week=False,
                 t0=T0 + n * NS + (3_600 + 60 * (minute - 1)) * NS, span_s=60,
                 first=LIVE_FILLS + (minute - 1) * (LIVE_FILLS // 60))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('UPDATE "sessions_app_sessioncheckpoint" SET data_ts = data_ts + %s WHERE session_id IN '
                     "(SELECT id FROM \"sessions_app_papersession\" WHERE session_id LIKE 'bench_live_%%')",
                     [60 * NS])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=3, help="steady-state refreshes after the first")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the database (for profiling)")
    args = parser.parse_args(argv)

    import psycopg

    admin = args.database_url
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        print(f"summary benchmark skipped: no PostgreSQL at {admin} ({str(exc).strip().splitlines()[0]}); "
              "give --database-url or BENCH_PG_URL")
        return 0
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    url = admin.rsplit("/", 1)[0] + f"/{DB}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local",
           "IFNS_DATA_DIR": "/tmp/ifns_bench_summary", "PYTHONPATH": str(ROOT)}
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "IFNS_DATA_DIR")})
    started = dt.datetime.now(dt.UTC)
    try:
        import django

        sys.path.insert(0, str(ROOT))
        django.setup()
        from django.core.management import call_command

        from sessions_app.checkpoints import engine_dump
        from sessions_app.engines import build_engine
        from sessions_app.models import PaperSession, SessionCheckpoint
        from sessions_app.services import session_transition

        call_command("migrate", verbosity=0)
        call_command("paper_config", "load", stdout=io.StringIO())
        template = PaperSession.objects.get(session_id="research_fx_momentum_v13")

        def clone(sid: str) -> PaperSession:
            s = PaperSession.objects.get(pk=template.pk)
            links = list(s.model_links.all())
            s.pk, s.session_id = None, sid
            s._state.adding = True
            s.save()
            for link in links:
                link.pk, link.session = None, s
                link._state.adding = True
                link.save()
            session_transition(session_id=sid, action="start", actor="bench")
            s.refresh_from_db()
            engine = build_engine(s)
            SessionCheckpoint.objects.create(session=s, engine_state=engine_dump(engine), steps=1,
                                             data_ts=T0 + 7 * 86_400 * NS, cash=1e6, equity=1e6)
            return s

        t = time.perf_counter()
        big = clone("bench_big")
        populate(url, big.pk, big.session_id, fills=args.fills, events=args.events, week=True, t0=T0)
        load_s = time.perf_counter() - t
        runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, big.session_id], env=env, cwd=ROOT,
                                          capture_output=True, text=True, check=True).stdout.splitlines()[-1])
                for _ in range(args.runs)]
        base = [json.loads(subprocess.run([sys.executable, "-c", BASELINE, url, str(big.pk)], env=env, cwd=ROOT,
                                          capture_output=True, text=True, check=True).stdout.splitlines()[-1])
                for _ in range(args.runs)]
        PaperSession.objects.filter(pk=big.pk).update(status="completed")  # not among the refreshed ones

        for n in range(args.sessions):
            s = clone(f"bench_live_{n}")
            populate(url, s.pk, s.session_id, fills=LIVE_FILLS, events=LIVE_EVENTS, week=False, t0=T0 + n * NS)
        refresh = json.loads(subprocess.run(
            [sys.executable, "-c", REFRESH, url, str(args.sessions), str(args.minutes)], env=env, cwd=ROOT,
            capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')

    median = statistics.median(r["seconds"] for r in runs)
    steady = statistics.median(r["cpu_s"] for r in refresh[1:]) if len(refresh) > 1 else refresh[0]["cpu_s"]
    base_median = statistics.median(b["seconds"] for b in base)
    result = {
        "benchmark": "session_summary", "started_utc": started.isoformat(timespec="seconds"),
        "database": "postgresql",
        "big": {"events": args.events, "fills": args.fills, "series_points": 7 * 1440 - 60 + 3600,
                "load_seconds_not_timed": load_s, "runs": runs, "median_seconds": median,
                "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs),
                "target": {"seconds": 5.0, "rss_mib": 1024.0,
                           "pass": median < 5.0 and max(r["peak_rss_mib"] for r in runs) < 1024.0}},
        "baseline": {"what": "one read_sql of the fills + pandas/numpy P&L, fees and slippage percentiles",
                     "runs": base, "median_seconds": base_median},
        "ratio_summary_over_baseline": median / base_median if base_median else None,
        "refresh": {"sessions": args.sessions,
                    "per_session": {"series_points": 3600, "fills": LIVE_FILLS, "events": LIVE_EVENTS,
                                    "per_minute": {"fills": LIVE_FILLS // 60, "events": LIVE_EVENTS // 60,
                                                   "series_points": 60}},
                    "first": refresh[0], "minutes": refresh[1:], "cpu_s_per_minute": steady,
                    "target": {"cpu_s_per_minute": 2.0, "pass": steady < 2.0}},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"summary_{stamp}.json", "summary_latest.json"):
        (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"IFNS session summary: {args.events:,} events, {args.fills:,} fills on PostgreSQL")
    run_text = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    print(f"  full summary: median {median:.2f} s (runs {run_text}), "
          f"peak RSS {result['big']['peak_rss_mib_max']:.0f} MiB; target < 5 s and < 1 GiB: "
          f"{'PASS' if result['big']['target']['pass'] else 'FAIL'}")
    print(f"  baseline (read_sql of the fills + pandas): {base_median:.2f} s; summary/baseline = "
          f"{result['ratio_summary_over_baseline']:.1f}")
    minute_runs = ", ".join(f"{r['cpu_s']:.2f}" for r in refresh[1:])
    print(f"  refresh of {args.sessions} live sessions (an hour each): first {refresh[0]['cpu_s']:.2f} s CPU "
          f"(reads everything), then each minute: median {steady:.2f} s CPU "
          f"(runs {minute_runs}); "
          f"target < 2 s CPU a minute: {'PASS' if result['refresh']['target']['pass'] else 'FAIL'}")
    print(f"  wrote {args.out / ('summary_' + stamp + '.json')} (and summary_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
