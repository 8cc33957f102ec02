"""The market-data recorder: what a feed publishes, kept on disk so that exactly the data a
paper session saw can be replayed later (shadow backtests).

Layout: ``<root>/<feed>/<YYYYMMDDTHH>[.<part>].ndjson.gz``, segments per hour of *market*
time (the time of the rows and clocks, not of the wall clock); a feed process that starts
within an hour it already recorded (a restart) writes the next part. Each publish is one
line, in publish order:

    {"at": <wall ns of the publish>, "batches": [<batch>, ...], "clock": <ns or null>,
     "ids": [<stream entry id>, ...]}  (rows in batch order, then the clock's; null if unknown)
    quote batch: {"y": symbol, "k": "q", "ts": [...], "b": [...], "a": [...], "bs": [...], "as": [...]}
    trade batch: {"y": symbol, "k": "t", "ts": [...], "p": [...], "s": [...], "g": [...]}

Floats are written by ``json`` (shortest repr: round-trip exact), so reading a recording
gives back the very rows that were published. Every line is compressed and flushed
(``Z_SYNC_FLUSH``) as it is written: a feed process killed at any moment leaves a segment
readable up to its last publish (``read_segment`` tolerates the missing gzip trailer). A
feed outage is a gap: no line for that time. Segments older than ``retention_hours`` (by
their hour) are deleted when a new segment opens.

Plain Python, no Django, no Redis.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import queue
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch

log = logging.getLogger(__name__)

HOUR_NS = 3_600_000_000_000
QUEUE_MAX = 10_000  # publishes waiting for the writer thread (≈ 8 minutes at 20 a second)
SUFFIX = ".ndjson.gz"


def segment_name(hour_ns: int, part: int = 0) -> str:
    hour = datetime.fromtimestamp(hour_ns // 1_000_000_000, tz=UTC).strftime("%Y%m%dT%H")
    return f"{hour}{f'.{part}' if part else ''}{SUFFIX}"


def segment_key(path: Path) -> tuple[int, int] | None:
    """(first ns of its hour, part) of a segment file (None for a file that is not one)."""
    if not path.name.endswith(SUFFIX):
        return None
    hour, _, part = path.name[: -len(SUFFIX)].partition(".")
    try:
        moment = datetime.strptime(hour, "%Y%m%dT%H").replace(tzinfo=UTC)
        number = int(part) if part else 0
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000, number


def _batch_json(batch: QuoteBatch | TradeBatch) -> dict:
    if isinstance(batch, QuoteBatch):
        return {"y": batch.symbol, "k": "q", "ts": batch.ts.tolist(), "b": batch.bid.tolist(),
                "a": batch.ask.tolist(), "bs": batch.bid_size.tolist(), "as": batch.ask_size.tolist()}
    return {"y": batch.symbol, "k": "t", "ts": batch.ts.tolist(), "p": batch.price.tolist(),
            "s": batch.size.tolist(), "g": batch.aggressor.tolist()}


def _batch_from(obj: dict) -> QuoteBatch | TradeBatch:
    if obj["k"] == "q":
        return QuoteBatch.from_arrays(obj["y"], obj["ts"], obj["b"], obj["a"], obj["bs"], obj["as"])
    return TradeBatch.from_arrays(obj["y"], obj["ts"], obj["p"], obj["s"], np.asarray(obj["g"], dtype=np.int8))


class Recorder:
    """Appends one feed's publishes to its hourly segments. ``write`` never raises: a disk
    problem is logged (at most once a minute) and counted in ``errors``, and the feed goes on
    publishing — a recording with a hole is better than a feed that stops.

    With ``background`` (the feed processes' default), ``write`` only queues the publish and
    a writer thread encodes, compresses and flushes it, so the feed's publish path does not
    wait for the disk; ``sync`` waits until everything queued is on disk, ``close`` too."""

    def __init__(self, root: Path | str, feed: str, *, retention_hours: float = 72.0, level: int = 1,
                 background: bool = False) -> None:
        self.dir = Path(root) / feed
        self.feed, self.retention_hours, self.level = feed, retention_hours, level
        self._hour: int | None = None
        self._file: gzip.GzipFile | None = None
        self.errors = 0
        self._last_error_log = 0.0
        self._queue: queue.Queue | None = None
        if background:
            self._queue = queue.Queue(maxsize=QUEUE_MAX)
            threading.Thread(target=self._drain, name=f"recorder-{feed}", daemon=True).start()

    def write(self, batches: Sequence[QuoteBatch | TradeBatch], clock_ns: int | None, *,
              at_ns: int | None = None, ids: Sequence[str] | None = None) -> None:
        at = at_ns if at_ns is not None else time.time_ns()
        if self._queue is not None:
            try:
                self._queue.put_nowait((list(batches), clock_ns, at, None if ids is None else list(ids)))
            except queue.Full:  # the disk cannot keep up: a gap in the recording, never a stalled feed
                self._failed(f"{QUEUE_MAX:,} publishes waiting to be written")
        else:
            self._write(batches, clock_ns, at, ids)

    def sync(self) -> None:
        """Return once every publish written so far is on disk (flushed)."""
        if self._queue is not None:
            self._queue.join()

    def _drain(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            try:
                if item is None:
                    self._close()
                    return
                self._write(*item)
            except Exception as exc:  # noqa: BLE001 - the writer thread never dies: a gap, logged
                self._failed(f"{type(exc).__name__}: {exc}")
            finally:
                q.task_done()

    def _failed(self, why: str) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log > 60:
            self._last_error_log = now
            log.warning("recorder %s: a publish was not recorded (%s); the feed goes on, the recording has a gap",
                        self.feed, why)

    def _write(self, batches, clock_ns, at_ns, ids) -> None:
        rows = [b for b in batches if len(b)]
        if not rows and clock_ns is None:
            return
        first = int(rows[0].ts[0]) if rows else int(clock_ns)
        line = json.dumps({"at": at_ns,
                           "batches": [_batch_json(b) for b in rows],
                           "clock": None if clock_ns is None else int(clock_ns),
                           "ids": list(ids) if ids is not None else None}, separators=(",", ":"))
        try:
            self._segment(first // HOUR_NS * HOUR_NS)
            self._file.write(line.encode() + b"\n")
            self._file.flush()  # Z_SYNC_FLUSH: readable up to here whatever happens next
        except OSError as exc:
            self._close()
            self._failed(f"could not write to {self.dir}: {exc}")

    def _segment(self, hour: int) -> None:
        """Open the segment of ``hour`` (appending: a restarted feed continues its hour)."""
        if self._file is not None and (self._hour == hour or hour < self._hour):
            return  # a late row of the previous hour stays in the open segment
        self._close()
        self.dir.mkdir(parents=True, exist_ok=True)
        part = 0
        while (self.dir / segment_name(hour, part)).exists():
            part += 1
        self._file = gzip.GzipFile(self.dir / segment_name(hour, part), mode="wb", compresslevel=self.level)
        self._hour = hour
        self.prune(now_hour=hour)

    def prune(self, *, now_hour: int) -> list[Path]:
        """Delete segments whose hour is older than the retention; returns them."""
        gone = []
        oldest = now_hour - int(self.retention_hours * HOUR_NS)
        for path in sorted(self.dir.glob("*" + SUFFIX)):
            key = segment_key(path)
            if key is not None and key[0] < oldest:
                path.unlink(missing_ok=True)
                gone.append(path)
        return gone

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file, self._hour = None, None

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._queue.join()
            self._queue = None
        else:
            self._close()


@dataclass(frozen=True)
class Publish:
    """One recorded publish: its wall time, its batches (time order) and its clock."""

    at_ns: int
    batches: list[QuoteBatch | TradeBatch]
    clock_ns: int | None
    ids: list[str] | None = None  # stream entry ids: rows in batch order, then the clock's

    @property
    def last_ns(self) -> int | None:
        """The newest time it carries (its clock, else its last row)."""
        if self.clock_ns is not None:
            return self.clock_ns
        return max((int(b.ts[-1]) for b in self.batches), default=None)


def _decompressed(path: Path, chunk: int = 1 << 16) -> bytes:
    """Every byte a segment holds up to its last complete flush: no error for a file cut
    short by a killed writer, and what precedes damage is kept."""
    d, out = zlib.decompressobj(wbits=31), []
    with path.open("rb") as f:
        while block := f.read(chunk):
            try:
                out.append(d.decompress(block))
            except zlib.error:
                break
            if d.eof:
                break
    return b"".join(out)


def read_segment(path: Path) -> Iterator[Publish]:
    """The publishes of one segment, in order; a last line cut short is ignored."""
    for line in _decompressed(path).split(b"\n"):
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # the partial line of a writer killed mid-write
        yield Publish(int(obj["at"]), [_batch_from(b) for b in obj["batches"]], obj["clock"], obj.get("ids"))


def segments(root: Path | str, feed: str) -> list[tuple[int, Path]]:
    """A feed's segments as (hour ns, path), oldest first (parts of an hour in order)."""
    folder = Path(root) / feed
    found = [(segment_key(p), p) for p in folder.glob("*" + SUFFIX)] if folder.is_dir() else []
    return [(k[0], p) for k, p in sorted((k, p) for k, p in found if k is not None)]


def read_recording(root: Path | str, feed: str, *, from_ns: int | None = None,
                   to_ns: int | None = None) -> Iterator[Publish]:
    """A feed's recorded publishes whose data lies in [from_ns, to_ns] (rows outside the
    window are cut off; clocks outside it are dropped), in publish order."""
    for hour, path in segments(root, feed):
        if to_ns is not None and hour > to_ns:
            break
        if from_ns is not None and hour + 2 * HOUR_NS <= from_ns:
            continue  # (a publish may run past the end of its segment's hour: one more is read)
        for pub in read_segment(path):
            batches = [_window(b, from_ns, to_ns) for b in pub.batches]
            batches = [b for b in batches if len(b)]
            clock = pub.clock_ns
            if clock is not None and ((from_ns is not None and clock < from_ns) or (to_ns is not None and clock > to_ns)):
                clock = None
            if batches or clock is not None:
                yield Publish(pub.at_ns, batches, clock)


def _window(batch: QuoteBatch | TradeBatch, from_ns: int | None, to_ns: int | None) -> QuoteBatch | TradeBatch:
    if from_ns is None and to_ns is None:
        return batch
    lo = 0 if from_ns is None else int(np.searchsorted(batch.ts, from_ns, "left"))
    hi = len(batch) if to_ns is None else int(np.searchsorted(batch.ts, to_ns, "right"))
    return batch if (lo, hi) == (0, len(batch)) else batch.slice(lo, hi)


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as a comparable (ms, seq)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def stream_items(root: Path | str, feed: str, *, symbols: set[str] | None, after_id: str,
                 until_id: str | None = None, skip: Sequence[tuple[str, str]] = (),
                 from_hour_ns: int | None = None, progress: dict | None = None) -> Iterator:
    """What a reader of the feed's stream that starts after entry ``after_id`` and stops at
    ``until_id`` (inclusive) consumed, from the recording: runs of ``symbols`` (all when
    None) and every clock (``int`` ns), in stream order; entries in a ``skip`` range
    ``[from_id, to_id)`` (a paused session's) are left out. Recording lines without entry
    ids are not usable here and raise ``ValueError``.

    ``from_hour_ns`` skips the segments of older hours (a feed publishes in time order, so a
    reader that has consumed data of time t finds what follows from the segment of
    t's hour minus one on). ``progress["last_id"]`` is kept at the last entry id read up to
    ``until_id``: where the recording ends when it has not caught up with ``until_id`` yet
    (the writer thread runs behind the stream)."""
    lo, hi = entry_key(after_id), (entry_key(until_id) if until_id else None)
    gaps = [(entry_key(a), entry_key(b)) for a, b in skip]

    def keep(key: tuple[int, int]) -> bool:
        return key > lo and (hi is None or key <= hi) and not any(a <= key < b for a, b in gaps)

    for hour, path in segments(root, feed):
        if from_hour_ns is not None and hour < from_hour_ns:
            continue
        for pub in read_segment(path):
            if pub.ids is None:
                raise ValueError(f"{path}: a publish recorded without stream entry ids")
            keys = [entry_key(i) for i in pub.ids]
            if hi is not None and keys and keys[0] > hi:
                return
            if progress is not None and keys:
                last = max(k for k in keys if hi is None or k <= hi)
                if last > entry_key(progress.get("last_id") or "0-0"):
                    progress["last_id"] = f"{last[0]}-{last[1]}"
            if keys and keys[-1] <= lo:
                continue
            pos = 0
            for batch in pub.batches:
                n = len(batch)
                mask = np.fromiter((keep(k) for k in keys[pos:pos + n]), dtype=bool, count=n)
                pos += n
                if symbols is not None and batch.symbol not in symbols:
                    continue
                for start, stop in _runs_of(mask):
                    yield batch.slice(start, stop)
            if pub.clock_ns is not None and keep(keys[pos]):
                yield int(pub.clock_ns)


def _runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
