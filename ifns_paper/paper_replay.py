"""``paper_replay``: the Paper Broker alone on recorded data and scripted orders.

No database, no Django: files in, files out. The same engine code as real
time (``PaperBroker``, ``Ledger``, ``ReplayDriver``), at full speed.

Inputs
  --quotes / --trades / --bars   canonical or shipped market-data files (see
                                 ``ifns_paper.marketdata.importers``)
  --orders                       CSV: ts, client_order_id, symbol, side, qty, type,
                                 limit_price, stop_price, tif, route_id
  --session (instead of --orders) a session file (``config/paper_trading/session_<name>.yaml``):
                                 its strategy decides, through the whole chain (features,
                                 MSI, DRA, EI), as in real time; with --config-dir
  --routes                       ``execution_routes.json`` (validated like the config)
Outputs (in --out)
  orders.ndjson   the final state of every order
  fills.ndjson    every fill
  events.ndjson   every broker event in time order (order status, fill, incident)
  summary.json    positions, cash, P&L, counts, slippage statistics, fills hash
  series.ndjson   (--session) the equity/exposure samples, one a second of market time
  minutes.ndjson  (--session) those of its samples on whole minutes

Run it as ``python manage.py paper_replay ...`` or ``python -m ifns_paper.paper_replay ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ifns_paper.config.loader import ConfigError, load_routes_file
from ifns_paper.engine.broker import PaperBroker
from ifns_paper.engine.ledger import Ledger
from ifns_paper.engine.marketdata import MarketDataError
from ifns_paper.engine.orders import Fill, Incident, Order, OrderEvent, OrderType, Side, TimeInForce
from ifns_paper.engine.replay import ReplayDriver, ReplayStats, ScheduledOrder, interleave
from ifns_paper.engine.routes import routes_from_mapping
from ifns_paper.marketdata import ImportOptions, bars_to_l1, read_bars, read_quotes, read_trades
from ifns_paper.metrics.conventions import Conventions, calendar_of
from ifns_paper.metrics.summary import MINUTE_NS, limits_of, summarize

ORDER_COLUMNS = ("ts", "client_order_id", "symbol", "side", "qty", "type", "limit_price", "stop_price", "tif",
                 "route_id")


class ReplayInputError(ValueError):
    """A bad input file; the message names the file, line and field."""


class OrderRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ts: int
    client_order_id: str = Field(min_length=1, max_length=100)
    symbol: str = Field(min_length=1)
    side: Literal["buy", "sell"]
    qty: float = Field(gt=0, allow_inf_nan=False)
    type: Literal["market", "limit", "stop", "stop_limit"]
    limit_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    stop_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tif: Literal["DAY", "GTC", "IOC", "FOK"]
    route_id: str = Field(min_length=1)

    @field_validator("ts", mode="before")
    @classmethod
    def _timestamp(cls, value):
        return parse_ts(value)

    @field_validator("limit_price", "stop_price", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if value in ("", None) else value

    @field_validator("side", "type", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator("tif", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _prices(self) -> OrderRow:
        problem = self.to_order().problem()
        if problem:
            raise ValueError(problem)
        return self

    def to_order(self) -> Order:
        return Order(self.client_order_id, self.symbol, Side(self.side), self.qty, OrderType(self.type),
                     TimeInForce(self.tif), self.route_id, self.limit_price, self.stop_price)


def parse_ts(value) -> int:
    """Epoch nanoseconds from an integer, digits, or ISO-8601 text (naive = UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unparsable timestamp {text!r} (ISO-8601 or epoch nanoseconds)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def read_orders(path: Path) -> list[ScheduledOrder]:
    """Scripted orders, validated row by row; any bad row stops the replay."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot read: {exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ORDER_COLUMNS if c not in header]
        unknown = [c for c in header if c not in ORDER_COLUMNS]
        if missing or unknown:
            raise ReplayInputError(
                f"{path}:1: header: "
                + "; ".join(filter(None, [missing and f"missing column(s) {', '.join(missing)}",
                                          unknown and f"unknown column(s) {', '.join(unknown)}"]))
                + f" (expected: {', '.join(ORDER_COLUMNS)})"
            )
        orders, seen = [], {}
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise ReplayInputError(f"{path}:{line}: more fields than the header")
            try:
                parsed = OrderRow.model_validate({k.strip(): v for k, v in row.items()})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in err["loc"]) or "row"
                raise ReplayInputError(f"{path}:{line}: {field}: {err['msg'].removeprefix('Value error, ')}") from None
            if parsed.client_order_id in seen:
                raise ReplayInputError(f"{path}:{line}: client_order_id: {parsed.client_order_id!r} already used "
                                       f"on line {seen[parsed.client_order_id]}")
            seen[parsed.client_order_id] = line
            orders.append(ScheduledOrder(parsed.ts, parsed.to_order()))
    return orders


def read_routes(path: Path):
    return routes_from_mapping(load_routes_file(path).model_dump(mode="json")["routes"])


def run(
    *,
    quotes: Sequence[Path] = (),
    trades: Sequence[Path] = (),
    bars: Sequence[Path] = (),
    orders: Path,
    routes: Path,
    out: Path,
    seed: int = 0,
    capital: float = 1_000_000.0,
    options: ImportOptions | None = None,
) -> dict:
    """Replay and write the four output files; returns the summary."""
    options = options or ImportOptions()
    route_specs = read_routes(routes)
    scheduled = read_orders(orders)
    unknown = sorted({s.order.route_id for s in scheduled} - set(route_specs))
    if unknown:
        raise ReplayInputError(f"{orders}: route_id: unknown route(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(route_specs))})")
    batches = _market_batches(quotes, trades, bars, options)

    out.mkdir(parents=True, exist_ok=True)
    broker = PaperBroker(route_specs, seed=seed)
    ledger = Ledger(capital)
    counts: Counter[str] = Counter()
    by_route: dict[str, list[float]] = defaultdict(list)
    by_symbol: dict[str, list[float]] = defaultdict(list)
    with (out / "events.ndjson").open("w") as events_file, (out / "fills.ndjson").open("w") as fills_file:

        def on_event(event) -> None:
            if isinstance(event, Fill):
                record = {"type": "fill", **event.as_dict()}
                fills_file.write(json.dumps(event.as_dict()) + "\n")
                by_route[event.route_id].append(event.slippage_bps)
                by_symbol[event.symbol].append(event.slippage_bps)
            elif isinstance(event, OrderEvent):
                record = {"type": "order", **event.as_dict()}
                counts[f"orders_{event.status}"] += 1
                if event.reason:
                    counts[f"reason_{event.reason}"] += 1
            else:
                assert isinstance(event, Incident)
                record = {"type": "incident", **event.as_dict()}
                counts["incidents"] += 1
            events_file.write(json.dumps(record) + "\n")

        driver = ReplayDriver(broker, ledger, on_event=on_event)
        driver.schedule(scheduled)
        for batch in interleave(batches):
            driver.feed(batch)
        driver.finish()

    with (out / "orders.ndjson").open("w") as orders_file:
        for item in scheduled:
            view = broker.order(item.order.client_order_id)
            o = view.order
            orders_file.write(json.dumps({
                "client_order_id": o.client_order_id, "symbol": o.symbol, "side": str(o.side),
                "quantity": o.quantity, "type": str(o.order_type), "tif": str(o.time_in_force),
                "route_id": o.route_id, "limit_price": o.limit_price, "stop_price": o.stop_price,
                "submitted_ts": view.submitted_ts, "status": str(view.status), "reason": view.reason,
                "filled_quantity": view.filled_quantity, "average_price": view.average_price,
                "fills": len(view.fills),
            }) + "\n")

    stats = driver.stats
    summary = {
        "env": "paper",
        "inputs": {"quotes": [str(p) for p in quotes], "trades": [str(p) for p in trades],
                   "bars": [str(p) for p in bars], "orders": str(orders), "routes": str(routes), "seed": seed},
        "counts": {"quotes": stats.quotes, "trades": stats.trades, "orders": stats.orders, "fills": stats.fills,
                   **dict(sorted(counts.items()))},
        "ledger": ledger.snapshot(),
        "slippage": {
            "all": stats.slippage_summary(),
            "by_route": {k: _summary(v) for k, v in sorted(by_route.items())},
            "by_symbol": {k: _summary(v) for k, v in sorted(by_symbol.items())},
        },
        "fills_hash": stats.fills_hash,
        "last_ts": stats.last_ts,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values)
    return {"count": int(arr.size), "mean_bps": float(arr.mean()), "median_bps": float(np.median(arr)),
            "p95_bps": float(np.percentile(arr, 95)), "max_bps": float(arr.max())}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="paper_replay", description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", action="append", default=[], type=Path, help="quote file (repeatable)")
    parser.add_argument("--trades", action="append", default=[], type=Path, help="trade file (repeatable)")
    parser.add_argument("--bars", action="append", default=[], type=Path, help="bar file (repeatable)")
    parser.add_argument("--orders", type=Path, help="scripted orders (or --session)")
    parser.add_argument("--session", type=Path, help="strategy-driven replay of a session file (or --orders)")
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="config directory the session file is validated against")
    parser.add_argument("--routes", type=Path, default=Path("config/policies/execution_routes.json"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--capital", type=float, default=1_000_000.0)
    parser.add_argument("--symbol", default=None, help="symbol for files without a symbol column")
    parser.add_argument("--displayed-size", type=float, default=1_000_000.0,
                        help="displayed size assumed for quotes without sizes")
    parser.add_argument("--bar-spread-bps", type=float, default=2.0)
    parser.add_argument("--bar-volume-in-quote-currency", action="store_true")
    parser.add_argument("--quarantine", action="store_true", help="drop bad data rows (counted) instead of failing")
    return parser


def options_from(args) -> ImportOptions:
    return ImportOptions(symbol=args.symbol, default_displayed_size=args.displayed_size,
                         bar_spread_bps=args.bar_spread_bps,
                         bar_volume_in_quote_currency=args.bar_volume_in_quote_currency,
                         on_bad="quarantine" if args.quarantine else "reject")


def run_from_args(args) -> dict:
    if (args.orders is None) == (args.session is None):
        raise ReplayInputError("give exactly one of --orders (scripted orders) or --session (a strategy)")
    if args.session is not None:
        return run_session(session_file=args.session, config_dir=args.config_dir, quotes=args.quotes,
                           trades=args.trades, bars=args.bars, out=args.out, options=options_from(args))
    return run(quotes=args.quotes, trades=args.trades, bars=args.bars, orders=args.orders, routes=args.routes,
               out=args.out, seed=args.seed, capital=args.capital, options=options_from(args))


def run_session(*, session_file: Path, config_dir: Path, quotes: Sequence[Path] = (), trades: Sequence[Path] = (),
                bars: Sequence[Path] = (), out: Path, options: ImportOptions | None = None) -> dict:
    """Strategy-driven replay: the session's own chain decides, exactly as a real-time step would."""
    from ifns_paper.config import load_config_dir
    from ifns_paper.engine.session import SessionEngine
    from ifns_paper.session_setup import setup_from_bundle

    bundle = load_config_dir(config_dir, extra_session_files=[session_file])
    session_id = next(sid for sid, (label, _) in bundle.sessions.items()
                      if Path(label).resolve() == session_file.resolve() or label == str(session_file))
    options = options or ImportOptions()
    batches = _market_batches(quotes, trades, bars, options)
    engine = SessionEngine(setup_from_bundle(bundle, session_id))
    _, definition = bundle.sessions[session_id]
    return replay_engine(engine, interleave(batches), out=out, session_id=session_id,
                         symbols=list(definition.symbols), benchmark=definition.benchmark)


SERIES_FIELDS = ("ts", "equity", "cash", "realized", "unrealized", "fees", "gross", "net", "drawdown", "positions",
                 "marks")


def replay_engine(engine, items: Iterable, *, out: Path, session_id: str, symbols: list[str], benchmark: str,
                  env: str = "paper", summary_id: str | None = None, resume: bool = False) -> dict:
    """Run a session's engine over ``items`` — quote and trade runs, and clocks (``int`` ns:
    nothing older will come), in stream order — as fast as possible, writing what it did to
    ``out``: ``events.ndjson``, ``fills.ndjson``, ``series.ndjson`` (a sample a second of
    market time), ``minutes.ndjson`` (those on whole minutes), ``orders.ndjson``,
    ``paper_summary.json`` (the metrics' summary object, ``env`` and ``summary_id`` — the
    session id by default — in it) and ``summary.json`` (counts, ledger, fills hash);
    returns the latter.

    With ``resume`` the engine goes on from where an earlier call on the same ``out`` left it
    (the caller restores the engine it pickled then): the record files are appended to and
    the summaries cover everything from the first call on — the same files and figures as
    one call over all the items."""
    from ifns_paper.engine.marketdata import QuoteBatch

    out.mkdir(parents=True, exist_ok=True)
    mode = "a" if resume else "w"
    with (out / "events.ndjson").open(mode) as events_file, (out / "fills.ndjson").open(mode) as fills_file, \
            (out / "series.ndjson").open(mode) as series_file, (out / "minutes.ndjson").open(mode) as minutes_file:
        for item in items:
            if isinstance(item, int):
                records = engine.advance_to(item)
            else:
                records = engine.on_quotes(item) if isinstance(item, QuoteBatch) else engine.on_trades(item)
            for point in engine.drain_series():  # drained as it goes: a long replay holds none in memory
                line = json.dumps({f: getattr(point, f) for f in SERIES_FIELDS}) + "\n"
                series_file.write(line)
                if point.ts % MINUTE_NS == 0:
                    minutes_file.write(line)
            for rec in records:
                events_file.write(json.dumps({"env": env, "lane": engine.setup.lane, "session_id": session_id,
                                              "type": rec.type, "ts": rec.ts, "payload": rec.payload}) + "\n")
                if rec.type == "order_filled":
                    fills_file.write(json.dumps(rec.payload) + "\n")
    with (out / "orders.ndjson").open("w") as orders_file:
        for coid in sorted(engine.broker._orders):
            view = engine.broker.order(coid)
            orders_file.write(json.dumps({"client_order_id": coid, "decision_id": view.order.decision_id,
                                          "symbol": view.order.symbol, "side": str(view.order.side),
                                          "quantity": view.order.quantity, "status": str(view.status),
                                          "filled_quantity": view.filled_quantity, "reason": view.reason}) + "\n")
    return _summaries(engine, out, session_id=session_id, symbols=symbols, benchmark=benchmark, env=env,
                      summary_id=summary_id)


def minute_series(out: Path) -> list[dict]:
    """A replay's equity samples at the summaries' resolution (``thin_to_minutes``): those on
    whole minutes, and the last one; each with ``ts_ns``."""
    series = [json.loads(line) for line in _lines(out / "minutes.ndjson")]
    last = _last_line(out / "series.ndjson")
    if last is not None:
        last = json.loads(last)
        if not series or series[-1]["ts"] != last["ts"]:
            series.append(last)
    for row in series:
        row["ts_ns"] = row.pop("ts")
    return series


def _lines(path: Path) -> Iterable[str]:
    if path.is_file():
        with path.open() as f:
            yield from (line for line in f if line.strip())


def _last_line(path: Path) -> str | None:
    """The last line of a text file, read from its end."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        size = f.seek(0, 2)
        block = b""
        while size > 0:
            step = min(4096, size)
            size -= step
            f.seek(size)
            block = f.read(step) + block
            lines = block.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2 or size == 0:
                return lines[-1].decode() or None
    return None


def _summaries(engine, out: Path, *, session_id: str, symbols: list[str], benchmark: str, env: str,
               summary_id: str | None) -> dict:
    """``paper_summary.json`` and ``summary.json`` of everything in ``out``'s record files."""
    counts: Counter[str] = Counter()
    slippage = ReplayStats()
    fills: list[dict] = []
    kept: dict[str, list[dict]] = {"dra_decision": [], "risk_breach": [], "incident": []}
    for line in _lines(out / "events.ndjson"):
        rec = json.loads(line)
        counts[rec["type"]] += 1
        if rec["type"] in kept:
            kept[rec["type"]].append({**rec["payload"], "ts": rec["ts"]})
        elif rec["type"] == "order_filled":
            fills.append(rec["payload"])
            if rec["payload"]["slippage_bps"] == rec["payload"]["slippage_bps"]:  # not NaN
                slippage.slippage_bps.append(rec["payload"]["slippage_bps"])
    metrics = summarize(
        session_id=summary_id or session_id, lane=engine.setup.lane, strategy_id=engine.setup.strategy_id,
        as_of_ns=engine.driver.stats.last_ts, final=True,
        conventions=Conventions(grid_s=60.0, calendar=calendar_of(symbols)),
        starting_capital=engine.ledger.starting_capital, ledger=engine.ledger.snapshot(),
        series=minute_series(out), fills=fills, decisions=kept["dra_decision"], orders=_order_rows(engine),
        breaches=kept["risk_breach"], incidents=kept["incident"], limits=limits_of(engine.setup.limits),
        benchmark=benchmark, carried=engine.setup.initial_positions, env=env)
    (out / "paper_summary.json").write_text(json.dumps(metrics, indent=2) + "\n")
    stats = engine.driver.stats
    summary = {"env": env, "session_id": session_id, "mode": "strategy",
               "counts": {"quotes": stats.quotes, "trades": stats.trades, "events": dict(sorted(counts.items()))},
               "ledger": engine.ledger.snapshot(), "slippage": {"all": slippage.slippage_summary()},
               "fills_hash": stats.fills_hash, "last_ts": stats.last_ts}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _order_rows(engine) -> list[dict]:
    """The engine's orders as the summary reads them (``metrics.summary``)."""
    rows = []
    for coid in sorted(engine.broker._orders):
        view = engine.broker.order(coid)
        rows.append({"client_order_id": coid, "decision_id": view.order.decision_id, "route_id": view.order.route_id,
                     "status": str(view.status), "reason": view.reason, "quantity": view.order.quantity,
                     "filled_quantity": view.filled_quantity, "submitted_ns": view.submitted_ts,
                     "first_fill_ns": view.fills[0].ts if view.fills else None})
    return rows


def _market_batches(quotes, trades, bars, options: ImportOptions) -> list:
    batches = []
    for path in quotes:
        batches += read_quotes(path, options).batches.values()
    for path in trades:
        batches += read_trades(path, options).batches.values()
    for path in bars:
        for bar_batch in read_bars(path, options).batches.values():
            batches += bars_to_l1(bar_batch, options)
    if not batches:
        raise ReplayInputError("no market data: give --quotes, --trades or --bars")
    return batches


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run_from_args(args)
    except (ReplayInputError, MarketDataError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary, args.out))
    return 0


def format_summary(summary: dict, out: Path) -> str:
    ledger, counts = summary["ledger"], summary["counts"]
    if summary.get("mode") == "strategy":
        events = counts["events"]
        return (
            f"PAPER strategy replay of {summary['session_id']}: {counts['quotes']} quotes, {counts['trades']} market "
            f"trades; "
            f"{events.get('msi_proposal', 0)} proposals, {events.get('dra_decision', 0)} decisions, "
            f"{events.get('order_submitted', 0)} orders, {events.get('order_filled', 0)} fills, "
            f"{events.get('risk_breach', 0)} breaches\n"
            f"  P&L {ledger['pnl']:.2f} (realized {ledger['realized']:.2f}, fees {ledger['fees']:.2f}); "
            f"equity {ledger['equity']:.2f}\n"
            f"  wrote {out}/orders.ndjson, fills.ndjson, events.ndjson, series.ndjson, summary.json and "
            f"paper_summary.json (the metrics a paper session's summary has: paper_report --file)"
        )
    return (
        f"PAPER replay: {counts['quotes']} quotes, {counts['trades']} trades, {counts['orders']} orders, "
        f"{counts['fills']} fills\n"
        f"  P&L {ledger['pnl']:.2f} (realized {ledger['realized']:.2f}, unrealized {ledger['unrealized']:.2f}, "
        f"fees {ledger['fees']:.2f}); cash {ledger['cash']:.2f}; equity {ledger['equity']:.2f}\n"
        f"  fills hash {summary['fills_hash']}\n"
        f"  wrote {out}/orders.ndjson, fills.ndjson, events.ndjson, summary.json"
    )


if __name__ == "__main__":
    raise SystemExit(main())
