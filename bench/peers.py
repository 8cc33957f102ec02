"""The standard workload through peer engines: NautilusTrader and backtrader.

Run by ``bench.broker_bench --peers`` (and ``bench.strategy_bench --peers``, with
``--only nautilus_strategy``) in a subprocess with the interpreter
that has the peers (``bench/.venv-peers``, see bench/README.md): NautilusTrader
1.221, the last release for Python 3.11, pins ``pandas<3`` while the project
runs pandas 3, so the peers live in their own virtualenv. Prints one JSON
object on stdout; a peer that cannot be imported is reported as
``{"status": "not installed"}``.

    python -m bench.peers --quotes 1000000 --runs 3

What is timed is each engine's own work on ready-made data objects, as for
our engine (whose timing excludes building the QuoteBatch chunks):

* NautilusTrader: QuoteTick objects are built from the numpy chunk (not
  timed); ``engine.add_data`` + ``engine.run(streaming=True)`` per chunk and
  the final ``engine.end()`` are timed. The strategy counts quotes in
  ``on_quote_tick`` and submits a market order after quote ``100k + 99``;
  the simulated venue (L1_MBP book, zero-fee instrument, default FillModel,
  no latency model) fills it against the quote it was sent on.
* NautilusTrader full pipeline (``nautilus_strategy``, for the strategy replay
  benchmark; not run unless asked for with ``--only``): the same engine, venue,
  instrument, data and timing, with a Python strategy that updates a momentum
  signal on every quote the way our ``model.momentum`` does (log mid, fast and
  slow EWMAs of it, EW volatility of the log returns, trend = (fast - slow) /
  vol, signal = tanh(trend / 4), in plain floats) and submits the market orders
  of ``--schedule`` (our session's own: same quotes, sides and quantities), or
  without one the same orders as above (quote ``100k + 99``, alternating sides).
* backtrader: one bar per quote, close = mid (the closest a bar feed gets);
  the rows are precomputed into lists (not timed); ``cerebro.run()`` is
  timed (it preloads the rows into its lines, then calls ``next`` per bar).
  Market orders with cheat-on-close fill at the close (the mid) of the bar
  they were sent on, so its P&L is checked against a mid-price fill of the
  same orders, not against the touch.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from importlib import metadata

import numpy as np

from bench.workload import Workload

STARTING_CASH = 1_000_000.0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --- NautilusTrader ---------------------------------------------------------------------------------


def _nautilus_engine(w: Workload, make_strategy):
    """BacktestEngine with the SIM venue and the zero-fee EUR/USD; ``make_strategy(iid, OrderSide,
    Quantity)`` returns the strategy to add. Returns (engine, venue, iid, strategy)."""
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Money, Quantity
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    template = CurrencyPair.to_dict(TestInstrumentProvider.default_fx_ccy("EUR/USD"))
    instrument = CurrencyPair.from_dict({**template, "maker_fee": "0", "taker_fee": "0"})
    iid = instrument.id

    engine = BacktestEngine(BacktestEngineConfig(
        trader_id="BENCH-001",
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
        run_analysis=False,
    ))
    venue = Venue("SIM")
    engine.add_venue(venue, OmsType.NETTING, AccountType.MARGIN, [Money(STARTING_CASH, USD)],
                     base_currency=USD, book_type=BookType.L1_MBP)
    engine.add_instrument(instrument)
    strategy = make_strategy(iid, OrderSide, Quantity)
    engine.add_strategy(strategy)
    return engine, venue, iid, strategy


def _nautilus_replay(engine, iid, w: Workload) -> tuple[float, float]:
    """Stream the workload through ``engine``; returns (timed seconds, build seconds not timed)."""
    from nautilus_trader.model.data import QuoteTick

    timed = build = 0.0
    for ts, bid, ask, bid_size, ask_size in w.arrays():
        t0 = time.perf_counter()
        ts_u = ts.astype(np.uint64)
        ticks = QuoteTick.from_raw_arrays_to_list(iid, 5, 0, bid, ask, bid_size, ask_size, ts_u, ts_u)
        t1 = time.perf_counter()
        engine.add_data(ticks)
        engine.run(streaming=True)
        engine.clear_data()
        t2 = time.perf_counter()
        build += t1 - t0
        timed += t2 - t1
        del ticks
    t0 = time.perf_counter()
    engine.end()
    timed += time.perf_counter() - t0
    return timed, build


def _nautilus_result(engine, venue, strategy, w: Workload, timed: float, build: float) -> dict:
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import OrderSide

    account = engine.portfolio.account(venue)
    balance_pnl = float(account.balance_total(USD).as_double()) - STARTING_CASH
    # Realized P&L from the fills themselves (cash flow; equals realized P&L when the run ends flat).
    orders = sorted(engine.cache.orders(), key=lambda o: o.ts_init)
    fills = [(1 if o.side == OrderSide.BUY else -1, float(o.filled_qty), float(o.avg_px or 0.0)) for o in orders]
    net = sum(s * q for s, q, _ in fills)
    cash_flow = -sum(s * q * p for s, q, p in fills)
    commissions = sum(float(m.as_double()) for o in orders for m in o.commissions())
    return {
        "status": "ok",
        "version": _version("nautilus_trader"),
        "quotes": strategy.seen,
        "orders": strategy.sent,
        "fills": sum(len(o.trade_ids) for o in orders),
        "filled_orders": sum(1 for o in orders if o.is_closed and float(o.filled_qty) == w.order_qty),
        "seconds": timed,
        "build_seconds_not_timed": build,
        "quotes_per_s": w.n_quotes / timed,
        "realized_pnl_balance": balance_pnl,
        "pnl_from_fills": cash_flow if net == 0 else None,
        "net_position": net,
        "commissions": commissions,
        "fill_prices_head": [p for _, _, p in fills[:4]],
    }


def run_nautilus(w: Workload) -> dict:
    from nautilus_trader.trading.strategy import Strategy

    def make_strategy(iid, OrderSide, Quantity):  # noqa: N803 (Nautilus classes)
        class EveryNth(Strategy):
            def __init__(self) -> None:
                super().__init__()
                self.seen = 0
                self.sent = 0
                self.qty = Quantity.from_int(int(w.order_qty))

            def on_start(self) -> None:
                self.subscribe_quote_ticks(iid)

            def on_quote_tick(self, tick) -> None:
                i = self.seen
                self.seen = i + 1
                if i % w.order_every == w.order_offset:
                    side = OrderSide.BUY if self.sent % 2 == 0 else OrderSide.SELL
                    self.sent += 1
                    self.submit_order(self.order_factory.market(iid, side, self.qty))

        return EveryNth()

    engine, venue, iid, strategy = _nautilus_engine(w, make_strategy)
    timed, build = _nautilus_replay(engine, iid, w)
    result = _nautilus_result(engine, venue, strategy, w, timed, build)
    engine.dispose()
    return result


# The feature spec of ifns_paper/engine/features.py (FeatureSpec defaults) and model.momentum's scale.
FAST_HALFLIFE, SLOW_HALFLIFE, VOL_HALFLIFE, MOMENTUM_SCALE = 20.0, 200.0, 100.0, 4.0


def run_nautilus_strategy(w: Workload, schedule: list | None = None) -> dict:
    """NautilusTrader's full pipeline with a Python strategy: a momentum signal updated on every
    quote; market orders either as ``schedule`` says — ``[quote index, side (+1 buy, -1 sell),
    quantity]``, our session's own orders (``strategy_bench`` passes them: the same decisions) —
    or, without one, one every 100 quotes. Same engine, venue, data and timing as run_nautilus."""
    from nautilus_trader.trading.strategy import Strategy

    planned = {int(i): (int(side), float(qty)) for i, side, qty in schedule} if schedule is not None else None

    def make_strategy(iid, OrderSide, Quantity):  # noqa: N803 (Nautilus classes)
        class Momentum(Strategy):
            """Per quote, what FeatureEngine + MomentumModel compute for it, one value at a time:
            x = log mid, ret = x - previous x, fast/slow = EWMA of x (seeded with the first x),
            var = EWMA of ret**2 (from 0), vol = sqrt(var), trend = (fast - slow) / vol (0 while
            vol is 0), signal = tanh(trend / 4). Each EWMA is y = a*x + (1 - a)*y, the recursion
            lfilter runs in features.py. The signal is kept (last value, count of positive
            quotes) but does not pick the orders: with a schedule, the orders our session sent,
            at the same quotes with the same sides and quantities (the decisions are the same,
            so the venue's work is the same); without one, order k at quote 100k + 99, buy for
            even k, sell for odd k, as in the broker workload (P&L checkable against the data)."""

            def __init__(self) -> None:
                super().__init__()
                self.seen = 0
                self.sent = 0
                self.qty = Quantity.from_int(int(w.order_qty))
                self.a_fast = 1.0 - 0.5 ** (1.0 / FAST_HALFLIFE)
                self.a_slow = 1.0 - 0.5 ** (1.0 / SLOW_HALFLIFE)
                self.a_var = 1.0 - 0.5 ** (1.0 / VOL_HALFLIFE)
                self.c_fast, self.c_slow, self.c_var = (-(a - 1.0) for a in (self.a_fast, self.a_slow, self.a_var))
                self.last_x = self.fast = self.slow = math.nan
                self.var = 0.0
                self.trend = self.signal = 0.0
                self.positive = 0

            def on_start(self) -> None:
                self.subscribe_quote_ticks(iid)

            def on_quote_tick(self, tick) -> None:
                x = math.log((tick.bid_price.as_double() + tick.ask_price.as_double()) / 2.0)
                i = self.seen
                if i == 0:
                    self.last_x = self.fast = self.slow = x
                ret = x - self.last_x
                self.last_x = x
                fast = self.fast = self.a_fast * x + self.c_fast * self.fast
                slow = self.slow = self.a_slow * x + self.c_slow * self.slow
                var = self.var = self.a_var * (ret * ret) + self.c_var * self.var
                vol = math.sqrt(var)
                trend = (fast - slow) / vol if vol > 0.0 else 0.0
                signal = math.tanh(trend / MOMENTUM_SCALE)
                self.trend, self.signal = trend, signal
                if signal > 0.0:
                    self.positive += 1
                self.seen = i + 1
                if planned is not None:
                    order = planned.get(i)
                    if order is not None:
                        side = OrderSide.BUY if order[0] > 0 else OrderSide.SELL
                        self.sent += 1
                        self.submit_order(self.order_factory.market(iid, side, Quantity.from_int(int(order[1]))))
                elif i % w.order_every == w.order_offset:
                    side = OrderSide.BUY if self.sent % 2 == 0 else OrderSide.SELL
                    self.sent += 1
                    self.submit_order(self.order_factory.market(iid, side, self.qty))

        return Momentum()

    engine, venue, iid, strategy = _nautilus_engine(w, make_strategy)
    timed, build = _nautilus_replay(engine, iid, w)
    result = _nautilus_result(engine, venue, strategy, w, timed, build)
    result.update({"last_trend": strategy.trend, "last_signal": strategy.signal,
                   "quotes_signal_positive": strategy.positive})
    engine.dispose()
    return result


# --- backtrader ------------------------------------------------------------------------------------


def run_backtrader(w: Workload) -> dict:
    import backtrader as bt

    # Precompute the rows (not timed): float day numbers as backtrader's date2num makes them.
    days, mids = [], []
    for ts, bid, ask, _bs, _as in w.arrays():
        days.append(719_163.0 + ts / 86_400e9)  # date2num(1970-01-01) == 719163.0
        mids.append((bid + ask) / 2.0)
    day_list = np.concatenate(days).tolist()
    mid_list = np.concatenate(mids).tolist()
    del days, mids

    class Rows(bt.feed.DataBase):
        params = (("timeframe", bt.TimeFrame.Ticks),)

        def start(self):
            super().start()
            self._i = 0

        def _load(self):
            i = self._i
            if i >= len(day_list):
                return False
            self._i = i + 1
            mid = mid_list[i]
            self.lines.datetime[0] = day_list[i]
            self.lines.open[0] = self.lines.high[0] = self.lines.low[0] = self.lines.close[0] = mid
            self.lines.volume[0] = 0.0
            self.lines.openinterest[0] = 0.0
            return True

    class EveryNth(bt.Strategy):
        def __init__(self):
            self.seen = 0
            self.sent = 0
            self.executed = 0

        def notify_order(self, order):
            if order.status == order.Completed:
                self.executed += 1

        def next(self):
            i = self.seen
            self.seen = i + 1
            if i % w.order_every == w.order_offset:
                if self.sent % 2 == 0:
                    self.buy(size=w.order_qty)
                else:
                    self.sell(size=w.order_qty)
                self.sent += 1

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(Rows())
    cerebro.addstrategy(EveryNth)
    cerebro.broker.setcash(STARTING_CASH)
    cerebro.broker.set_coc(True)  # fill market orders at the close of the bar they were sent on
    t0 = time.perf_counter()
    [strategy] = cerebro.run()
    timed = time.perf_counter() - t0
    broker = cerebro.broker
    position = broker.getposition(strategy.data).size
    return {
        "status": "ok",
        "version": _version("backtrader"),
        "quotes": strategy.seen,
        "orders": strategy.sent,
        "seconds": timed,
        "quotes_per_s": w.n_quotes / timed,
        # Value change: cash plus any position marked at the last close (= last mid). backtrader
        # executes an order on the bar after it was sent (at the close of the bar it was sent on,
        # with cheat-on-close), so the order sent on the last bar never executes; marking the
        # position it would have closed at that bar's mid gives the same P&L.
        "pnl_at_mid_marked": broker.getvalue() - STARTING_CASH,
        "net_position": position,
        "executed_orders": strategy.executed,
    }


# --- driver -------------------------------------------------------------------------------------------

PEERS = {"nautilus_trader": ("nautilus_trader", run_nautilus), "backtrader": ("backtrader", run_backtrader),
         "nautilus_strategy": ("nautilus_trader", run_nautilus_strategy)}
DEFAULT_PEERS = ("nautilus_trader", "backtrader")  # broker_bench's; nautilus_strategy only with --only


def measure(name: str, w: Workload, runs: int, **kwargs) -> dict:
    module, fn = PEERS[name]
    try:
        __import__(module)
    except ImportError as exc:
        return {"status": "not installed", "detail": str(exc)}
    try:
        all_runs = [fn(w, **kwargs) for _ in range(runs)]
    except Exception as exc:  # a peer failing must not take the benchmark down
        return {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}
    rates = [r["quotes_per_s"] for r in all_runs]
    out = dict(all_runs[-1])
    out.update({
        "n_quotes": w.n_quotes,
        "runs": [{"seconds": r["seconds"], "quotes_per_s": r["quotes_per_s"]} for r in all_runs],
        "median_quotes_per_s": statistics.median(rates),
        "python": sys.version.split()[0],
    })
    out.pop("seconds", None)
    out.pop("quotes_per_s", None)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quotes", type=int, default=1_000_000, help="quotes for NautilusTrader")
    p.add_argument("--backtrader-quotes", type=int, default=None, help="quotes for backtrader (default: --quotes)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--backtrader-runs", type=int, default=None)
    p.add_argument("--only", choices=sorted(PEERS), action="append")
    p.add_argument("--schedule", default=None,
                   help="nautilus_strategy: a JSON file of [quote index, side, quantity] orders to send")
    args = p.parse_args(argv)
    result = {}
    for name in args.only or DEFAULT_PEERS:
        n = args.backtrader_quotes if name == "backtrader" and args.backtrader_quotes else args.quotes
        runs = args.backtrader_runs if name == "backtrader" and args.backtrader_runs else args.runs
        kwargs = {}
        if name == "nautilus_strategy" and args.schedule:
            with open(args.schedule) as f:
                kwargs["schedule"] = json.load(f)
        result[name] = measure(name, Workload(n_quotes=n), runs, **kwargs)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
