"""Feed runners: one live feed each, publishing to the market-data bus (asyncio).

A runner's ``run(stop, io)`` publishes until ``stop`` is set, then returns;
any exception means the feed failed (the ``Supervisor`` logs it, reports it
and restarts the runner with backoff). Blocking work (Redis, and whatever
``FeedBus.after_publish`` does) goes through ``await io(fn, *args)`` so the
event loop keeps serving the other feeds. A runner keeps its counters
across restarts; ``link`` is what it knows about its source, the
supervisor adds staleness (no rows for ``stale_after_s``).

* ``SyntheticRunner``: a seeded ``SyntheticMarket`` advanced to the wall
  clock every ``interval_s``; everything before ``until`` is published with
  a clock at ``until - 1`` (even when there are no rows).
* ``ReplayRunner``: a ``ReplayMarket`` (recorded file as if live) the same
  way; at max speed chunk after chunk, each with a clock at its last stamp.
  A finished (non-looping) replay publishes a last clock and stops.
* ``BinanceRunner``: the Binance combined-stream client; records are
  buffered and published every ``interval_s``.

Binance timestamps: **every record is stamped with its receive time** (the
wall clock when the client hands it over), clamped so it never goes below
what the stream already holds. Binance spot ``bookTicker`` has no exchange
time at all (quotes are receive-stamped by the adapter), while trades carry
the exchange's ``T``; mixing the two clocks in one stream would put a trade
(``T`` a few ms before its arrival) behind quotes already published, and
steps would drop it. Clamping trades up to the last quote would keep the
order but give them an arbitrary time anyway; stamping both by arrival
keeps the stream in the order a live consumer saw the data, with one clock
for both kinds (latency and staleness models compare quote and trade times).
The cost: a trade's exchange time is not in the stream (the bus has no
field for it). Because the runner does the stamping, it can also promise
clocks: at each flush while the connection is up it publishes a clock at
``max(now - 1, last stamp)`` and stamps every later record above it. No
clocks while disconnected or stale: silence there is not a quiet market.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any

from ifns_paper.engine.marketdata import Quote, QuoteBatch, Trade, TradeBatch
from ifns_paper.engine.replay import interleave
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.replay import ReplayData, ReplayMarket
from ifns_paper.feeds.synthetic import SyntheticMarket

Io = Callable[..., Awaitable[Any]]  # ``await io(fn, *args)``: run a blocking call off the event loop


async def inline_io(fn, *args):
    """An ``Io`` that calls ``fn`` right here (tests, single-feed tools)."""
    return fn(*args)


class FeedStatus(StrEnum):
    """Feed health as reported in telemetry."""

    OK = "ok"
    STALE = "stale"  # connected, but no rows for stale_after_s
    DISCONNECTED = "disconnected"  # source lost, or the runner crashed and is backing off
    STOPPED = "stopped"  # stopped on request, or a replay that finished


class Link(StrEnum):
    """What a runner knows about its source."""

    STARTING = "starting"
    UP = "up"
    STALE = "stale"  # the source itself says so (Binance client)
    DOWN = "down"
    STOPPED = "stopped"


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class FeedRunner(ABC):
    """Counters and publishing shared by the runners.

    rows_total: rows published since the process started; last_tick_ns: wall time
    [ns] of the last publish with rows; glitches: counts by kind; finished: the
    feed has nothing more to publish (not restarted)."""

    kind = "feed"

    def __init__(self, name: str, bus: FeedBus, *, stale_after_s: float,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0")
        self.name, self.bus = name, bus
        self.stale_after_s = float(stale_after_s)
        self.wall_ns = wall_ns
        self.rows_total = 0
        self.last_tick_ns: int | None = None
        self.started_ns: int | None = None
        self.glitches: Counter[str] = Counter()
        self.link = Link.STARTING
        self.detail = ""
        self.finished = False
        self.on_change: Callable[[], None] = lambda: None  # set by the supervisor

    def set_link(self, link: Link, detail: str | None = None) -> None:
        changed = link != self.link
        self.link = link
        if detail is not None:
            self.detail = detail
        if changed:
            self.on_change()

    def status(self, now_ns: int) -> FeedStatus:
        if self.link == Link.STOPPED:
            return FeedStatus.STOPPED
        if self.link in (Link.DOWN, Link.STARTING):
            return FeedStatus.DISCONNECTED
        if self.link == Link.STALE:
            return FeedStatus.STALE
        since = self.last_tick_ns if self.last_tick_ns is not None else self.started_ns
        if since is not None and now_ns - since > self.stale_after_s * 1e9:
            return FeedStatus.STALE
        return FeedStatus.OK

    def last_tick_age_ms(self, now_ns: int) -> int | None:
        return None if self.last_tick_ns is None else max(0, (now_ns - self.last_tick_ns) // 1_000_000)

    async def publish(self, io: Io, batches: Sequence[QuoteBatch | TradeBatch], clock_ns: int | None) -> int:
        rows = await io(self.bus.publish, batches, clock_ns)
        if rows:
            self.rows_total += rows
            self.last_tick_ns = self.wall_ns()
        return rows

    @abstractmethod
    async def run(self, stop: asyncio.Event, io: Io) -> None:
        """Publish until ``stop`` is set or the source is exhausted (then set ``finished``)."""


class SyntheticRunner(FeedRunner):
    """make_market(start_ns) -> a fresh ``SyntheticMarket`` (a restart starts a new one
    at the wall clock, never before what the stream holds)."""

    kind = "synthetic"

    def __init__(self, name: str, bus: FeedBus, make_market: Callable[[int], SyntheticMarket], *,
                 interval_s: float, stale_after_s: float = 2.0,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(name, bus, stale_after_s=stale_after_s, wall_ns=wall_ns)
        self.make_market, self.interval_s = make_market, interval_s

    async def run(self, stop: asyncio.Event, io: Io) -> None:
        start = max(self.wall_ns(), await io(self.bus.next_ts_ns))
        market = self.make_market(start)
        self.started_ns = self.wall_ns()
        self.set_link(Link.UP, "")
        until = start
        while not stop.is_set():
            tick = time.monotonic()
            until = max(until, self.wall_ns())
            # advance(until) returns everything with ts < until: a clock at until - 1 holds
            quotes, trades, glitch_records = market.advance(until)
            await self.publish(io, list(interleave([*quotes, *trades])), until - 1)
            for g in glitch_records:
                self.glitches[str(g.kind)] += 1
            await wait_or_stop(stop, self.interval_s - (time.monotonic() - tick))


class ReplayRunner(FeedRunner):
    """A recorded file as if live; ``speed`` None = as fast as possible (``max_rows`` a chunk).

    The market (and so the mapping file time -> wall time) is made on the first run and
    kept across restarts: after an outage the rows it covered are published at once."""

    kind = "replay"

    def __init__(self, name: str, bus: FeedBus, data: ReplayData, *, speed: float | None, loop: bool,
                 interval_s: float, stale_after_s: float = 10.0, max_rows: int = 5000,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(name, bus, stale_after_s=stale_after_s, wall_ns=wall_ns)
        self.data, self.speed, self.loop = data, speed, loop
        self.interval_s, self.max_rows = interval_s, max_rows
        self.market: ReplayMarket | None = None

    async def run(self, stop: asyncio.Event, io: Io) -> None:
        floor = await io(self.bus.next_ts_ns)
        if self.market is None:
            self.market = ReplayMarket(self.data, start_ns=max(self.wall_ns(), floor), speed=self.speed,
                                       loop=self.loop)
        market = self.market
        self.started_ns = self.wall_ns()
        self.set_link(Link.UP, "")
        until = max(market.start_ns, floor)
        while not stop.is_set() and not market.finished:
            tick = time.monotonic()
            if self.speed is None:
                batches = market.next_chunk(max(self.wall_ns(), await io(self.bus.next_ts_ns)), self.max_rows)
                await self.publish(io, batches, market.last_stamp)
                self.glitches["loops"] = market.loops if self.loop else 0
                await asyncio.sleep(0)  # let the other feeds and the health reporter run
                continue
            until = max(until, self.wall_ns())
            await self.publish(io, market.advance(until), until - 1)
            if self.loop:
                self.glitches["loops"] = market.loops
            await wait_or_stop(stop, self.interval_s - (time.monotonic() - tick))
        if market.finished:
            self.finished = True
            self.set_link(Link.STOPPED, f"replay of {self.data.source} finished")


class BinanceRunner(FeedRunner):
    """The Binance combined stream; ``stream_factory`` builds the client (``BinanceStream``
    signature), records are receive-stamped (module docstring) and flushed every
    ``interval_s``. The client reconnects by itself; a crash (e.g. the bus failing) ends
    ``run`` and the supervisor restarts it."""

    kind = "binance_ws"

    def __init__(self, name: str, bus: FeedBus, *, url: str, symbols: Sequence[str], interval_s: float,
                 stale_after_s: float = 5.0, backoff: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
                 proxy: str | bool | None = True, stream_factory: Callable[..., Any] | None = None,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(name, bus, stale_after_s=stale_after_s, wall_ns=wall_ns)
        self.url, self.symbols = url, tuple(symbols)
        self.interval_s, self.backoff, self.proxy = interval_s, tuple(backoff), proxy
        if stream_factory is None:
            from ifns_paper.feeds.binance import BinanceStream

            stream_factory = BinanceStream
        self.stream_factory = stream_factory
        self._buffer: list[Quote | Trade] = []
        self._floor = 0  # every record is stamped at least this
        self._base: Counter[str] = Counter()  # counters of earlier client instances
        self.stream = None

    def _stamp(self, record: Quote | Trade) -> Quote | Trade:
        ts = max(self.wall_ns(), self._floor)
        self._floor = ts
        return replace(record, ts=ts)

    def _on_record(self, record: Quote | Trade) -> None:
        self._buffer.append(self._stamp(record))

    def _on_health(self, health) -> None:
        from ifns_paper.feeds.binance import FeedState

        link = {FeedState.CONNECTED: Link.UP, FeedState.STALE: Link.STALE,
                FeedState.STOPPED: Link.STOPPED}.get(health.state, Link.DOWN)
        self._count(health)
        self.set_link(link, health.last_error or "")

    def _count(self, health) -> None:
        for key in _COUNTERS:
            value = self._base[key] + getattr(health, key)
            if value:
                self.glitches[key] = value

    async def _flush(self, io: Io, *, clock: bool) -> None:
        records, self._buffer = self._buffer, []
        clock_ns = None
        if clock:
            clock_ns = max(self.wall_ns() - 1, self._floor)
            self._floor = clock_ns + 1  # records stamped from now on are newer than the clock
        if records or clock_ns is not None:
            await self.publish(io, _runs(records), clock_ns)

    async def run(self, stop: asyncio.Event, io: Io) -> None:
        self._floor = max(self._floor, await io(self.bus.next_ts_ns))
        self._buffer = []
        self.started_ns = self.wall_ns()
        stream = self.stream_factory(self.url, self.symbols, self._on_record, self._on_record, self._on_health,
                                     stale_after_s=self.stale_after_s, backoff=self.backoff, proxy=self.proxy,
                                     wall_clock_ns=self.wall_ns)
        self.stream = stream
        self.set_link(Link.STARTING)
        client = asyncio.create_task(stream.run(stop))
        try:
            while not client.done():
                await asyncio.wait({client}, timeout=self.interval_s)
                await self._flush(io, clock=self.link == Link.UP and not client.done())
            client.result()  # re-raise what ended the client (a callback error)
            await self._flush(io, clock=False)  # what arrived after the last flush
        finally:
            if not client.done():
                client.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client
            health = stream.health()
            self._count(health)
            self._base.update({k: getattr(health, k) for k in _COUNTERS})
            self._buffer = []  # after a crash: dropped, the stream resumes at the live point anyway


_COUNTERS = ("trades_missed", "parse_errors", "reconnects", "stale_events", "connect_failures")


def _runs(records: list[Quote | Trade]) -> list[QuoteBatch | TradeBatch]:
    """Records in arrival order -> runs of one symbol and kind, same order."""
    out: list[QuoteBatch | TradeBatch] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or type(records[i]) is not type(records[start]) \
                or records[i].symbol != records[start].symbol:
            chunk = records[start:i]
            out.append(QuoteBatch.from_quotes(chunk) if isinstance(chunk[0], Quote) else TradeBatch.from_trades(chunk))
            start = i
    return out
