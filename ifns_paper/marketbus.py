"""The market-data bus: one capped Redis Stream per feed.

Feeds publish canonical quotes and trades of all their symbols in time
order, pipelined (one round trip per batch, not per tick); session steps
read everything after their checkpointed entry id and keep their symbols.
One stream per feed (rather than per symbol) gives every reader the same
total order across symbols, so a step that reads while the feed writes
sees a prefix of that order: real-time steps and a replay of the stream
make the same decisions. Entry fields are short ASCII strings:

    quote: y=<symbol> k=q ts=<epoch ns> b=<bid> a=<ask> bs=<bid size> as=<ask size>
    trade: y=<symbol> k=t ts=<epoch ns> p=<price> s=<size> g=<aggressor -1|0|1>
    clock: k=c ts=<epoch ns>

A clock entry is the feed's watermark: everything it will publish after it
has ``ts`` greater than the clock's. Readers advance their engines to it, so
an order whose venue arrival falls between two ticks is resolved when the
feed's clock passes the arrival rather than at the symbol's next tick; being
in the stream, clocks keep replays identical to real time.

Floats are written with ``repr`` (round-trip exact). Reading validates every
entry; a malformed one (missing field, not a number) is skipped and
reported with its stream, entry id and field, never passed on. Plain Python
(redis-py), no Django.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import redis

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch

DEFAULT_MAXLEN = 200_000  # per stream, approximate trimming


def stream_key(feed: str) -> str:
    return f"ifns:md:{feed}"


@dataclass(frozen=True, slots=True)
class Clock:
    """A feed watermark read from the stream: no later entry has ``ts <= self.ts``."""

    ts: int


def publish_ids(client: redis.Redis, feed: str, batches: list[QuoteBatch | TradeBatch], *,
                clock_ns: int | None = None, maxlen: int = DEFAULT_MAXLEN) -> list[str]:
    """XADD every row of ``batches`` (already in time order) in one pipeline, then a clock
    entry at ``clock_ns`` when given (it must not be older than the last row); returns the
    entry ids, rows in batch order then the clock's."""
    pipe = client.pipeline(transaction=False)
    key = stream_key(feed)
    for batch in batches:
        y = batch.symbol
        if isinstance(batch, QuoteBatch):
            for ts, b, a, bs, asz in zip(batch.ts.tolist(), batch.bid.tolist(), batch.ask.tolist(),
                                         batch.bid_size.tolist(), batch.ask_size.tolist(), strict=True):
                pipe.xadd(key, {"y": y, "k": "q", "ts": ts, "b": repr(b), "a": repr(a), "bs": repr(bs),
                                "as": repr(asz)}, maxlen=maxlen, approximate=True)
        else:
            for ts, p, s, g in zip(batch.ts.tolist(), batch.price.tolist(), batch.size.tolist(),
                                   batch.aggressor.tolist(), strict=True):
                pipe.xadd(key, {"y": y, "k": "t", "ts": ts, "p": repr(p), "s": repr(s), "g": g},
                          maxlen=maxlen, approximate=True)
    if clock_ns is not None:
        pipe.xadd(key, {"k": "c", "ts": int(clock_ns)}, maxlen=maxlen, approximate=True)
    return [_text(i) for i in pipe.execute()]


def publish(client: redis.Redis, feed: str, batches: list[QuoteBatch | TradeBatch], *,
            clock_ns: int | None = None, maxlen: int = DEFAULT_MAXLEN) -> int:
    """``publish_ids``; returns the market-data rows written."""
    ids = publish_ids(client, feed, batches, clock_ns=clock_ns, maxlen=maxlen)
    return len(ids) - (clock_ns is not None)


@dataclass
class ReadResult:
    batches: list[QuoteBatch | TradeBatch | Clock] = field(default_factory=list)  # runs of one kind and
    # symbol, and clocks, in stream order
    last_id: str | None = None
    rows: int = 0
    bad: list[str] = field(default_factory=list)  # "stream@id: field: reason"


@dataclass
class Entries:
    """One read of a stream, parsed once and shared by every reader of the feed.

    ``rows[i]`` is ``(symbol, kind, values)`` of entry ``ids[i]`` (``symbol`` None for a
    clock); malformed entries are left out and described in ``bad``."""

    key: str
    ids: list[tuple[int, int]] = field(default_factory=list)
    id_text: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    last_id: str | None = None  # of the last entry read, malformed or not

    def select(self, symbols: set[str] | None, *, after: str | None) -> ReadResult:
        """The entries after ``after`` (exclusive) of ``symbols`` (all when None), with every
        clock, as runs of one kind and symbol in stream order."""
        result = ReadResult()
        lo = bisect.bisect_right(self.ids, parse_id(after)) if after else 0
        if self.last_id is not None and (after is None or parse_id(self.last_id) > parse_id(after)):
            result.last_id = self.last_id
        run: tuple[str, str] | None = None
        values: list[tuple] = []

        def flush() -> None:
            if not values:
                return
            symbol, kind = run
            cols = list(zip(*values, strict=True))
            if kind == "q":
                result.batches.append(QuoteBatch.from_arrays(symbol, *cols))
            else:
                result.batches.append(TradeBatch.from_arrays(symbol, cols[0], cols[1], cols[2],
                                                             np.asarray(cols[3], dtype=np.int8)))
            values.clear()

        for i in range(lo, len(self.rows)):
            y, k, row = self.rows[i]
            if k == "c":
                flush()
                run = None
                result.batches.append(Clock(row))
                continue
            if symbols is not None and y not in symbols:
                continue
            if (y, k) != run:
                flush()
                run = (y, k)
            values.append(row)
            result.rows += 1
        flush()
        return result


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def read_entries(client: redis.Redis, key: str, *, after: str | None = None, start: str | None = None,
                 count: int = 10_000) -> Entries:
    """At most ``count`` entries of ``key`` after entry id ``after`` (exclusive) or from
    ``start`` (inclusive; the stream's start when neither is given), parsed."""
    lower = f"({after}" if after else (start or "-")
    out = Entries(key)
    raw = client.xrange(key, min=lower, max="+", count=count)
    if not raw:
        return out
    out.last_id = _text(raw[-1][0])
    for entry_id, fields in raw:
        eid = _text(entry_id)
        f = {_text(k): _text(v) for k, v in fields.items()}
        try:
            k = f["k"]
            if k == "c":
                y, row = None, _num(f, "ts", int)
            else:
                y = f["y"]
                if k == "q":
                    row = (_num(f, "ts", int), _num(f, "b"), _num(f, "a"), _num(f, "bs"), _num(f, "as"))
                elif k == "t":
                    row = (_num(f, "ts", int), _num(f, "p"), _num(f, "s"), _num(f, "g", int))
                else:
                    raise ValueError(f"k: unknown kind {k!r}")
        except KeyError as exc:
            out.bad.append(f"{key}@{eid}: {exc.args[0]}: missing field")
            continue
        except ValueError as exc:
            out.bad.append(f"{key}@{eid}: {exc}")
            continue
        out.ids.append(parse_id(eid))
        out.id_text.append(eid)
        out.rows.append((y, k, row))
    return out


def read(client: redis.Redis, key: str, symbols: set[str] | None, *, after: str | None = None,
         start: str | None = None, count: int = 10_000) -> ReadResult:
    """Entries of ``key`` after ``after`` (exclusive) or from ``start`` (inclusive), at most
    ``count``, of ``symbols`` (all when None), as runs of one kind and symbol plus the
    clocks, in stream order."""
    entries = read_entries(client, key, after=after, start=start, count=count)
    result = entries.select(symbols, after=None)
    result.bad = entries.bad
    return result


def _num(fields: dict, name: str, cast=float):
    value = fields[name]
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"{name}: not a number: {value!r}") from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def head_ts(client: redis.Redis, feeds: list[str]) -> dict[str, int | None]:
    """The ``ts`` (epoch ns) of each feed's newest stream entry — a row or a clock — in one
    round trip; None for an empty or missing stream (monitoring: how far behind a reader is)."""
    pipe = client.pipeline(transaction=False)
    for feed in feeds:
        pipe.xrevrange(stream_key(feed), count=1)
    out: dict[str, int | None] = {}
    for feed, entries in zip(feeds, pipe.execute(), strict=True):
        ts = None
        if entries:
            value = {_text(k): _text(v) for k, v in entries[0][1].items()}.get("ts")
            ts = int(value) if value is not None and value.lstrip("-").isdigit() else None
        out[feed] = ts
    return out
