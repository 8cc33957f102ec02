"""The canonical format of backtest and live results imported beside paper sessions
(``paper_backtest import DIR``: Stage 04 backtests; ``paper_live import DIR``: Stage 07 live
runs), read and validated here and summarised by the same metric functions as a session.

A results folder holds:

``summary.json``
    ``{"id": "<slug>", "strategy": "<registry id>@<version>", "symbols": ["EURUSD", ...],
    "starting_capital": 1000000.0, "currency": "USD"}`` and optionally ``"session_id"`` (the
    paper session it is the backtest of), ``"calendar"`` (``24/7`` or ``24/5``; default from
    the symbols), ``"benchmark"`` and ``"description"``.
``equity.csv``
    ``ts,equity`` and optionally ``gross,net``: the account equity (currency) marked to mid,
    time in ISO-8601 (naive = UTC) or epoch nanoseconds, increasing.
``fills.csv``
    ``ts,symbol,side,quantity,price,fee`` and optionally ``slippage_bps,route_id,
    client_order_id,decision_id``: side ``buy``/``sell``, quantity > 0, price > 0, fee ≥ 0,
    time non-decreasing.
``decisions.ndjson`` (optional)
    one JSON object a line: ``ts``, ``symbol``, ``side``, ``verdict`` (ALLOW, REDUCE, DENY),
    ``approved_quantity`` and optionally ``decision_id``, ``mid``, ``requested_quantity``.

Every problem is reported with its file and line (``fills.csv:17: price: must be > 0, got
-1.0``), all of them at once, before anything is written. Plain Python, no Django.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ifns_paper.metrics.conventions import CALENDAR_DAYS, calendar_of

SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,118}$")
REGISTRY = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.+-]+$")


class ResultsError(ValueError):
    """A results folder that cannot be imported; ``problems`` are ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Results:
    meta: dict
    equity: list[dict] = field(default_factory=list)  # {ts_ns, equity, gross, net}
    fills: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)


def _ts(value: str) -> int:
    from ifns_paper.paper_replay import parse_ts

    return parse_ts(value)


def _num(row: dict, name: str, *, positive: bool = False, non_negative: bool = False,
         optional: bool = False) -> float | None:
    raw = (row.get(name) or "").strip()
    if raw == "":
        if optional:
            return None
        raise ValueError(f"{name}: required")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {raw!r}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value!r}")
    if non_negative and value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return value


def _csv(path: Path, required: tuple[str, ...], optional: tuple[str, ...], problems: list[str]):
    """(line, row) pairs of a CSV file whose header is checked; [] after a header problem."""
    if not path.is_file():
        problems.append(f"{path.name}: missing")
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in required + optional]
        if missing or unknown:
            problems.append(f"{path.name}:1: header: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else []) +
                ([f"unknown {', '.join(unknown)}"] if unknown else [])))
            return []
        return [(n, {k.strip(): v for k, v in row.items() if k is not None}) for n, row in enumerate(reader, start=2)]


def read_results(folder: Path | str) -> Results:
    """Read and validate a results folder; ``ResultsError`` lists every problem."""
    folder = Path(folder)
    problems: list[str] = []
    meta: dict = {}
    summary = folder / "summary.json"
    if not folder.is_dir():
        raise ResultsError([f"{folder}: not a folder"])
    try:
        meta = json.loads(summary.read_text())
        if not isinstance(meta, dict):
            raise ValueError("expected a JSON object")
    except FileNotFoundError:
        problems.append("summary.json: missing")
    except ValueError as exc:
        problems.append(f"summary.json:1: {exc}")
        meta = {}
    if meta:
        if not isinstance(meta.get("id"), str) or not SLUG.match(meta["id"]):
            problems.append(f"summary.json: id: a lower-case slug (a-z, 0-9, _ . -) is required, got {meta.get('id')!r}")
        if not isinstance(meta.get("strategy"), str) or not REGISTRY.match(meta["strategy"]):
            problems.append(f"summary.json: strategy: '<registry id>@<version>' is required, got "
                            f"{meta.get('strategy')!r}")
        symbols = meta.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) and s for s in symbols):
            problems.append(f"summary.json: symbols: a non-empty list of symbols is required, got {symbols!r}")
        capital = meta.get("starting_capital")
        if not isinstance(capital, int | float) or isinstance(capital, bool) or not capital > 0:
            problems.append(f"summary.json: starting_capital: a number > 0 is required, got {capital!r}")
        if not isinstance(meta.get("currency"), str) or not re.match(r"^[A-Z]{3,5}$", meta.get("currency") or ""):
            problems.append(f"summary.json: currency: a currency code is required, got {meta.get('currency')!r}")
        calendar = meta.get("calendar")
        if calendar is not None and calendar not in CALENDAR_DAYS:
            problems.append(f"summary.json: calendar: expected one of {', '.join(CALENDAR_DAYS)}, got {calendar!r}")
        if isinstance(symbols, list) and calendar is None and all(isinstance(s, str) for s in symbols):
            meta["calendar"] = calendar_of(symbols)

    results = Results(meta)
    last = None
    for n, row in _csv(folder / "equity.csv", ("ts", "equity"), ("gross", "net"), problems):
        try:
            ts = _ts(row["ts"])
            if last is not None and ts <= last:
                raise ValueError(f"ts: must increase (previous row {last})")
            last = ts
            results.equity.append({"ts_ns": ts, "equity": _num(row, "equity", positive=True),
                                   "gross": _num(row, "gross", non_negative=True, optional=True) or 0.0,
                                   "net": _num(row, "net", optional=True) or 0.0})
        except ValueError as exc:
            problems.append(f"equity.csv:{n}: {exc}")
    if not results.equity and not any(p.startswith("equity.csv") for p in problems):
        problems.append("equity.csv: no rows")
    last = None
    for n, row in _csv(folder / "fills.csv", ("ts", "symbol", "side", "quantity", "price", "fee"),
                       ("slippage_bps", "route_id", "client_order_id", "decision_id"), problems):
        try:
            ts = _ts(row["ts"])
            if last is not None and ts < last:
                raise ValueError(f"ts: goes back in time (previous row {last})")
            last = ts
            side = (row.get("side") or "").strip().lower()
            if side not in ("buy", "sell"):
                raise ValueError(f"side: expected buy or sell, got {row.get('side')!r}")
            symbol = (row.get("symbol") or "").strip()
            if isinstance(meta.get("symbols"), list) and symbol not in meta["symbols"]:
                raise ValueError(f"symbol: {symbol!r} is not among summary.json's symbols")
            slip = _num(row, "slippage_bps", optional=True)
            results.fills.append({
                "ts": ts, "symbol": symbol, "side": side, "quantity": _num(row, "quantity", positive=True),
                "price": _num(row, "price", positive=True), "fee": _num(row, "fee", non_negative=True),
                "slippage_bps": math.nan if slip is None else slip,
                "route_id": (row.get("route_id") or "").strip() or "imported",
                "client_order_id": (row.get("client_order_id") or "").strip() or f"{meta.get('id')}-fill-{n}",
                "decision_id": (row.get("decision_id") or "").strip(), "arrival_mid": math.nan})
        except ValueError as exc:
            problems.append(f"fills.csv:{n}: {exc}")
    decisions = folder / "decisions.ndjson"
    if decisions.is_file():
        for n, line in enumerate(decisions.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise ValueError("expected a JSON object")
                for key in ("ts", "symbol", "side", "verdict", "approved_quantity"):
                    if key not in d:
                        raise ValueError(f"{key}: required")
                if d["verdict"] not in ("ALLOW", "REDUCE", "DENY"):
                    raise ValueError(f"verdict: expected ALLOW, REDUCE or DENY, got {d['verdict']!r}")
                if d["side"] not in ("buy", "sell"):
                    raise ValueError(f"side: expected buy or sell, got {d['side']!r}")
                results.decisions.append({**d, "ts": _ts(d["ts"])})
            except ValueError as exc:
                problems.append(f"decisions.ndjson:{n}: {exc}")
    if problems:
        raise ResultsError(problems)
    return results


def summarize_results(results: Results, *, env: str = "backtest", as_of_ns: int | None = None) -> dict:
    """The summary object of imported results, from the metric functions every session's
    summary uses: P&L from the fills through the engine's ledger (open positions marked at
    their last fill price), equity and returns from ``equity.csv``, execution from the fills
    (one order a fill: imported results carry no order life cycle), decisions when given."""
    from ifns_paper.engine.ledger import Ledger
    from ifns_paper.engine.orders import Fill, Liquidity, Side
    from ifns_paper.metrics.conventions import Conventions
    from ifns_paper.metrics.summary import summarize, thin_to_minutes

    meta = results.meta
    ledger = Ledger(float(meta["starting_capital"]))
    for k, f in enumerate(results.fills):
        ledger.apply_fill(Fill(f"{meta['id']}-{k}", f["client_order_id"], f["symbol"], Side(f["side"]), f["ts"],
                               f["quantity"], f["price"], math.nan, f["slippage_bps"], f["fee"], Liquidity.TAKER,
                               f["route_id"]))
        ledger.mark(f["symbol"], f["price"])
    snapshot = ledger.snapshot()
    snapshot["equity"] = results.equity[-1]["equity"]  # the results' own marking of the account
    snapshot["unrealized"] = snapshot["equity"] - ledger.starting_capital - snapshot["realized"] + snapshot["fees"]
    peak, series = -math.inf, []
    for p in results.equity:
        peak = max(peak, p["equity"])
        series.append({**p, "drawdown": 1 - p["equity"] / peak, "positions": {}, "marks": {}})
    orders = [{"client_order_id": f["client_order_id"], "decision_id": f["decision_id"], "route_id": f["route_id"],
               "status": "filled", "reason": "", "quantity": f["quantity"], "filled_quantity": f["quantity"],
               "submitted_ns": f["ts"], "first_fill_ns": f["ts"]} for f in results.fills]
    limits = dict.fromkeys(("max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure",
                            "max_net_exposure", "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute"))
    return summarize(
        session_id=meta["id"], lane=meta.get("lane", ""), strategy_id=meta["strategy"],
        as_of_ns=as_of_ns or results.equity[-1]["ts_ns"], final=True,
        conventions=Conventions(grid_s=60.0, calendar=meta["calendar"], currency=meta["currency"]),
        starting_capital=float(meta["starting_capital"]), ledger=snapshot, series=thin_to_minutes(series),
        fills=results.fills, decisions=results.decisions, orders=orders, breaches=[], incidents=[], limits=limits,
        benchmark=meta.get("benchmark", "flat_cash"), env=env)
