"""FeedBus refuses to break a stream's time order and resumes after what the stream holds."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.feeds.bus import FeedBus, StreamOrderError

KEY = marketbus.stream_key("t_bus")


@pytest.fixture
def client():
    c = redis.Redis.from_url(settings.REDIS_URL)
    c.delete(KEY)
    yield c
    c.delete(KEY)


def quotes(*ts: int) -> QuoteBatch:
    n = len(ts)
    return QuoteBatch.from_arrays("AAA", list(ts), [1.0] * n, [1.1] * n, [1.0] * n, [1.0] * n)


def test_rows_and_clocks_must_move_forward(client):
    calls = []
    bus = FeedBus(client, "t_bus", after_publish=lambda feed, rows: calls.append((feed, rows)))
    assert bus.next_ts_ns() == 0
    assert bus.publish([quotes(100, 100, 105)], clock_ns=110) == 3
    assert bus.next_ts_ns() == 111
    with pytest.raises(StreamOrderError, match="older than what the stream already has"):
        bus.publish([quotes(110)])  # equal to the clock: the clock promised later rows are newer
    with pytest.raises(StreamOrderError, match="rows go backwards"):
        bus.publish([quotes(120, 119)])
    with pytest.raises(StreamOrderError, match="clock 109 ns is older"):
        bus.publish([], clock_ns=109)
    assert bus.publish([quotes(111)], clock_ns=111) == 1
    assert bus.publish([], clock_ns=111) == 0  # a repeated clock is fine; nothing new
    assert client.xlen(KEY) == 3 + 1 + 1 + 1 + 1  # the refused publishes wrote nothing
    assert calls == [("t_bus", 3), ("t_bus", 1), ("t_bus", 0)]


def test_a_new_publisher_continues_after_the_stream_last_entry(client):
    FeedBus(client, "t_bus").publish([quotes(500)])
    assert FeedBus(client, "t_bus").next_ts_ns() == 501
    FeedBus(client, "t_bus").publish([], clock_ns=900)
    bus = FeedBus(client, "t_bus")
    assert bus.next_ts_ns() == 901
    with pytest.raises(StreamOrderError):
        bus.publish([quotes(900)])
