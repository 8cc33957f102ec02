"""Replay feed: recorded rows re-stamped onto the wall clock, looped with continuous time,
as fast as possible; published to the bus (real Redis) with monotonic clocks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis
from django.conf import settings

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.replay import ReplayData, ReplayMarket, load_replay_file
from ifns_paper.feeds.runners import ReplayRunner, inline_io
from tests.conftest import ROOT

S = 1_000_000_000
WALL0 = 1_700_000_000 * S


def small_data() -> ReplayData:
    """AAA quotes at file times 1.0, 1.5, 3.0 s and an AAA trade at 2.0 s (4 rows, span 2 s)."""
    quotes = QuoteBatch.from_arrays("AAA", [1 * S, 3 * S // 2, 3 * S], [10.0, 10.1, 10.2], [10.5, 10.6, 10.7],
                                    [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    trades = TradeBatch.from_arrays("AAA", [2 * S], [10.3], [0.5], np.array([1], dtype=np.int8))
    return ReplayData.from_batches("small", [quotes, trades])


def rows(batches) -> list[tuple]:
    """(ts, kind, first value) of every row, in order."""
    out = []
    for b in batches:
        values = b.bid if isinstance(b, QuoteBatch) else b.price
        out += [(int(t), "q" if isinstance(b, QuoteBatch) else "t", float(v)) for t, v in zip(b.ts, values, strict=True)]
    return out


# --- re-stamping ---------------------------------------------------------------------------


def test_rows_are_restamped_onto_the_wall_clock_at_speed():
    # given a replay at twice real time starting at WALL0
    market = ReplayMarket(small_data(), start_ns=WALL0, speed=2.0, loop=False)

    # when the wall clock reaches WALL0 + 0.5 s, then + 2 s
    first = rows(market.advance(WALL0 + S // 2))
    rest = rows(market.advance(WALL0 + 2 * S))

    # then t' = WALL0 + (t - 1 s) / 2: 0, 0.25, 0.5 (the trade), 1.0 s; only t' < until is handed out
    assert first == [(WALL0, "q", 10.0), (WALL0 + 250_000_000, "q", 10.1)]
    assert rest == [(WALL0 + 500_000_000, "t", 10.3), (WALL0 + S, "q", 10.2)]
    assert market.finished and market.advance(WALL0 + 100 * S) == []


def test_looping_continues_time_one_mean_gap_after_the_last_row():
    # given a looping replay in real time: span 2 s, 4 rows -> mean gap 2/3 s, period 2.666666666 s
    market = ReplayMarket(small_data(), start_ns=WALL0, speed=1.0, loop=True)
    assert market.period_ns == 2 * S + 666_666_666

    # when the wall clock passes the end of the first loop and into the second
    got = rows(market.advance(WALL0 + 3 * S))

    # then the second loop's rows follow at t - t0 + period, prices as recorded
    p = 2_666_666_666
    assert got == [(WALL0, "q", 10.0), (WALL0 + S // 2, "q", 10.1), (WALL0 + S, "t", 10.3),
                   (WALL0 + 2 * S, "q", 10.2), (WALL0 + p, "q", 10.0)]
    assert market.loops == 1 and not market.finished
    later = rows(market.advance(WALL0 + 6 * S))
    assert [r[0] for r in later] == [WALL0 + p + S // 2, WALL0 + p + S, WALL0 + p + 2 * S,
                                     WALL0 + 2 * p, WALL0 + 2 * p + S // 2]


def test_fractional_speed_floors_to_whole_nanoseconds():
    market = ReplayMarket(small_data(), start_ns=WALL0, speed=3.0, loop=False)
    assert [r[0] for r in rows(market.advance(WALL0 + 10 * S))] == [
        WALL0, WALL0 + 166_666_666, WALL0 + 333_333_333, WALL0 + 666_666_666]
    market = ReplayMarket(small_data(), start_ns=WALL0, speed=0.4, loop=False)
    assert [r[0] for r in rows(market.advance(WALL0 + 10 * S))] == [
        WALL0, WALL0 + 1_250_000_000, WALL0 + 2_500_000_000, WALL0 + 5_000_000_000]


def test_max_speed_stamps_one_nanosecond_apart_and_never_goes_back():
    market = ReplayMarket(small_data(), start_ns=0, speed=None, loop=True)

    a = rows(market.next_chunk(WALL0, 3))
    b = rows(market.next_chunk(WALL0 - 10 * S, 3))  # the wall clock stepped back: stamps do not
    c = rows(market.next_chunk(WALL0 + S, 2))

    assert a == [(WALL0, "q", 10.0), (WALL0 + 1, "q", 10.1), (WALL0 + 2, "t", 10.3)]
    assert b == [(WALL0 + 3, "q", 10.2), (WALL0 + 4, "q", 10.0), (WALL0 + 5, "q", 10.1)]  # wraps to loop 1
    assert c == [(WALL0 + S, "t", 10.3), (WALL0 + S + 1, "q", 10.2)]
    assert market.last_stamp == WALL0 + S + 1 and market.loops == 2


def test_max_speed_without_loop_ends_after_the_last_row():
    market = ReplayMarket(small_data(), start_ns=0, speed=None, loop=False)
    assert len(rows(market.next_chunk(WALL0, 10))) == 4
    assert market.finished and market.next_chunk(WALL0, 10) == []


def test_real_file_and_symbol_filter():
    path = ROOT / "data/market/btcusdt_trades_2021-01-08.csv"
    data = load_replay_file(path, ["BTCUSDT"])
    assert len(data) == 2001 and data.symbols == ("BTCUSDT",)
    with pytest.raises(ValueError, match="no rows of ETHUSDT"):
        load_replay_file(path, ["ETHUSDT"])


# --- published to the bus -----------------------------------------------------------------


@pytest.fixture
def client():
    c = redis.Redis.from_url(settings.REDIS_URL)
    yield c
    c.delete(marketbus.stream_key("t_replay"))


class FakeWall:
    """A wall clock that moves ``step`` ns each time it is read."""

    def __init__(self, start: int, step: int) -> None:
        self.now, self.step = start, step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def read_all(client) -> list:
    return marketbus.read(client, marketbus.stream_key("t_replay"), None, count=100_000).batches


def check_order(items) -> tuple[int, int]:
    """Stream ts never decrease and every clock is a true watermark; returns (rows, clocks)."""
    last_row, last_clock, n_rows, n_clocks = None, None, 0, 0
    for item in items:
        if isinstance(item, marketbus.Clock):
            assert last_row is None or item.ts >= last_row
            assert last_clock is None or item.ts >= last_clock
            last_clock, n_clocks = item.ts, n_clocks + 1
            continue
        ts = item.ts.tolist()
        assert ts == sorted(ts)
        assert last_row is None or ts[0] >= last_row
        assert last_clock is None or ts[0] > last_clock
        last_row, n_rows = ts[-1], n_rows + len(ts)
    return n_rows, n_clocks


def test_replay_runner_publishes_the_file_restamped_with_clocks(client):
    # given the recorded BTCUSDT quotes and trades (46 s) replayed at 10x, a wall clock moving 0.2 s a read
    quotes = load_replay_file(ROOT / "data/market/btcusdt_quotes_2021-01-08.csv")
    trades = load_replay_file(ROOT / "data/market/btcusdt_trades_2021-01-08.csv")
    data = ReplayData.from_batches("btcusdt", [*quotes.runs, *trades.runs])
    wall = FakeWall(WALL0, S // 5)
    runner = ReplayRunner("t_replay", FeedBus(client, "t_replay"), data, speed=10.0, loop=False,
                          interval_s=0.0, wall_ns=wall)

    # when it runs to the end of the file
    asyncio.run(asyncio.wait_for(runner.run(asyncio.Event(), inline_io), 10))

    # then every row is in the stream once, stamped t0_wall + (t - t0_file) / 10, with clocks between
    items = read_all(client)
    n_rows, n_clocks = check_order(items)
    assert n_rows == 451 + 2001 == runner.rows_total and n_clocks >= 5
    start = runner.market.start_ns
    expected = start + (data.ts - data.ts[0]) // 10
    published = np.concatenate([b.ts for b in items if not isinstance(b, marketbus.Clock)])
    assert published.tolist() == expected.tolist()
    assert runner.finished and runner.link == "stopped"


def test_replay_runner_at_max_speed_loops_and_keeps_order(client):
    data = small_data()
    wall = FakeWall(WALL0, 0)  # a frozen wall clock: stamps must still increase
    runner = ReplayRunner("t_replay", FeedBus(client, "t_replay"), data, speed=None, loop=True,
                          interval_s=0.05, max_rows=3)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop, inline_io))
        while runner.rows_total < 10:
            await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, 5)

    runner.wall_ns = wall
    asyncio.run(main())
    items = read_all(client)
    n_rows, n_clocks = check_order(items)
    assert n_rows == runner.rows_total >= 10 and n_clocks == n_rows // 3 + (n_rows % 3 > 0)
    published = np.concatenate([b.ts for b in items if not isinstance(b, marketbus.Clock)])
    assert np.all(np.diff(published) == 1)  # strictly increasing, 1 ns apart from the frozen clock
    assert runner.glitches["loops"] >= 2
