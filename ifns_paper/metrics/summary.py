"""One session's summary (spec §6.2) from plain records, the same for a real-time paper
session (read from the database), a replay or a backtest (read from files): every field
is computed by the functions of this package, so two summaries compare key by key.

Inputs (plain dicts, as stored or written by ``paper_replay``):

* ``series``: equity samples ``{ts_ns, equity, gross, net, drawdown, positions, marks}``,
  in time order (the engine's 1 s grid, a point every whole minute at least);
* ``fills``: ``{symbol, side, quantity, price, fee, ts, slippage_bps, route_id,
  client_order_id}``;
* ``decisions``: DRA decisions ``{ts, decision_id, symbol, side, requested_quantity,
  approved_quantity, verdict, mid, reasons}``;
* ``orders``: ``{client_order_id, decision_id, route_id, status, reason, quantity,
  filled_quantity, submitted_ns, first_fill_ns}``;
* ``breaches``: ``{ts, kind, limit, value}``; ``incidents``: incident payloads.

Every money figure is in the account currency, returns and drawdowns are fractions,
slippage and shortfall in bps; the conventions travel in the summary.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ifns_paper.engine.trades import RoundTrip, round_trips
from ifns_paper.metrics.benchmark import tracking
from ifns_paper.metrics.conventions import Conventions
from ifns_paper.metrics.execution import (
    ChildFill,
    implementation_shortfall,
    order_outcomes,
    slippage_by,
    slippage_stats,
)
from ifns_paper.metrics.performance import (
    annual_volatility,
    max_drawdown,
    pnl_summary,
    profit_factor,
    sample_on_grid,
    sharpe,
    simple_returns,
    sortino,
    turnover,
)
from ifns_paper.metrics.risk import order_rate_per_minute, utilisation
from ifns_paper.metrics.significance import Moments
from ifns_paper.metrics.trading import trade_stats

SCHEMA_VERSION = 1


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return _json_safe(value.item())
    return value


def benchmark_returns(benchmark: str, series: Sequence[dict], grid_ns: np.ndarray,
                      benchmark_equity: tuple[Sequence[int], Sequence[float]] | None = None
                      ) -> tuple[np.ndarray | None, str]:
    """Returns of the session's benchmark on ``grid_ns``: ``buy_and_hold:SYMBOL`` (the mid's
    simple returns, from the series' marks), ``flat_cash`` (zero) or ``backtest:<id>`` (the
    backtest's equity, ``benchmark_equity`` as the caller read it, sampled on the same grid);
    None with the reason otherwise."""
    if benchmark == "flat_cash":
        return np.zeros(max(len(grid_ns) - 1, 0)), "flat cash: zero returns"
    kind, _, symbol = benchmark.partition(":")
    if kind == "backtest":
        if benchmark_equity is None or not len(benchmark_equity[0]) or len(grid_ns) == 0:
            return None, f"{benchmark}: no such completed backtest"
        ts = np.asarray(benchmark_equity[0], dtype=np.int64)
        idx = np.searchsorted(ts, grid_ns, side="right") - 1
        if idx[0] < 0:
            return None, f"{benchmark}: starts after the session's first grid point"
        return simple_returns(np.asarray(benchmark_equity[1], dtype=np.float64)[idx]), f"backtest {symbol}'s equity"
    if kind != "buy_and_hold":
        return None, f"{benchmark}: not available here"
    ts = np.asarray([p["ts_ns"] for p in series if symbol in (p.get("marks") or {})], dtype=np.int64)
    mids = np.asarray([p["marks"][symbol] for p in series if symbol in (p.get("marks") or {})])
    if len(ts) == 0 or len(grid_ns) == 0:
        return None, f"no {symbol} price in the series"
    idx = np.searchsorted(ts, grid_ns, side="right") - 1
    if idx[0] < 0:
        return None, f"no {symbol} price at the first grid point"
    return simple_returns(mids[idx]), f"buy and hold {symbol} at its mid"


def implementation_shortfalls(decisions: Sequence[dict], orders: Sequence[dict], fills: Sequence[dict],
                              series_marks: dict[str, tuple[list[int], list[float]]],
                              memo: dict | None = None) -> list[dict]:
    """One shortfall per decision that sent orders (see ``execution.implementation_shortfall``):
    decision price = the mid the decision saw; arrival price = the first fill's arrival mid
    (the mid when a child reached the venue), or the decision price without fills; end price
    = the symbol's mid at the last fill (or at the decision without fills, from the series).
    ``fills`` in time order; ``series_marks``: symbol -> (times, mids) in time order.
    ``memo`` (kept by the caller between calls on a growing session): decision id -> its
    inputs and result, reused while its fills, arrival and end price are unchanged."""
    by_decision: dict[str, list[dict]] = defaultdict(list)
    coid_decision = {o["client_order_id"]: o["decision_id"] for o in orders}
    for f in fills:
        d = coid_decision.get(f["client_order_id"])
        if d:
            by_decision[d].append(f)
    sent = set(coid_decision.values())
    out = []
    for d in decisions:
        if d["decision_id"] not in sent or d["verdict"] == "DENY":
            continue
        own = by_decision.get(d["decision_id"], ())
        arrival = own[0]["arrival_mid"] if own and own[0]["arrival_mid"] == own[0]["arrival_mid"] else None
        end_ts = own[-1]["ts"] if own else d["ts"]
        end = _mark_at(series_marks.get(d["symbol"]), end_ts, d["mid"])
        key = (len(own), end_ts, end, arrival)
        if memo is not None and (kept := memo.get(d["decision_id"])) is not None and kept[0] == key:
            out.append(kept[1])
            continue
        result = implementation_shortfall(
            side=1 if d["side"] == "buy" else -1, quantity=float(d["approved_quantity"]),
            decision_price=float(d["mid"]), arrival_price=arrival, end_price=end,
            fills=[ChildFill(float(f["quantity"]), float(f["price"]), float(f["fee"])) for f in own])
        result["decision_id"], result["symbol"], result["side"] = d["decision_id"], d["symbol"], d["side"]
        if memo is not None:
            memo[d["decision_id"]] = (key, result)
        out.append(result)
    return out


def _moments(returns: np.ndarray, conv: Conventions) -> dict | None:
    m = Moments.of(np.asarray(returns) - conv.risk_free_per_period)
    return None if m is None else {"n": m.n, "sharpe": m.sharpe, "skew": m.skew, "kurtosis": m.kurtosis}


def _totals(rows: Sequence[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """The sum of each of ``keys`` over ``rows`` (one pass)."""
    totals = dict.fromkeys(keys, 0)
    for row in rows:
        for k in keys:
            totals[k] += row[k]
    return totals


def _mark_at(marks: tuple[list[int], list[float]] | None, ts: int, default: float) -> float:
    if not marks or not marks[0]:
        return default
    i = bisect.bisect_right(marks[0], ts) - 1
    return float(marks[1][i]) if i >= 0 else default


def summarize(*, session_id: str, lane: str, strategy_id: str, as_of_ns: int, final: bool, conventions: Conventions,
              starting_capital: float, ledger: dict, series: Sequence[dict], fills: Sequence[dict],
              decisions: Sequence[dict], orders: Sequence[dict], breaches: Sequence[dict],
              incidents: Sequence[dict], limits: dict, benchmark: str = "flat_cash",
              carried: dict[str, tuple[float, float]] | None = None, started_ns: int | None = None,
              trips: Sequence[RoundTrip] | None = None, shortfall_memo: dict | None = None,
              env: str = "paper", benchmark_equity: tuple[Sequence[int], Sequence[float]] | None = None) -> dict:
    """The summary object (JSON-safe): identification, conventions and every metric.
    ``trips``: the round trips of ``fills`` (and ``carried``) when the caller keeps them
    (``engine.trades.RoundTripBook`` fed fill by fill); computed here otherwise.
    ``shortfall_memo``: see ``implementation_shortfalls``. ``env``: ``paper``, or ``backtest``
    for a shadow or imported backtest summarised by the same functions."""
    conv = conventions
    ts = np.asarray([p["ts_ns"] for p in series], dtype=np.int64)
    equity = np.asarray([p["equity"] for p in series], dtype=np.float64)
    grid, grid_equity = sample_on_grid(ts, equity, conv.grid_s)
    returns = simple_returns(grid_equity)
    if trips is None:
        trips = round_trips(fills, carried)
    traded = sum(float(f["quantity"]) * float(f["price"]) for f in fills)
    marks: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for p in series:
        for symbol, mid in (p.get("marks") or {}).items():
            marks[symbol][0].append(p["ts_ns"])
            marks[symbol][1].append(mid)

    enough = len(returns) >= conv.min_periods  # for annualised ratios (see Conventions)
    bench_r, bench_note = benchmark_returns(benchmark, series, grid, benchmark_equity)
    bench = {"benchmark": benchmark, "how": bench_note, "tracking_error": None, "information_ratio": None}
    if bench_r is not None and len(bench_r) == len(returns):
        bench |= tracking(returns, bench_r, conv)
        if not enough:
            bench["information_ratio"] = None

    shortfalls = implementation_shortfalls(decisions, orders, fills, marks, shortfall_memo)
    is_bps = [s["total_bps"] for s in shortfalls if s["total_bps"] is not None]

    strategy_fills = [{**f, "strategy_id": strategy_id} for f in fills]
    positions_ts = {s: ([], []) for s in {sym for p in series for sym in (p.get("positions") or {})}}
    for p in series:
        for symbol in positions_ts:
            qty = (p.get("positions") or {}).get(symbol, 0.0)
            mid = (p.get("marks") or {}).get(symbol, 0.0)
            positions_ts[symbol][0].append(p["ts_ns"])
            positions_ts[symbol][1].append(qty * mid)
    end = as_of_ns if len(ts) == 0 else max(as_of_ns, int(ts[-1]))
    decision_mid = {d["decision_id"]: float(d["mid"]) for d in decisions}
    order_sizes = sorted((o["submitted_ns"], float(o["quantity"]) * decision_mid[o["decision_id"]]) for o in orders
                         if o["decision_id"] in decision_mid)
    rate_ts, rate = order_rate_per_minute(np.asarray([o["submitted_ns"] for o in orders], dtype=np.int64))
    day_loss = _daily_loss(ts, equity)
    risk = {
        "gross_exposure": utilisation(ts, np.asarray([p["gross"] for p in series]), limits.get("max_gross_exposure"),
                                      end_ns=end),
        "net_exposure": utilisation(ts, np.asarray([p["net"] for p in series]), limits.get("max_net_exposure"),
                                    end_ns=end),
        "position_per_symbol": {s: utilisation(np.asarray(t, dtype=np.int64), np.asarray(v),
                                               limits.get("max_position_notional_per_symbol"), end_ns=end)
                                for s, (t, v) in sorted(positions_ts.items())},
        "drawdown": utilisation(ts, np.asarray([p["drawdown"] * 100 for p in series]),
                                limits.get("max_drawdown_pct"), end_ns=end),
        "daily_loss": utilisation(ts, day_loss, limits.get("max_daily_loss"), end_ns=end),
        "order_notional": utilisation(np.asarray([t for t, _ in order_sizes], dtype=np.int64),
                                      np.asarray([v for _, v in order_sizes]), limits.get("max_order_notional"),
                                      end_ns=end),
        "order_rate": utilisation(rate_ts, rate, limits.get("max_orders_per_minute"), end_ns=end),
        "breaches": dict(sorted(Counter(b["kind"] for b in breaches).items())),
    }
    summary = {
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id, "env": env, "lane": lane, "strategy_id": strategy_id,
        "as_of": as_of_ns, "final": final, "started": started_ns,
        "first_data": int(ts[0]) if len(ts) else None,  # market time of the first sample: days run from here
        "conventions": conv.as_dict(),
        "pnl": pnl_summary(starting_capital=starting_capital, equity=ledger["equity"], realized=ledger["realized"],
                           unrealized=ledger["unrealized"], fees=ledger["fees"]),
        "returns": {
            "periods": int(len(returns)),
            # per-period Sharpe, skewness, kurtosis of the excess returns: PSR and MinTRL
            # (metrics.significance) need them; None with fewer than three returns or no dispersion
            "moments": _moments(returns, conv),
            "volatility": annual_volatility(returns, conv),
            "sharpe": sharpe(returns, conv) if enough else None,
            "sortino": sortino(returns, conv) if enough else None,
            "max_drawdown": max_drawdown(ts, equity),
            "turnover": turnover(traded, float(np.mean(equity)) if len(equity) else 0.0),
            "profit_factor": profit_factor(np.asarray([t.net_pnl for t in trips])) if trips else None,
        },
        "trades": trade_stats(trips),
        "fills": {"count": len(fills), "traded_notional": traded},
        "execution": {
            "slippage": slippage_stats([float(f["slippage_bps"]) for f in fills]),
            "slippage_by_route": slippage_by(fills, "route_id"),
            "slippage_by_symbol": slippage_by(fills, "symbol"),
            "slippage_by_strategy": slippage_by(strategy_fills, "strategy_id"),
            "orders_by_route": order_outcomes(orders),
            "implementation_shortfall": {
                "decisions": len(shortfalls),
                "mean_bps": float(np.mean(is_bps)) if is_bps else None,
                **_totals(shortfalls, ("total", "delay", "trading", "opportunity", "fees")),
                "worst": sorted(shortfalls, key=lambda s: -(s["total_bps"] or 0))[:5],
            },
        },
        "benchmark": bench,
        "risk": risk,
        "incidents": {"count": len(incidents),
                      "by_kind": dict(sorted(Counter(i.get("kind", "unknown") for i in incidents).items()))},
    }
    return _json_safe(summary)


MINUTE_NS = 60_000_000_000


def thin_to_minutes(series: Sequence[dict]) -> list[dict]:
    """The samples at whole minutes, plus the last one: the resolution summaries use, so that
    a session read from the database (thinned after an hour) and a replay read from its file
    give the same figures."""
    out = [p for p in series if p["ts_ns"] % MINUTE_NS == 0]
    if series and (not out or out[-1] is not series[-1]):
        out.append(series[-1])
    return out


def limits_of(limits) -> dict:
    """A lane envelope (``engine.dra.RiskLimits`` or the envelope's field mapping) with the
    names ``summarize`` uses."""
    get = (lambda k: getattr(limits, k)) if not isinstance(limits, dict) else limits.get
    return {"max_order_notional": get("max_order_notional"),
            "max_position_notional_per_symbol": get("max_position_notional")
            if not isinstance(limits, dict) else get("max_position_notional_per_symbol"),
            "max_gross_exposure": get("max_gross_exposure"), "max_net_exposure": get("max_net_exposure"),
            "max_daily_loss": get("max_daily_loss"), "max_drawdown_pct": get("max_drawdown_pct"),
            "max_orders_per_minute": get("max_orders_per_minute")}


def _daily_loss(ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Loss since the start of each UTC day (≥ 0; 0 when up on the day), per sample."""
    if len(ts) == 0:
        return np.empty(0)
    day = ts // 86_400_000_000_000
    out = np.empty(len(equity))
    start_value = equity[0]
    for i in range(len(equity)):
        if i and day[i] != day[i - 1]:
            start_value = equity[i - 1]
        out[i] = max(0.0, start_value - equity[i])
    return out
