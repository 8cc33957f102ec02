"""One feed's publisher on the market-data bus, guarding the stream's time order.

Session steps refuse data older than what they consumed, so every entry of a
feed's stream (``ifns_paper.marketbus``) must keep ``ts`` non-decreasing
across symbols, and a clock entry promises that every later entry is newer.
``FeedBus`` checks both before writing and raises ``StreamOrderError`` rather
than publish out of order (a runner bug: the supervisor restarts the feed).

It starts from the stream's last entry, so a restarted process (or runner)
continues after what the previous one published: ``next_ts_ns()`` is the
smallest timestamp new data may carry. Plain Python (redis-py), no Django;
the blocking calls are made off the event loop by the runners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.feeds.recorder import Recorder


class StreamOrderError(RuntimeError):
    """Publishing would break the stream's time order."""


class FeedBus:
    """Publishes ``feed``'s batches and clocks; ``after_publish(feed, rows)`` runs after each
    successful publish (the feed process queues session steps there)."""

    def __init__(self, client: redis.Redis, feed: str, *,
                 after_publish: Callable[[str, int], object] | None = None,
                 maxlen: int = marketbus.DEFAULT_MAXLEN, recorder: Recorder | None = None) -> None:
        self.client, self.feed, self.maxlen = client, feed, maxlen
        self.after_publish = after_publish
        self.recorder = recorder  # also writes each publish to disk (``feeds.recorder``)
        self._min_row: int | None = None  # rows must have ts >= this
        self._min_clock: int | None = None  # clocks must have ts >= this
        self._synced = False

    def _sync(self) -> None:
        """Take the order constraints from the stream's last entry (once)."""
        if self._synced:
            return
        last = self.client.xrevrange(marketbus.stream_key(self.feed), count=1)
        if last:
            fields = {_text(k): _text(v) for k, v in last[0][1].items()}
            try:
                ts = int(fields["ts"])
            except (KeyError, ValueError):
                ts = None  # a malformed entry: readers skip it, and so do we
            if ts is not None:
                self._note(ts, clock=fields.get("k") == "c")
        self._synced = True

    def _note(self, ts: int, *, clock: bool) -> None:
        self._min_row = ts + 1 if clock else ts
        self._min_clock = ts

    def next_ts_ns(self) -> int:
        """The smallest ``ts`` anything published from now on may carry (0 on an empty stream)."""
        self._sync()
        if self._min_clock is None:
            return 0
        return max(self._min_row, self._min_clock + 1)

    def publish(self, batches: Sequence[QuoteBatch | TradeBatch], clock_ns: int | None = None) -> int:
        """Write ``batches`` (runs in time order) then the clock; returns the rows written.

        Raises ``StreamOrderError`` (nothing written) when a row is older than the stream's
        last row or not newer than its last clock, when rows go backwards, or when the
        clock is older than a row or the previous clock."""
        self._sync()
        min_row, min_clock = self._min_row, self._min_clock
        for batch in batches:
            if not len(batch):
                continue
            ts = batch.ts
            first, last = int(ts[0]), int(ts[-1])
            if min_row is not None and first < min_row:
                raise StreamOrderError(f"{self.feed}: {batch.symbol} row at {first} ns is older than what the "
                                       f"stream already has (next allowed {min_row} ns)")
            if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
                raise StreamOrderError(f"{self.feed}: {batch.symbol} rows go backwards in time")
            min_row, min_clock = last, last
        if clock_ns is not None:
            clock_ns = int(clock_ns)
            if min_clock is not None and clock_ns < min_clock:
                raise StreamOrderError(f"{self.feed}: clock {clock_ns} ns is older than the stream's "
                                       f"last entry ({min_clock} ns)")
        ids = marketbus.publish_ids(self.client, self.feed, list(batches), clock_ns=clock_ns, maxlen=self.maxlen)
        rows = len(ids) - (clock_ns is not None)
        if self.recorder is not None:  # what the stream now has, with its entry ids (never raises)
            self.recorder.write(batches, clock_ns, ids=ids)
        self._min_row, self._min_clock = min_row, min_clock
        if clock_ns is not None:
            self._note(clock_ns, clock=True)
        if self.after_publish is not None and (rows or clock_ns is not None):
            self.after_publish(self.feed, rows)
        return rows


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
