"""The Binance client against a real WebSocket server on 127.0.0.1 playing the recording."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from ifns_paper.engine.marketdata import Quote, Trade
from ifns_paper.feeds.binance import BinanceStream, FeedHealth, FeedState, parse_frame
from tests.feeds.wsreplay import ReplayServer, recorded_frames

FRAMES = recorded_frames()
EXPECTED = [parse_frame(f, 0) for f in FRAMES]
EXPECTED_TRADES = [r for r in EXPECTED if isinstance(r, Trade)]
EXPECTED_QUOTES = [(q.bid, q.ask, q.bid_size, q.ask_size) for q in EXPECTED if isinstance(q, Quote)]
LAST_QUOTE = EXPECTED_QUOTES[-1]  # the recording ends with a quote
PATH = "/stream?streams=btcusdt@bookTicker/btcusdt@trade"


class Sink:
    """Collects what the client dispatches; stops it once the last recorded frame arrived."""

    def __init__(self) -> None:
        self.quotes: list[Quote] = []
        self.trades: list[Trade] = []
        self.health: list[FeedHealth] = []
        self.stop = asyncio.Event()

    def on_quote(self, q: Quote) -> None:
        self.quotes.append(q)
        if (q.bid, q.ask, q.bid_size, q.ask_size) == LAST_QUOTE:
            self.stop.set()

    def on_trade(self, t: Trade) -> None:
        self.trades.append(t)

    def on_health(self, h: FeedHealth) -> None:
        self.health.append(h)

    @property
    def states(self) -> list[FeedState]:
        return [h.state for h in self.health]

    def quote_values(self) -> list[tuple]:
        return [(q.bid, q.ask, q.bid_size, q.ask_size) for q in self.quotes]


def client(server: ReplayServer, sink: Sink, **kw) -> BinanceStream:
    kw.setdefault("backoff", (0.05, 0.1))
    kw.setdefault("stale_after_s", 5.0)
    return BinanceStream(server.url, ["BTCUSDT"], sink.on_quote, sink.on_trade, sink.on_health,
                         proxy=None, **kw)


async def play(server: ReplayServer, sink: Sink, limit_s: float = 8.0, **kw) -> BinanceStream:
    c = client(server, sink, **kw)
    async with asyncio.timeout(limit_s):
        await c.run(sink.stop)
    return c


def test_all_recorded_frames_are_received_and_parsed():
    async def main():
        sink = Sink()
        async with ReplayServer(FRAMES) as server:
            t0 = time.time_ns()
            c = await play(server, sink)
        return sink, server, c, t0

    sink, server, c, t0 = asyncio.run(main())
    assert server.paths == [PATH]
    assert sink.trades == EXPECTED_TRADES  # trade ts is the exchange's T, so records are identical
    assert sink.quote_values() == EXPECTED_QUOTES
    assert (len(sink.quotes), len(sink.trades)) == (451, 2001)
    ts = [q.ts for q in sink.quotes]  # quotes are stamped with the receive (wall clock) time
    assert ts == sorted(ts) and t0 <= ts[0] <= time.time_ns()
    h = c.health()
    assert (h.messages, h.quotes, h.trades, h.ignored, h.parse_errors) == (2452, 451, 2001, 0, 0)
    assert (h.reconnects, h.connect_failures, h.stale_events, h.trades_missed) == (0, 0, 0, 0)
    assert h.last_message_age_s is not None and 0 <= h.last_message_age_s < 5
    assert sink.states == [FeedState.CONNECTED, FeedState.STOPPED]


def test_dropped_connection_reconnects_and_loses_nothing():
    async def main():
        sink = Sink()
        async with ReplayServer(FRAMES, drop_after=1000) as server:
            c = await play(server, sink)
        return sink, server, c

    sink, server, c = asyncio.run(main())
    assert server.connections == 2 and server.paths == [PATH, PATH]
    assert sink.trades == EXPECTED_TRADES and sink.quote_values() == EXPECTED_QUOTES
    h = c.health()
    assert h.reconnects == 1 and h.messages == len(FRAMES) and h.trades_missed == 0
    assert h.connect_failures == 0 and h.stale_events == 0
    assert sink.states == [FeedState.CONNECTED, FeedState.DISCONNECTED, FeedState.CONNECTED, FeedState.STOPPED]
    assert "connection closed" in sink.health[1].last_error


def test_reset_connection_reconnects_and_counts_missed_trades():
    """TCP reset without a close frame: whatever was in flight is lost, and the trade-id gap says how much."""

    async def main():
        sink = Sink()
        async with ReplayServer(FRAMES, drop_after=1200, abort=True) as server:
            c = await play(server, sink)
        return sink, server, c

    sink, server, c = asyncio.run(main())
    h = c.health()
    assert server.connections == 2 and h.reconnects == 1
    # on loopback the kernel usually delivers everything written before the reset; either way
    # what arrived is in order and the id gaps account for the rest
    remaining = iter(EXPECTED_TRADES)
    assert all(t in remaining for t in sink.trades)  # an in-order subsequence of the recording
    assert len(sink.trades) + h.trades_missed == len(EXPECTED_TRADES)
    assert sink.states[:2] == [FeedState.CONNECTED, FeedState.DISCONNECTED]
    assert "connection closed" in sink.health[1].last_error


def test_silent_server_is_reported_stale_then_reconnected():
    async def main():
        sink = Sink()
        async with ReplayServer(FRAMES, silent_after=800) as server:
            t0 = time.monotonic()
            c = await play(server, sink, stale_after_s=0.3)
            took = time.monotonic() - t0
        return sink, server, c, took

    sink, server, c, took = asyncio.run(main())
    assert sink.states == [FeedState.CONNECTED, FeedState.STALE, FeedState.CONNECTED, FeedState.STOPPED]
    stale = sink.health[1]
    assert stale.stale_events == 1 and stale.messages == 800
    assert stale.last_message_age_s is not None and stale.last_message_age_s >= 0.3
    assert "no message for 0.3 s" in stale.last_error
    h = c.health()
    assert h.reconnects == 1 and server.connections == 2 and h.stale_events == 1
    assert sink.trades == EXPECTED_TRADES and sink.quote_values() == EXPECTED_QUOTES
    assert took < 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_at_start_backs_off_then_connects():
    async def main():
        sink = Sink()
        port = free_port()
        server = ReplayServer(FRAMES, port=port)
        c = client(server, sink, backoff=(0.05, 0.1))
        task = asyncio.create_task(c.run(sink.stop))
        await asyncio.sleep(0.4)
        failures_while_down = c.health().connect_failures
        async with server:
            async with asyncio.timeout(8):
                await task
        return sink, c, failures_while_down

    sink, c, failures_while_down = asyncio.run(main())
    # attempts at ~0, 0.05, 0.15, 0.25, 0.35 s: 0.05 then 0.1 repeating (the cap)
    assert 3 <= failures_while_down <= 6
    h = c.health()
    assert h.reconnects == 0 and h.connect_failures >= failures_while_down
    assert sink.states[0] == FeedState.DISCONNECTED and "connect failed" in sink.health[0].last_error
    assert sink.states[-2:] == [FeedState.CONNECTED, FeedState.STOPPED]
    assert sink.trades == EXPECTED_TRADES


def test_bad_frames_are_counted_and_skipped_async_callbacks_and_injected_clock():
    bad = ["{oops", json.dumps({"stream": "btcusdt@trade", "data": {"s": "BTCUSDT", "p": "1"}}),
           json.dumps({"result": None, "id": 1})]
    frames = FRAMES[:10] + bad + FRAMES[10:]

    async def main():
        sink = Sink()
        got = []

        async def on_quote(q):  # coroutine callbacks are awaited
            await asyncio.sleep(0)
            got.append(q)
            sink.on_quote(q)

        async with ReplayServer(frames) as server:
            c = BinanceStream(server.url, ["btcusdt"], on_quote, sink.on_trade, None, proxy=None,
                              wall_clock_ns=lambda: 42)
            async with asyncio.timeout(8):
                await c.run(sink.stop)
        return sink, c, got

    sink, c, got = asyncio.run(main())
    h = c.health()
    assert (h.messages, h.parse_errors, h.ignored) == (len(frames), 2, 1)
    assert "missing field" in h.last_error or "not valid JSON" in h.last_error
    assert len(got) == 451 and {q.ts for q in got} == {42}
    assert sink.trades == EXPECTED_TRADES


def test_stop_returns_promptly_from_a_silent_connection():
    async def main():
        sink = Sink()
        async with ReplayServer(FRAMES, silent_after=0) as server:
            c = client(server, sink, stale_after_s=30.0)
            task = asyncio.create_task(c.run(sink.stop))
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            sink.stop.set()
            await asyncio.wait_for(task, 3)
            return sink, time.monotonic() - t0

    sink, took = asyncio.run(main())
    assert took < 1.0
    assert sink.states == [FeedState.CONNECTED, FeedState.STOPPED]
    assert sink.health[-1].last_message_age_s is None


def test_callback_errors_propagate_and_the_client_reports_stopped():
    async def main():
        sink = Sink()

        def on_trade(t):
            raise RuntimeError("consumer bug")

        async with ReplayServer(FRAMES) as server:
            c = BinanceStream(server.url, ["BTCUSDT"], sink.on_quote, on_trade, sink.on_health, proxy=None)
            try:
                async with asyncio.timeout(5):
                    await c.run(sink.stop)
            except RuntimeError as exc:
                return sink, exc
        return sink, None

    sink, exc = asyncio.run(main())
    assert str(exc) == "consumer bug"
    assert sink.states == [FeedState.CONNECTED, FeedState.STOPPED]
