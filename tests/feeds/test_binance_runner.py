"""The Binance runner publishes the recorded combined stream, served by a loopback WebSocket
server, to the bus (real Redis): every record once, receive-stamped, ts non-decreasing,
clocks only while connected and always true watermarks, across a dropped connection."""

from __future__ import annotations

import asyncio

import pytest
import redis
from django.conf import settings

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import Quote, QuoteBatch, Trade, TradeBatch
from ifns_paper.feeds.binance import parse_frame
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.runners import BinanceRunner, FeedStatus, Link, inline_io
from tests.feeds.test_replay import check_order
from tests.feeds.wsreplay import ReplayServer, recorded_frames

FRAMES = recorded_frames()
RECORDS = [parse_frame(f, 0) for f in FRAMES]
KEY = marketbus.stream_key("t_binance")


@pytest.fixture
def client():
    c = redis.Redis.from_url(settings.REDIS_URL)
    c.delete(KEY)
    yield c
    c.delete(KEY)


class RecordingBus(FeedBus):
    """Notes the runner's link state whenever a clock is published."""

    runner: BinanceRunner | None = None
    clock_links: list[Link]

    def publish(self, batches, clock_ns=None):
        if clock_ns is not None:
            self.clock_links.append(self.runner.link)
        return super().publish(batches, clock_ns)


def run_against(server_kw: dict, client, *, timeout_s: float = 10.0):
    links: list[Link] = []

    async def main():
        async with ReplayServer(FRAMES, **server_kw) as server:
            bus = RecordingBus(client, "t_binance")
            bus.clock_links = []
            runner = BinanceRunner("t_binance", bus, url=server.url, symbols=["BTCUSDT"], interval_s=0.02,
                                   stale_after_s=5.0, backoff=(0.05, 0.1), proxy=None)
            runner.on_change = lambda: links.append(runner.link)
            bus.runner = runner
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop, inline_io))
            async with asyncio.timeout(timeout_s):
                while runner.stream is None or runner.stream.health().messages < len(FRAMES):
                    await asyncio.sleep(0.01)
                clocks = len(bus.clock_links)
                while len(bus.clock_links) == clocks:  # the connection stays up: a clock follows
                    await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 5)
            return runner, server, bus.clock_links

    runner, server, clock_links = asyncio.run(main())
    assert clock_links and set(clock_links) == {Link.UP}  # clocks only while connected
    return runner, server, links


def stream_records(client) -> tuple[list, list]:
    items = marketbus.read(client, KEY, None, count=100_000).batches
    data = [b for b in items if not isinstance(b, marketbus.Clock)]
    return items, data


def values(data) -> list[tuple]:
    out = []
    for b in data:
        if isinstance(b, QuoteBatch):
            out += [("q", *v) for v in zip(b.bid.tolist(), b.ask.tolist(), b.bid_size.tolist(), b.ask_size.tolist(),
                                           strict=True)]
        else:
            assert isinstance(b, TradeBatch)
            out += [("t", *v) for v in zip(b.price.tolist(), b.size.tolist(), b.aggressor.tolist(), strict=True)]
    return out


def expected_values() -> list[tuple]:
    out = []
    for r in RECORDS:
        if isinstance(r, Quote):
            out.append(("q", r.bid, r.ask, r.bid_size, r.ask_size))
        else:
            assert isinstance(r, Trade)
            out.append(("t", r.price, r.size, 1 if r.aggressor == "buy" else -1))
    return out


def test_recorded_stream_is_published_in_arrival_order_receive_stamped(client):
    runner, server, links = run_against({}, client)

    items, data = stream_records(client)
    n_rows, n_clocks = check_order(items)
    assert n_rows == len(FRAMES) == runner.rows_total == 2452
    assert values(data) == expected_values()  # every quote and trade once, in arrival order
    assert n_clocks >= 1
    # trades carry the receive time, not the exchange's 2021 trade time
    assert min(int(b.ts[0]) for b in data) > 1_700_000_000 * 10**9
    assert links[:1] == [Link.UP] and links[-1] == Link.STOPPED
    assert runner.status(0) == FeedStatus.STOPPED


def test_dropped_connection_reconnects_and_the_stream_stays_in_order(client):
    runner, server, links = run_against({"drop_after": 1000}, client)

    assert server.connections == 2
    items, data = stream_records(client)
    n_rows, _ = check_order(items)
    assert n_rows == len(FRAMES)
    assert values(data) == expected_values()
    assert links[:3] == [Link.UP, Link.DOWN, Link.UP]
    assert runner.glitches["reconnects"] == 1 and runner.glitches.get("trades_missed", 0) == 0


def test_a_restarted_runner_never_publishes_before_what_the_stream_holds(client):
    # given a stream whose last entry is a clock far in the future (another process's)
    future = 4_000_000_000 * 10**9
    FeedBus(client, "t_binance").publish([], clock_ns=future)

    runner, _, _ = run_against({}, client)

    items, data = stream_records(client)
    check_order(items)
    assert int(data[0].ts[0]) == future + 1  # clamped above the clock, then non-decreasing
