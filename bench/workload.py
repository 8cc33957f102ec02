"""The standard broker workload: one EUR/USD-like instrument, streamed in chunks.

* ``n_quotes`` quotes (1,000,000 by default), exactly 1 ms apart from ``T0``.
* Prices on the 0.00001 tick grid: the bid is a seeded random walk in ticks
  (each step -1, 0 or +1 tick with probabilities 1/4, 1/2, 1/4) from 1.10000;
  the spread is 1, 2 or 3 ticks (uniform), so a quote is never locked or crossed.
  Prices are ``ticks / 100_000`` (the double nearest each 5-decimal price).
* Displayed sizes: uniform in 100,000..5,000,000 in steps of 1,000, each side
  drawn independently. The smallest size equals the order size, so an order
  always fills in full at the touch.
* Orders: market order ``k`` (k = 0, 1, ...) is sent at the time of quote
  ``100 * k + 99``, i.e. after every 100th quote has been seen (the first after
  quote 99, not quote 0), for 100,000 units, buy for even ``k`` and sell for odd
  ``k``. ``n_quotes // 100`` orders in all; with the default 1,000,000 quotes
  that is 10,000 orders, an even number, so the run ends flat and the whole
  P&L is realized. With zero latency an order fills at the quote in force at
  its time: the quote it was sent on (buy at its ask, sell at its bid).

Every column comes from its own random stream (children of one
``SeedSequence``), so quote ``i`` is the same whatever the chunk size and
``n_quotes`` (a 200k workload is the prefix of the 1M one). Only one chunk
is alive at a time: memory does not grow with ``n_quotes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from ifns_paper.engine.marketdata import NS_PER_MS, NS_PER_SECOND, QuoteBatch
from ifns_paper.engine.orders import Order, OrderType, Side, TimeInForce
from ifns_paper.engine.replay import ScheduledOrder
from ifns_paper.engine.routes import FillModel, RouteSpec

TICK = 0.00001
TICKS_PER_UNIT = 100_000
T0 = 1_704_182_400 * NS_PER_SECOND  # 2024-01-02T08:00:00Z, a Tuesday
ROUTE_ID = "BENCH_TOUCH"


@dataclass(frozen=True)
class Workload:
    n_quotes: int = 1_000_000
    seed: int = 20_240_102
    chunk: int = 100_000
    symbol: str = "EURUSD"
    start_ticks: int = 110_000  # 1.10000
    spread_ticks: tuple[int, int] = (1, 3)
    size_range: tuple[int, int] = (100_000, 5_000_000)
    size_step: int = 1_000
    order_every: int = 100
    order_offset: int = 99  # order k at quote order_every * k + order_offset
    order_qty: float = 100_000.0
    quote_interval_ns: int = NS_PER_MS

    # --- quotes ---------------------------------------------------------------------------------

    def arrays(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (ts int64, bid, ask, bid_size, ask_size float64) per chunk of at most ``chunk`` rows."""
        seeds = np.random.SeedSequence(self.seed).spawn(4)
        step_rng, spread_rng, bid_size_rng, ask_size_rng = (np.random.Generator(np.random.PCG64(s)) for s in seeds)
        lo_sz, hi_sz = self.size_range[0] // self.size_step, self.size_range[1] // self.size_step
        level = self.start_ticks
        for start in range(0, self.n_quotes, self.chunk):
            n = min(self.chunk, self.n_quotes - start)
            # every quote's bid is the previous one's plus its own step (quote 0: start_ticks + step)
            steps = step_rng.choice(np.array([-1, 0, 0, 1], dtype=np.int64), size=n)
            bid_ticks = level + np.cumsum(steps)
            level = int(bid_ticks[-1])
            spread = spread_rng.integers(self.spread_ticks[0], self.spread_ticks[1] + 1, size=n)
            ts = T0 + (start + np.arange(n, dtype=np.int64)) * self.quote_interval_ns
            bid = bid_ticks / float(TICKS_PER_UNIT)
            ask = (bid_ticks + spread) / float(TICKS_PER_UNIT)
            bid_size = bid_size_rng.integers(lo_sz, hi_sz + 1, size=n).astype(np.float64) * self.size_step
            ask_size = ask_size_rng.integers(lo_sz, hi_sz + 1, size=n).astype(np.float64) * self.size_step
            yield ts, bid, ask, bid_size, ask_size
            del ts, bid, ask, bid_size, ask_size, bid_ticks, steps, spread  # one chunk alive, not two

    def chunks(self) -> Iterator[tuple[int, QuoteBatch]]:
        """Yield (index of the chunk's first quote, QuoteBatch)."""
        start = 0
        for cols in self.arrays():
            n = len(cols[0])
            yield start, QuoteBatch(self.symbol, *cols)
            del cols
            start += n

    # --- orders ---------------------------------------------------------------------------------

    @property
    def n_orders(self) -> int:
        if self.n_quotes <= self.order_offset:
            return 0
        return (self.n_quotes - 1 - self.order_offset) // self.order_every + 1

    def quote_ts(self, i: int) -> int:
        return T0 + i * self.quote_interval_ns

    def order_quote_index(self, k: int) -> int:
        return self.order_every * k + self.order_offset

    def order_side(self, k: int) -> Side:
        return Side.BUY if k % 2 == 0 else Side.SELL

    def orders_for(self, start: int, stop: int) -> list[ScheduledOrder]:
        """The scheduled orders sent at the times of quotes ``start <= i < stop``."""
        first = max(0, -(-(start - self.order_offset) // self.order_every))
        out = []
        k = first
        while k < self.n_orders and self.order_quote_index(k) < stop:
            order = Order(f"bench-{k}", self.symbol, self.order_side(k), self.order_qty, OrderType.MARKET,
                          TimeInForce.GTC, ROUTE_ID)
            out.append(ScheduledOrder(self.quote_ts(self.order_quote_index(k)), order))
            k += 1
        return out

    # --- the route --------------------------------------------------------------------------------

    def routes(self) -> dict[str, RouteSpec]:
        """Touch model, zero latency, zero fees, a stale threshold no quote gap reaches; what an
        order takes refills within 100 ms, before the next order on the same side (200 ms
        later): every order meets a fresh touch, so the P&L can be checked from the data."""
        return {ROUTE_ID: RouteSpec(ROUTE_ID, FillModel.TOUCH, stale_ns=3_600 * NS_PER_SECOND,
                                    refill_ns=100 * NS_PER_SECOND // 1000)}

    def params(self) -> dict:
        d = asdict(self)
        d.update({
            "instrument": "EUR/USD-like, tick 0.00001",
            "t0_ns": T0,
            "n_orders": self.n_orders,
            "first_order_quote_index": self.order_offset if self.n_orders else None,
            "order_rule": (f"market order k at the ts of quote {self.order_every}*k+{self.order_offset}, "
                           f"{self.order_qty:g} units, buy for even k, sell for odd k, GTC"),
            "fill_model": "touch (beyond_displayed=walk, never reached: sizes >= order qty)",
            "latency_ns": 0,
            "fees_bps": 0.0,
            "stale_ns": 3_600 * NS_PER_SECOND,
            "price_walk": "bid ticks: cumulative steps in {-1,0,0,+1}; spread uniform in spread_ticks",
        })
        return d


def expected_pnl(w: Workload) -> dict:
    """What the orders make if each fills in full on the quote it was sent on, computed
    straight from the data (numpy, chunk by chunk): at the touch (buy at the ask, sell at
    the bid) and at the mid (what a bar engine filling at the close would get).

    ``*_cash_flow`` is minus the money paid for the fills; ``*_marked`` adds the position
    left at the end marked at the last mid. When the run ends flat both equal the realized
    P&L before fees.
    """
    touch = mid = 0.0
    position = 0.0
    last_mid = float("nan")
    for start, batch in w.chunks():
        n = len(batch)
        first = max(0, -(-(start - w.order_offset) // w.order_every))
        idx = np.arange(first * w.order_every + w.order_offset, start + n, w.order_every) - start
        idx = idx[idx >= 0]
        ks = (idx + start - w.order_offset) // w.order_every
        idx, ks = idx[ks < w.n_orders], ks[ks < w.n_orders]
        sign = np.where(ks % 2 == 0, 1.0, -1.0)
        price = np.where(sign > 0, batch.ask[idx], batch.bid[idx])
        mids = (batch.bid[idx] + batch.ask[idx]) / 2.0
        touch -= float(np.sum(sign * w.order_qty * price))
        mid -= float(np.sum(sign * w.order_qty * mids))
        position += float(np.sum(sign)) * w.order_qty
        last_mid = float((batch.bid[-1] + batch.ask[-1]) / 2.0)
    mark = position * last_mid if position else 0.0
    return {"touch_cash_flow": touch, "touch_marked": touch + mark, "mid_cash_flow": mid,
            "mid_marked": mid + mark, "final_position": position, "last_mid": last_mid}
