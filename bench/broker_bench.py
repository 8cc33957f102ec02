"""Quotes per second through the Paper Broker and its Ledger, on the standard workload.

    python -m bench.broker_bench [--quotes N] [--runs 3] [--peers] [--out bench/results]

Per run (median of ``--runs``): the workload (bench/workload.py) is streamed
in chunks; for each chunk the orders falling in it are scheduled on a
``ReplayDriver`` and the chunk is fed to it (PaperBroker + Ledger, the driver's
defaults: ledger invariant checked after every fill, fill records kept for the
hash). Only ``driver.schedule``/``driver.feed``/``driver.finish`` are timed,
not the data generation. In the same run a minimal pure-Python loop goes
over the same quotes (as Python lists; the numpy-to-list conversion is not
timed) and books the same fills in plain floats: the ratio engine/baseline
says what the engine's generality costs over the least any Python loop does.

Memory is measured separately (tracemalloc slows everything down), each size
in a fresh subprocess: tracemalloc peak and what is still held at the end,
for 200k and 1M quotes, plus the peak of the input stream alone and the
process's peak RSS (VmHWM) in an untraced subprocess.

``--peers`` runs the same workload through NautilusTrader and backtrader
(bench/peers.py) in a subprocess with the interpreter that has them
(``bench/.venv-peers/bin/python`` when present, made by ``make bench PEERS=1``).

Writes ``<out>/broker_<UTC timestamp>.json`` and ``<out>/broker_latest.json``
and prints a short summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.workload import Workload, expected_pnl
from ifns_paper.engine.broker import PaperBroker
from ifns_paper.engine.ledger import Ledger
from ifns_paper.engine.replay import ReplayDriver

ROOT = Path(__file__).resolve().parent.parent
TARGET_QPS = 3_000_000  # issue 13: "stays >= 3,000,000 quotes/s on the standard workload"
# The quiet machine the target was set on: the same-run pure-Python baseline measured there
# (bench/results at commit cfc93cc, 2026-11-24). The machine is shared and its speed varies
# (the baseline has measured 6-29M quotes/s on it): the target is also checked on the engine's
# ratio to the baseline, scaled to that machine (ratio x this baseline).
REFERENCE_BASELINE_QPS = 28_971_655
STARTING_CASH = 1_000_000.0
PEERS_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
PEERS_TIMEOUT_S = 420


# --- the engine --------------------------------------------------------------------------------------


def engine_setup(w: Workload) -> tuple[PaperBroker, Ledger, ReplayDriver]:
    broker = PaperBroker(w.routes())
    ledger = Ledger(STARTING_CASH)
    return broker, ledger, ReplayDriver(broker, ledger)


def engine_result(w: Workload, ledger: Ledger, driver: ReplayDriver) -> dict:
    pos = ledger.position(w.symbol)
    return {
        "quotes": driver.stats.quotes,
        "orders": driver.stats.orders,
        "fills": driver.stats.fills,
        "realized_pnl_before_fees": ledger.realized,
        "fees": ledger.fees,
        "final_position": pos.quantity,
        "fills_hash": driver.stats.fills_hash,
    }


# --- the pure-Python baseline -----------------------------------------------------------------------


class Baseline:
    """The least a Python loop over the quotes can do for this workload: keep the last
    quote; on every 100th, fill the market order at the ask (buy) or bid (sell) and book
    it with average-cost accounting (position, cash, realized P&L) in plain floats."""

    def __init__(self, w: Workload) -> None:
        self.every, self.qty = w.order_every, w.order_qty
        self.left = w.order_offset + 1  # quotes until the next order
        self.k = 0
        self.position = self.avg = self.realized = 0.0
        self.cash = STARTING_CASH
        self.fills = 0
        self.last = None

    def run(self, ts: list, bid: list, ask: list, bid_size: list, ask_size: list) -> None:
        every, qty = self.every, self.qty
        left, k, pos, avg, cash, realized, fills = (self.left, self.k, self.position, self.avg, self.cash,
                                                    self.realized, self.fills)
        last = self.last
        for q in zip(ts, bid, ask, bid_size, ask_size, strict=True):
            last = q
            left -= 1
            if left:
                continue
            left = every
            if k % 2 == 0:
                sign, price = 1.0, q[2]
            else:
                sign, price = -1.0, q[1]
            k += 1
            fills += 1
            cash -= sign * qty * price
            if pos == 0.0 or (pos > 0.0) == (sign > 0.0):
                new = pos + sign * qty
                avg = (abs(pos) * avg + qty * price) / abs(new)
                pos = new
            else:
                closed = min(qty, abs(pos))
                realized += closed * (price - avg) * (1.0 if pos > 0.0 else -1.0)
                if qty > closed:
                    pos, avg = sign * (qty - closed), price
                else:
                    pos += sign * qty
                    if pos == 0.0:
                        avg = 0.0
        self.left, self.k, self.position, self.avg, self.cash, self.realized, self.fills = (
            left, k, pos, avg, cash, realized, fills)
        self.last = last


# --- one timed run ------------------------------------------------------------------------------------


def timed_run(w: Workload) -> dict:
    broker, ledger, driver = engine_setup(w)
    base = Baseline(w)
    engine_s = baseline_s = 0.0
    perf = time.perf_counter
    for start, batch in w.chunks():
        orders = w.orders_for(start, start + len(batch))  # building the orders is data, not timed
        t0 = perf()
        driver.schedule(orders)
        driver.feed(batch)
        engine_s += perf() - t0
        cols = (batch.ts.tolist(), batch.bid.tolist(), batch.ask.tolist(), batch.bid_size.tolist(),
                batch.ask_size.tolist())
        t0 = perf()
        base.run(*cols)
        baseline_s += perf() - t0
        del cols
    t0 = perf()
    driver.finish()
    engine_s += perf() - t0
    out = engine_result(w, ledger, driver)
    out.update({
        "engine_seconds": engine_s,
        "engine_quotes_per_s": w.n_quotes / engine_s,
        "baseline_seconds": baseline_s,
        "baseline_quotes_per_s": w.n_quotes / baseline_s,
        "baseline_fills": base.fills,
        "baseline_realized_pnl": base.realized,
    })
    return out


# --- memory (in a subprocess) -----------------------------------------------------------------------


def memory_probe(n_quotes: int, mode: str) -> dict:
    """One engine pass over ``n_quotes``; run in a fresh interpreter."""
    import resource
    import tracemalloc

    w = Workload(n_quotes=n_quotes)
    out: dict = {"n_quotes": n_quotes, "mode": mode}
    if mode == "tracemalloc":
        tracemalloc.start()
        for _start, _batch in w.chunks():
            pass
        out["input_stream_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start(1)
        before = tracemalloc.get_traced_memory()[0]
    broker, ledger, driver = engine_setup(w)
    for start, batch in w.chunks():
        driver.schedule(w.orders_for(start, start + len(batch)))
        driver.feed(batch)
    driver.finish()
    if mode == "tracemalloc":
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["peak_bytes"] = peak - before
        out["retained_bytes"] = current - before
        top = snapshot.filter_traces([tracemalloc.Filter(True, str(ROOT / "*"))]).statistics("lineno")[:8]
        out["retained_top"] = [
            {"where": f"{Path(s.traceback[0].filename).relative_to(ROOT)}:{s.traceback[0].lineno}",
             "bytes": s.size, "blocks": s.count} for s in top]
    else:
        out["peak_rss_bytes"] = _peak_rss_bytes(resource)
    out["fills"] = driver.stats.fills
    del broker, ledger, driver
    return out


def _peak_rss_bytes(resource) -> int:
    """This process's peak RSS. Linux's ru_maxrss carries over the parent's peak across
    fork+exec (a probe started by a 100 MB parent would read 100 MB), so read VmHWM, the
    high-water mark of this process's own address space, where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_probe(n_quotes: int, mode: str) -> dict:
    cmd = [sys.executable, "-m", "bench.broker_bench", "--memory-probe", str(n_quotes), "--probe-mode", mode]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        return {"n_quotes": n_quotes, "mode": mode, "error": done.stderr.strip()[-2000:]}
    return json.loads(done.stdout)


def measure_memory(sizes: list[int]) -> dict:
    traced = {n: run_probe(n, "tracemalloc") for n in sizes}
    rss = {n: run_probe(n, "rss") for n in sizes}
    rows = []
    for n in sizes:
        t, r = traced[n], rss[n]
        rows.append({
            "n_quotes": n,
            "engine_peak_bytes": t.get("peak_bytes"),
            "engine_retained_bytes": t.get("retained_bytes"),
            "input_stream_peak_bytes": t.get("input_stream_peak_bytes"),
            "peak_rss_bytes": r.get("peak_rss_bytes"),
            "fills": t.get("fills"),
            "retained_top": t.get("retained_top"),
            **({"error": t.get("error") or r.get("error")} if ("error" in t or "error" in r) else {}),
        })
    out: dict = {"method": "tracemalloc (peak and held at the end of one engine pass, fresh subprocess per size; "
                           "input_stream = iterating the chunks alone) and the peak RSS (VmHWM) of an untraced subprocess",
                 "sizes": rows}
    ok = [r for r in rows if r.get("engine_peak_bytes") is not None]
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        extra_orders = (b["fills"] or 0) - (a["fills"] or 0)
        out["peak_growth_bytes"] = b["engine_peak_bytes"] - a["engine_peak_bytes"]
        out["input_stream_growth_bytes"] = b["input_stream_peak_bytes"] - a["input_stream_peak_bytes"]
        if extra_orders:
            out["retained_bytes_per_order"] = (b["engine_retained_bytes"] - a["engine_retained_bytes"]) / extra_orders
    return out


# --- peers --------------------------------------------------------------------------------------------


def run_peers(n_quotes: int, backtrader_quotes: int, runs: int, backtrader_runs: int, python: str | None) -> dict:
    return run_peers_module(["--quotes", str(n_quotes), "--backtrader-quotes", str(backtrader_quotes),
                             "--runs", str(runs), "--backtrader-runs", str(backtrader_runs)], python)


def run_peers_module(args: list[str], python: str | None) -> dict:
    """``python -m bench.peers ARGS`` in the peers' interpreter (bench/.venv-peers when it exists);
    its last JSON line, or ``_error`` with what went wrong."""
    exe = python or (str(PEERS_PYTHON) if PEERS_PYTHON.exists() else sys.executable)
    cmd = [exe, "-m", "bench.peers", *args]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=PEERS_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"_interpreter": exe, "_error": f"peers did not finish in {PEERS_TIMEOUT_S} s"}
    except OSError as exc:
        return {"_interpreter": exe, "_error": str(exc)}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"_interpreter": exe, "_error": (done.stderr or done.stdout).strip()[-2000:]}
    out = json.loads(lines[-1])
    out["_interpreter"] = exe
    return out


def compare_peers(peers: dict, ours_qps: float, ours_pnl: float, n_quotes: int) -> dict:
    for name, res in peers.items():
        if name.startswith("_") or res.get("status") != "ok":
            continue
        res["ours_over_theirs"] = ours_qps / res["median_quotes_per_s"]
        if res["n_quotes"] != n_quotes:
            res["note"] = (f"quotes/s measured on the first {res['n_quotes']:,} quotes of the same workload "
                           f"(ours on {n_quotes:,}); the ratio compares rates, both engines' cost per quote "
                           "being flat in N")
        if name == "nautilus_trader":
            theirs = res["realized_pnl_balance"]
            res["pnl_check"] = {
                "ours_realized_before_fees": ours_pnl, "theirs_realized_before_fees": theirs,
                "difference": theirs - ours_pnl, "commissions": res.get("commissions"),
                "equal": abs(theirs - ours_pnl) < 0.005,
                "how": "same quotes; both fill a market order at the touch of the quote it was sent on",
            }
        elif name == "backtrader":
            expected = expected_pnl(Workload(n_quotes=res["n_quotes"]))["mid_marked"]
            theirs = res["pnl_at_mid_marked"]
            res["pnl_check"] = {
                "theirs_value_change": theirs, "expected_at_mid": expected, "difference": theirs - expected,
                "equal": abs(theirs - expected) < 0.005,
                "how": ("bars carry no bid/ask: fills at the close (= mid) of the bar sent on (cheat-on-close), "
                        "checked against the same orders filled at the mid and marked at the last mid; not "
                        "comparable to our touch P&L"),
            }
    return peers


# --- report -------------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "cpus_usable": affinity,
            "python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "numpy": np.__version__}


def code_info() -> dict:
    engine = sorted((ROOT / "ifns_paper" / "engine").glob("*.py"))
    h = hashlib.sha256()
    for p in engine:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    out = {"engine_sources_sha256": h.hexdigest()}
    try:
        git = ["git", "-C", str(ROOT)]
        out["git_commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                           check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "ifns_paper/engine"], capture_output=True,
                               text=True, check=True).stdout.split("\n")
        out["engine_uncommitted_changes"] = [ln[3:] for ln in dirty if ln.strip()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def _mib(b: float | None) -> str:
    return "n/a" if b is None else f"{round(b / 2**20, 1) + 0.0:.1f} MiB"


def summary(report: dict) -> str:
    w, e = report["workload"], report["engine"]
    runs = ", ".join(f"{r['engine_quotes_per_s']:,.0f}" for r in report["runs"])
    b_runs = ", ".join(f"{r['baseline_quotes_per_s']:,.0f}" for r in report["runs"])
    lines = [
        f"IFNS broker benchmark: {w['n_quotes']:,} quotes, {w['n_orders']:,} market orders of {w['order_qty']:,.0f} "
        f"(touch, zero latency, zero fees), median of {len(report['runs'])} runs",
        f"  engine  PaperBroker+Ledger via ReplayDriver: {e['median_quotes_per_s']:,.0f} quotes/s   (runs: {runs})",
        f"  target  >= {TARGET_QPS:,} quotes/s: {'PASS' if report['target']['pass'] else 'FAIL'} on this machine; "
        f"at the reference machine's speed (ratio x its baseline {REFERENCE_BASELINE_QPS:,}): "
        f"{report['target']['scaled_quotes_per_s']:,.0f} quotes/s, "
        f"{'PASS' if report['target']['scaled_pass'] else 'FAIL'}",
        f"  baseline pure-Python loop: {report['baseline']['median_quotes_per_s']:,.0f} quotes/s   (runs: {b_runs})",
        f"  engine/baseline = {report['ratio_engine_over_baseline']:.3f}  "
        f"(the engine takes {1 / report['ratio_engine_over_baseline']:.1f}x the baseline's time)",
        f"  fills {e['fills']:,}   realized P&L before fees {e['realized_pnl_before_fees']:,.2f}   "
        f"(baseline {report['baseline']['realized_pnl']:,.2f}, from the data {report['expected_pnl_touch']:,.2f})",
        f"  fills hash {e['fills_hash']}",
    ]
    mem = report.get("memory")
    if mem:
        for r in mem["sizes"]:
            if "error" in r:
                lines.append(f"  memory  {r['n_quotes']:>9,} quotes: error {r['error'][:200]}")
                continue
            lines.append(f"  memory  {r['n_quotes']:>9,} quotes: tracemalloc peak {_mib(r['engine_peak_bytes'])}, "
                         f"held at end {_mib(r['engine_retained_bytes'])}, input stream alone "
                         f"{_mib(r['input_stream_peak_bytes'])}, peak RSS {_mib(r['peak_rss_bytes'])}")
        if "retained_bytes_per_order" in mem:
            lines.append(f"  memory  growth {_mib(mem['peak_growth_bytes'])} of peak for "
                         f"{mem['sizes'][-1]['n_quotes'] / mem['sizes'][0]['n_quotes']:.0f}x the quotes; input "
                         f"stream growth {_mib(mem['input_stream_growth_bytes'])}; the engine keeps "
                         f"{mem['retained_bytes_per_order']:,.0f} bytes per order after it is done")
    peers = report.get("peers")
    if peers is not None:
        if "_error" in peers:
            lines.append(f"  peers   error ({peers['_interpreter']}): {peers['_error'][:300]}")
        for name, res in peers.items():
            if name.startswith("_"):
                continue
            if res.get("status") != "ok":
                lines.append(f"  peer    {name}: {res.get('status')}" + (
                    f" ({res['detail'][:200]})" if res.get("status") == "error" else ""))
                continue
            lines.append(f"  peer    {name} {res['version']}: {res['median_quotes_per_s']:,.0f} quotes/s on "
                         f"{res['n_quotes']:,} quotes (runs: "
                         + ", ".join(f"{r['quotes_per_s']:,.0f}" for r in res["runs"])
                         + f")   ours/theirs = {res['ours_over_theirs']:.1f}x")
            chk = res.get("pnl_check")
            if chk and name == "nautilus_trader":
                lines.append(f"          realized P&L before fees: theirs {chk['theirs_realized_before_fees']:,.2f}, "
                             f"ours {chk['ours_realized_before_fees']:,.2f}, difference {chk['difference']:.2e} "
                             f"({'equal' if chk['equal'] else 'DIFFERENT'}; commissions {chk['commissions']})")
            elif chk:
                lines.append(f"          P&L at mid (bars have no bid/ask): theirs {chk['theirs_value_change']:,.2f}, "
                             f"expected {chk['expected_at_mid']:,.2f}, difference {chk['difference']:.2e} "
                             f"({'equal' if chk['equal'] else 'DIFFERENT'})")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quotes", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--peers", action="store_true", help="also run NautilusTrader and backtrader")
    p.add_argument("--peers-python", default=None, help=f"interpreter with the peers (default {PEERS_PYTHON} "
                                                         "when present, else this one)")
    p.add_argument("--peer-runs", type=int, default=3)
    p.add_argument("--backtrader-quotes", type=int, default=200_000,
                   help="backtrader is ~80x slower: its rate is measured on this prefix of the workload")
    p.add_argument("--memory-quotes", default="200000,1000000", help="comma-separated sizes; empty to skip")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    p.add_argument("--probe-mode", default="tracemalloc", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.memory_probe:
        json.dump(memory_probe(args.memory_probe, args.probe_mode), sys.stdout)
        return 0

    w = Workload(n_quotes=args.quotes, seed=args.seed)
    started = dt.datetime.now(dt.UTC)
    runs = [timed_run(w) for _ in range(args.runs)]
    first = runs[0]
    for r in runs[1:]:  # same data, same engine: the same fills every time
        assert r["fills_hash"] == first["fills_hash"], "fills differ between runs"
    engine_median = statistics.median(r["engine_quotes_per_s"] for r in runs)
    baseline_median = statistics.median(r["baseline_quotes_per_s"] for r in runs)
    expected = expected_pnl(w)
    report: dict = {
        "benchmark": "broker",
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "code": code_info(),
        "workload": w.params(),
        "timing": ("perf_counter summed around driver.schedule + driver.feed per chunk and driver.finish; "
                   "data generation and order construction excluded. Baseline: the loop only, lists prepared "
                   "beforehand. ReplayDriver defaults: ledger invariant checked after every fill."),
        "engine": {
            "median_quotes_per_s": engine_median,
            "median_seconds": statistics.median(r["engine_seconds"] for r in runs),
            **{k: first[k] for k in ("quotes", "orders", "fills", "realized_pnl_before_fees", "fees",
                                     "final_position", "fills_hash")},
        },
        "baseline": {
            "median_quotes_per_s": baseline_median,
            "median_seconds": statistics.median(r["baseline_seconds"] for r in runs),
            "fills": first["baseline_fills"],
            "realized_pnl": first["baseline_realized_pnl"],
        },
        "ratio_engine_over_baseline": engine_median / baseline_median,
        "expected_pnl_touch": expected["touch_marked"],
        "pnl_check": {
            "engine_minus_baseline": first["realized_pnl_before_fees"] - first["baseline_realized_pnl"],
            "engine_minus_from_data": first["realized_pnl_before_fees"] - expected["touch_marked"],
        },
        "target": {"quotes_per_s": TARGET_QPS, "median_quotes_per_s": engine_median,
                   "pass": engine_median >= TARGET_QPS,
                   "reference_baseline_quotes_per_s": REFERENCE_BASELINE_QPS,
                   "scaled_quotes_per_s": engine_median / baseline_median * REFERENCE_BASELINE_QPS,
                   "scaled_pass": engine_median / baseline_median * REFERENCE_BASELINE_QPS >= TARGET_QPS},
        "runs": runs,
    }
    sizes = [int(s) for s in args.memory_quotes.split(",") if s.strip()]
    if sizes:
        report["memory"] = measure_memory(sizes)
    if args.peers:
        peers = run_peers(w.n_quotes, min(args.backtrader_quotes, w.n_quotes), args.peer_runs, args.peer_runs,
                          args.peers_python)
        report["peers"] = compare_peers(peers, engine_median, first["realized_pnl_before_fees"], w.n_quotes)
    report["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    path = out / f"broker_{stamp}.json"
    path.write_text(text)
    (out / "broker_latest.json").write_text(text)
    print(summary(report))
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    print(f"  wrote {shown} (and broker_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
