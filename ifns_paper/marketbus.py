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

Floats are written with ``repr`` (round-trip exact). Reading validates every
entry; a malformed one (missing field, not a number) is skipped and
reported with its stream, entry id and field, never passed on. Plain Python
(redis-py), no Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import redis

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch

DEFAULT_MAXLEN = 200_000  # per stream, approximate trimming


def stream_key(feed: str) -> str:
    return f"ifns:md:{feed}"


def publish(client: redis.Redis, feed: str, batches: list[QuoteBatch | TradeBatch], *,
            maxlen: int = DEFAULT_MAXLEN) -> int:
    """XADD every row of ``batches`` (already in time order) in one pipeline; returns rows written."""
    pipe = client.pipeline(transaction=False)
    key = stream_key(feed)
    n = 0
    for batch in batches:
        y = batch.symbol
        if isinstance(batch, QuoteBatch):
            for ts, b, a, bs, asz in zip(batch.ts.tolist(), batch.bid.tolist(), batch.ask.tolist(),
                                         batch.bid_size.tolist(), batch.ask_size.tolist(), strict=True):
                pipe.xadd(key, {"y": y, "k": "q", "ts": ts, "b": repr(b), "a": repr(a), "bs": repr(bs),
                                "as": repr(asz)}, maxlen=maxlen, approximate=True)
                n += 1
        else:
            for ts, p, s, g in zip(batch.ts.tolist(), batch.price.tolist(), batch.size.tolist(),
                                   batch.aggressor.tolist(), strict=True):
                pipe.xadd(key, {"y": y, "k": "t", "ts": ts, "p": repr(p), "s": repr(s), "g": g},
                          maxlen=maxlen, approximate=True)
                n += 1
    pipe.execute()
    return n


@dataclass
class ReadResult:
    batches: list[QuoteBatch | TradeBatch] = field(default_factory=list)  # runs of one kind, in stream order
    last_id: str | None = None
    rows: int = 0
    bad: list[str] = field(default_factory=list)  # "stream@id: field: reason"


def read(client: redis.Redis, key: str, symbols: set[str] | None, *, after: str | None,
         count: int = 10_000) -> ReadResult:
    """Entries of ``key`` after entry id ``after`` (exclusive), at most ``count``, of
    ``symbols`` (all when None), as runs of one kind and symbol in stream order."""
    start = f"({after}" if after else "-"
    entries = client.xrange(key, min=start, max="+", count=count)
    result = ReadResult()
    if not entries:
        return result
    result.last_id = _text(entries[-1][0])
    run: tuple[str, str] | None = None  # (symbol, kind) of the rows being collected
    rows: list[tuple] = []

    def flush() -> None:
        if not rows:
            return
        symbol, kind = run
        cols = list(zip(*rows, strict=True))
        if kind == "q":
            result.batches.append(QuoteBatch.from_arrays(symbol, *cols))
        else:
            result.batches.append(TradeBatch.from_arrays(symbol, cols[0], cols[1], cols[2],
                                                         np.asarray(cols[3], dtype=np.int8)))
        rows.clear()

    for entry_id, fields in entries:
        f = {_text(k): _text(v) for k, v in fields.items()}
        try:
            y = f["y"]
            if symbols is not None and y not in symbols:
                continue
            k = f["k"]
            if k == "q":
                row = (_num(f, "ts", int), _num(f, "b"), _num(f, "a"), _num(f, "bs"), _num(f, "as"))
            elif k == "t":
                row = (_num(f, "ts", int), _num(f, "p"), _num(f, "s"), _num(f, "g", int))
            else:
                raise ValueError(f"k: unknown kind {k!r}")
        except KeyError as exc:
            result.bad.append(f"{key}@{_text(entry_id)}: {exc.args[0]}: missing field")
            continue
        except ValueError as exc:
            result.bad.append(f"{key}@{_text(entry_id)}: {exc}")
            continue
        if (y, k) != run:
            flush()
            run = (y, k)
        rows.append(row)
        result.rows += 1
    flush()
    return result


def _num(fields: dict, name: str, cast=float):
    value = fields[name]
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"{name}: not a number: {value!r}") from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
