"""Replay feed: a recorded canonical file played *as if live*.

Any file the importers read (``ifns_paper.marketdata.importers``: quotes,
trades or bars, CSV or Parquet) is loaded once, its rows put in one global
time order across symbols (``engine.replay.interleave``: at equal times quotes
before trades) and handed out by ``ReplayMarket`` re-stamped onto the wall
clock. Plain Python, no Django.

Timed mode (``speed`` a positive number). With ``t0_file`` the file's first
timestamp, ``t0_wall`` the wall time the replay starts at and ``P`` the loop
period, row ``t`` of loop ``k`` (k = 0, 1, ...) is stamped::

    t' = t0_wall + floor((t - t0_file + k * P) / speed)          [ns]

``advance(until_ns)`` returns every row with ``t' < until_ns`` not returned
yet, so after it a clock entry at ``until_ns - 1`` is a true watermark.
Stamps are non-decreasing (a floor of an increasing function); rows that
were distinct in the file may share a stamp at high speed.

Looping (``loop=True``): the file starts again with a continuous time offset
instead of jumping back. ``P = span + span // (n - 1)`` where ``span`` is the
file's last minus first timestamp and ``n`` its row count: the first row of
loop k+1 comes one *mean inter-row gap* after the last row of loop k (1 s
for a one-row file). Prices are replayed as recorded, so they jump at the
loop seam; time does not.

Max mode (``speed=None``, ``max`` in the configuration): rows are handed out
as fast as the caller asks, ``max_rows`` at a time, stamped ``base, base+1,
base+2, ...`` ns where ``base = max(now_ns, last stamp + 1)``: the stream
stays strictly increasing and near the wall clock, but the file's spacing is
not kept (a pipeline load test, not a market simulation). The clock after a
chunk is its last stamp.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ifns_paper.engine.marketdata import NS_PER_SECOND, BarBatch, QuoteBatch, TradeBatch
from ifns_paper.engine.replay import interleave
from ifns_paper.marketdata.importers import bars_to_l1, read_any

Batch = QuoteBatch | TradeBatch


@dataclass(frozen=True)
class ReplayData:
    """The rows of a file (optionally some symbols), in one global time order.

    ``runs``: slices of one symbol and kind, in order; ``ts``: the file time of
    every row in that order (int64 ns); ``run_start[i]``: index in ``ts`` of
    ``runs[i]``'s first row."""

    source: str
    symbols: tuple[str, ...]
    runs: tuple[Batch, ...]
    ts: np.ndarray
    run_start: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_batches(cls, source: str, batches: Sequence[Batch]) -> ReplayData:
        runs = tuple(interleave(batches))
        if not runs:
            raise ValueError(f"{source}: no rows to replay")
        lengths = np.array([len(r) for r in runs], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        ts = np.concatenate([r.ts for r in runs]).astype(np.int64)
        symbols = tuple(dict.fromkeys(b.symbol for b in batches if len(b)))
        return cls(source, symbols, runs, ts, starts)


@lru_cache(maxsize=16)
def _read_cached(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[str, ...], tuple[Batch, ...]]:
    result = read_any(path)  # raises MarketDataError(file, line, reason) on the first bad row
    batches: list[Batch] = []
    for batch in result.batches.values():
        if isinstance(batch, BarBatch):
            batches.extend(bars_to_l1(batch))
        else:
            batches.append(batch)
    return tuple(result.batches), tuple(batches)


def _read(path: Path) -> tuple[tuple[str, ...], tuple[Batch, ...]]:
    st = os.stat(path)
    return _read_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def file_symbols(path: str | Path) -> tuple[str, ...]:
    """The symbols a canonical file carries (reads and validates the whole file, cached by
    path, size and modification time)."""
    return _read(Path(path))[0]


def load_replay_file(path: str | Path, symbols: Sequence[str] | None = None) -> ReplayData:
    """The file's rows (only ``symbols`` when given) ready to replay.

    Raises ``MarketDataError`` for bad data (file:line: reason) and ``ValueError``
    naming a symbol the file does not carry."""
    path = Path(path)
    carried, batches = _read(path)
    if symbols is not None:
        missing = [s for s in symbols if s not in carried]
        if missing:
            raise ValueError(f"{path}: no rows of {', '.join(missing)} (the file has: {', '.join(carried)})")
        batches = tuple(b for b in batches if b.symbol in set(symbols))
    return ReplayData.from_batches(str(path), batches)


class ReplayMarket:
    """Hands out the rows of ``data`` re-stamped onto the wall clock (see the module docstring).

    start_ns: ``t0_wall`` [ns since the epoch]; speed: file seconds per wall second
    (> 0), or None for max mode; loop: start again after the last row."""

    def __init__(self, data: ReplayData, *, start_ns: int, speed: float | None, loop: bool) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.data = data
        self.start_ns = int(start_ns)
        self.speed = speed
        self.loop = loop
        n = len(data)
        self.t0_file = int(data.ts[0])
        span = int(data.ts[-1]) - self.t0_file
        self.period_ns = span + (span // (n - 1) if n > 1 else NS_PER_SECOND)
        self.period_ns = max(self.period_ns, 1)
        self.loops = 0  # the loop being played (k)
        self.pos = 0  # next row of that loop
        self.last_stamp: int | None = None
        self._stamped: tuple[int, np.ndarray] | None = None

    @property
    def finished(self) -> bool:
        return not self.loop and self.pos >= len(self.data)

    def stamps(self, k: int) -> np.ndarray:
        """Wall-clock stamps of every row in loop ``k`` (timed mode)."""
        if self._stamped is not None and self._stamped[0] == k:
            return self._stamped[1]
        offset = self.data.ts - self.t0_file + k * self.period_ns  # int64 ns of virtual file time
        if float(self.speed).is_integer():
            scaled = offset // int(self.speed)
        else:
            scaled = np.floor(offset / self.speed).astype(np.int64)
        stamped = self.start_ns + scaled
        self._stamped = (k, stamped)
        return stamped

    def advance(self, until_ns: int) -> list[Batch]:
        """Timed mode: every row not handed out yet with a stamp < ``until_ns``, in order."""
        if self.speed is None:
            raise RuntimeError("advance() is for timed replays; use next_chunk() at max speed")
        out: list[Batch] = []
        n = len(self.data)
        while not self.finished:
            stamped = self.stamps(self.loops)
            end = int(np.searchsorted(stamped, until_ns, side="left"))
            if end > self.pos:
                out += self._slices(self.pos, end, stamped)
                self.last_stamp = int(stamped[end - 1])
                self.pos = end
            if self.pos < n or not self.loop:
                break
            self.loops += 1
            self.pos = 0
        return out

    def next_chunk(self, now_ns: int, max_rows: int) -> list[Batch]:
        """Max mode: the next ``max_rows`` rows (fewer at the end of a non-looping file),
        stamped ``base, base+1, ...`` with ``base = max(now_ns, last stamp + 1)``."""
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        base = int(now_ns) if self.last_stamp is None else max(int(now_ns), self.last_stamp + 1)
        out: list[Batch] = []
        n = len(self.data)
        left = max_rows
        while left and not self.finished:
            end = min(n, self.pos + left)
            count = end - self.pos
            window = base + np.arange(count, dtype=np.int64)  # stamps of rows [pos, end)
            out += self._slices(self.pos, end, window, offset=self.pos)
            base += count
            left -= count
            self.last_stamp = base - 1
            self.pos = end
            if self.pos >= n and self.loop:
                self.loops += 1
                self.pos = 0
        return out

    def _slices(self, lo: int, hi: int, stamped: np.ndarray, *, offset: int = 0) -> list[Batch]:
        """Rows [lo, hi) of the global order as runs; row ``i`` gets ``stamped[i - offset]``."""
        data = self.data
        first = int(np.searchsorted(data.run_start, lo, side="right")) - 1
        out: list[Batch] = []
        for i in range(first, len(data.runs)):
            run_lo = int(data.run_start[i])
            if run_lo >= hi:
                break
            run = data.runs[i]
            a, b = max(lo, run_lo), min(hi, run_lo + len(run))
            part = run.slice(a - run_lo, b - run_lo)
            out.append(dataclasses.replace(part, ts=stamped[a - offset:b - offset].copy()))
        return out
