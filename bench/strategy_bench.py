"""Strategy replay benchmark: the whole decision chain, engine only, as fast as possible.

Workload: the standard 1,000,000-quote EUR/USD-like stream of ``bench/workload.py``
(no scripted orders). The session runs the shipped momentum model
(``model.momentum``) evaluated on every quote: incremental features →
MSI signal → vol-targeted target position → proposals when the target moves
by a lot → DRA gates → EI (immediate policy, market IOC on a zero-latency
touch route, zero fees) → Paper Broker → ledger.

Reported: quotes/s through ``SessionEngine.on_quotes`` (median of runs; data
generation excluded), proposals, decisions, orders, fills and P&L so figures
are checkable, and in the same run a minimal pure-Python per-quote momentum
loop on the same data (two EWMAs and a threshold per quote, no risk, no
broker) with the ratio. Target: >= 300,000 quotes/s.

``--peers`` also runs NautilusTrader's full pipeline on the same quotes
(``bench/peers.py --only nautilus_strategy``, in a subprocess with the
interpreter that has it, as ``bench.broker_bench --peers`` does): a
BacktestEngine whose Python strategy updates the same momentum signal on every
quote and sends our session's orders (the same decisions: the same quotes,
sides and quantities). Reported: its quotes/s and ours / theirs, like for like.

    python -m bench.strategy_bench [--quotes N] [--runs 3] [--peers] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.broker_bench import PEERS_PYTHON, code_info, machine_info, run_peers_module
from bench.workload import Workload
from ifns_paper.engine.dra import RiskLimits
from ifns_paper.engine.ei import ExecutionPolicy
from ifns_paper.engine.features import FeatureEngine
from ifns_paper.engine.msi import MomentumModel
from ifns_paper.engine.orders import OrderType, TimeInForce
from ifns_paper.engine.routes import FillModel, RouteSpec
from ifns_paper.engine.session import SessionEngine, SessionSetup

ROOT = Path(__file__).resolve().parent.parent
TARGET_QPS = 300_000
ROUTE = "BENCH_TOUCH"
# The paper_research envelope of config/environments/paper.yaml.
LIMITS = RiskLimits(capital=1_000_000, max_order_notional=250_000, max_position_notional=500_000,
                    max_gross_exposure=2_000_000, max_net_exposure=1_000_000, max_daily_loss=25_000,
                    max_drawdown_pct=8.0, max_orders_per_minute=120, price_collar_bps=100)


def session(w: Workload) -> SessionEngine:
    routes = {ROUTE: RouteSpec(ROUTE, FillModel.TOUCH, stale_ns=3_600 * 10**9)}
    policy = ExecutionPolicy("immediate", OrderType.MARKET, TimeInForce.IOC, ROUTE)
    return SessionEngine(SessionSetup(
        session_id="bench", lane="paper_research", strategy_id="strat.momentum_fx@1.3.0",
        models=[(MomentumModel(), 1.0)], limits=LIMITS, policy=policy, routes=routes,
        lot_sizes={w.symbol: 1000.0}, vol_target=2e-5, budget_fraction=0.1, min_interval_ns=1_000_000_000,
    ))


def engine_run(w: Workload) -> dict:
    engine = session(w)
    counts: dict[str, int] = {}
    schedule: list[list] = []  # [quote index, side, quantity] of every order sent (for the peer)
    elapsed = 0.0
    for _, batch in w.chunks():
        t0 = time.perf_counter()
        events = engine.on_quotes(batch)
        elapsed += time.perf_counter() - t0
        for e in events:
            counts[e.type] = counts.get(e.type, 0) + 1
            if e.type == "order_submitted":
                schedule.append([quote_index(w, e.ts), 1 if e.payload["side"] == "buy" else -1,
                                 e.payload["quantity"]])
    ledger = engine.ledger
    return {"seconds": elapsed, "quotes_per_s": w.n_quotes / elapsed, "events": counts,
            "fills": counts.get("order_filled", 0), "pnl": ledger.pnl, "realized": ledger.realized,
            "final_position": ledger.position(w.symbol).quantity, "fills_hash": engine.driver.stats.fills_hash,
            "schedule": schedule}


def quote_index(w: Workload, ts: int) -> int:
    """The quote an order was sent on (zero-latency route: the order's time is its quote's)."""
    i, rest = divmod(ts - w.quote_ts(0), w.quote_interval_ns)
    if rest:
        raise ValueError(f"an order at {ts} is not at a quote's time")
    return i


def baseline_run(w: Workload) -> dict:
    """Per-quote Python momentum: the least a Python strategy loop does on every quote."""
    a_fast, a_slow = 1 - 0.5 ** (1 / 20), 1 - 0.5 ** (1 / 200)
    fast = slow = math.nan
    signals = 0
    elapsed = 0.0
    for _, batch in w.chunks():
        bid, ask = batch.bid.tolist(), batch.ask.tolist()
        t0 = time.perf_counter()
        for b, a in zip(bid, ask, strict=True):
            x = math.log((b + a) * 0.5)
            if fast != fast:  # NaN: first quote
                fast = slow = x
            fast += a_fast * (x - fast)
            slow += a_slow * (x - slow)
            if fast - slow > 1e-5:
                signals += 1
        elapsed += time.perf_counter() - t0
    return {"seconds": elapsed, "quotes_per_s": w.n_quotes / elapsed, "signals": signals}


def run_peer(n_quotes: int, runs: int, python: str | None, schedule: list) -> dict:
    """NautilusTrader's full pipeline (bench/peers.py ``nautilus_strategy``) in the peers' interpreter,
    sending our session's orders (``schedule``) at the same quotes."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ifns_schedule_") as f:
        json.dump(schedule, f)
        f.flush()
        return run_peers_module(["--quotes", str(n_quotes), "--runs", str(runs), "--only", "nautilus_strategy",
                                 "--schedule", f.name], python)


def reference_signal(w: Workload) -> dict:
    """What our FeatureEngine + MomentumModel give on the same quotes (not timed): to check the peer's
    per-quote arithmetic."""
    features, model = FeatureEngine(), MomentumModel()
    positive = 0
    frame = None
    for _, batch in w.chunks():
        frame = features.update(batch)
        positive += int((model.signal(frame) > 0.0).sum())
    return {"last_trend": float(frame.trend[-1]), "last_signal": float(model.signal(frame)[-1]),
            "quotes_signal_positive": positive}


def compare_peer(peers: dict, ours_qps: float, w: Workload, ours: dict) -> dict:
    res = peers.get("nautilus_strategy")
    if not res or res.get("status") != "ok":
        return peers
    res["ours_over_theirs"] = ours_qps / res["median_quotes_per_s"]
    # Like for like: the peer sent our session's orders (same quotes, sides and quantities), each
    # filled at the touch of the quote it was sent on by both venues (zero latency, sizes within
    # the displayed size), so the two realized P&Ls (average cost, zero fees) must be equal.
    sent = len(ours["schedule"])
    res["same_orders"] = {"ours": sent, "theirs": res["orders"], "equal": res["orders"] == sent,
                          "how": "the peer submits our session's orders at the same quotes (side, quantity)"}
    theirs = res["realized_pnl_balance"]
    # Nautilus books each realized P&L in whole cents (USD Money): up to half a cent per fill apart
    tolerance = 0.005 * max(1, res["fills"])
    res["pnl_check"] = {"theirs_realized_before_fees": theirs, "ours_realized_before_fees": ours["realized"],
                        "difference": theirs - ours["realized"], "tolerance": tolerance,
                        "equal": abs(theirs - ours["realized"]) <= tolerance,
                        "how": ("the same orders filled at the touch of the quote each was sent on; Nautilus rounds "
                                "each realized P&L to the cent, so the two may differ by half a cent per fill")}
    ref = reference_signal(w)
    res["signal_check"] = {
        "ours": ref, "theirs": {k: res[k] for k in ref},
        "last_signal_difference": res["last_signal"] - ref["last_signal"],
        "how": ("our FeatureEngine + MomentumModel (numpy/lfilter) on the same quotes vs the peer's per-quote "
                "Python floats; rounding may differ in the last bits"),
    }
    return peers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quotes", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--peers", action="store_true", help="also run NautilusTrader's full pipeline (bench/peers.py)")
    p.add_argument("--peers-python", default=None, help=f"interpreter with the peers (default {PEERS_PYTHON} "
                                                         "when present, else this one)")
    p.add_argument("--peer-runs", type=int, default=3)
    args = p.parse_args(argv)
    w = Workload(n_quotes=args.quotes)
    started = dt.datetime.now(dt.UTC)
    runs = [(engine_run(w), baseline_run(w)) for _ in range(args.runs)]
    engines = [e for e, _ in runs]
    assert len({e["fills_hash"] for e in engines}) == 1, "fills differ between runs"
    engine_median = statistics.median(e["quotes_per_s"] for e in engines)
    baseline_median = statistics.median(b["quotes_per_s"] for _, b in runs)
    first = engines[0]
    report = {
        "benchmark": "strategy_replay",
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "code": code_info(),
        "workload": {**w.params(), "orders": "none scripted: decided by the momentum model"},
        "timing": "perf_counter around SessionEngine.on_quotes per 100k-quote chunk; generation excluded",
        "engine": {"median_quotes_per_s": engine_median, "runs": [e["quotes_per_s"] for e in engines],
                   **{k: first[k] for k in ("events", "fills", "pnl", "realized", "final_position", "fills_hash")}},
        "baseline": {"what": "pure-Python per-quote loop: log mid, two EWMAs, a threshold",
                     "median_quotes_per_s": baseline_median, "runs": [b["quotes_per_s"] for _, b in runs]},
        "ratio_engine_over_baseline": engine_median / baseline_median,
        "target": {"quotes_per_s": TARGET_QPS, "pass": engine_median >= TARGET_QPS},
    }
    peer = None
    if args.peers:
        peers = run_peer(w.n_quotes, args.peer_runs, args.peers_python, first["schedule"])
        report["peers"] = compare_peer(peers, engine_median, w, first)
        peer = report["peers"].get("nautilus_strategy")
        if peer and peer.get("status") == "ok":
            report["ratio_engine_over_nautilus_strategy"] = peer["ours_over_theirs"]
    report["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"strategy_{stamp}.json", "strategy_latest.json"):
        (out / name).write_text(json.dumps(report, indent=2) + "\n")
    ev = first["events"]
    print(f"IFNS strategy replay: {w.n_quotes:,} quotes, momentum model on every quote, median of {args.runs} runs")
    rates = ", ".join(f"{e['quotes_per_s']:,.0f}" for e in engines)
    print(f"  engine   features→MSI→DRA→EI→broker→ledger: {engine_median:,.0f} quotes/s   (runs: {rates})")
    print(f"  target   >= {TARGET_QPS:,} quotes/s: {'PASS' if engine_median >= TARGET_QPS else 'FAIL'}")
    print(f"  baseline pure-Python momentum loop: {baseline_median:,.0f} quotes/s   "
          f"engine/baseline = {engine_median / baseline_median:.2f}")
    print(f"  proposals {ev.get('msi_proposal', 0):,}  decisions {ev.get('dra_decision', 0):,}  "
          f"orders {ev.get('order_submitted', 0):,}  fills {first['fills']:,}  breaches {ev.get('risk_breach', 0):,}")
    print(f"  P&L {first['pnl']:,.2f} (realized {first['realized']:,.2f}); final position {first['final_position']:,.0f}")
    if args.peers:
        if peer and peer.get("status") == "ok":
            rates = ", ".join(f"{r['quotes_per_s']:,.0f}" for r in peer["runs"])
            chk, sig = peer["pnl_check"], peer["signal_check"]
            same = peer["same_orders"]
            print(f"  nautilus_strategy {peer['version']} (BacktestEngine, Python momentum strategy, sending our "
                  f"session's orders): {peer['median_quotes_per_s']:,.0f} quotes/s   (runs: {rates})   "
                  f"ours/theirs = {peer['ours_over_theirs']:.1f}x")
            print(f"          like for like: the same decisions — our {same['ours']:,} orders at the same quotes, "
                  f"sides and quantities ({'same count' if same['equal'] else 'DIFFERENT count'}: theirs "
                  f"{same['theirs']:,}); per order sent: ours {1e6 * w.n_quotes / engine_median / max(same['ours'], 1):,.0f} µs, "
                  f"theirs {1e6 * w.n_quotes / peer['median_quotes_per_s'] / max(same['theirs'], 1):,.0f} µs")
            print(f"          fills {peer['fills']:,}  realized P&L {chk['theirs_realized_before_fees']:,.2f} "
                  f"vs ours {chk['ours_realized_before_fees']:,.2f} ({'equal' if chk['equal'] else 'DIFFERENT'} within "
                  f"{chk['tolerance']:.2f}: Nautilus books each realized P&L in cents); "
                  f"last signal {sig['theirs']['last_signal']:.6f} vs ours {sig['ours']['last_signal']:.6f}")
        else:
            detail = (peer or {}).get("detail") or report["peers"].get("_error", "no result")
            print(f"  nautilus_strategy: {(peer or {}).get('status', 'error')} ({detail})")
    print(f"  wrote {out / f'strategy_{stamp}.json'} (and strategy_latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
