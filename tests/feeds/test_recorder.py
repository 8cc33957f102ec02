"""The market-data recorder: what a feed publishes comes back from disk exactly (rows,
clocks, order), replays into the same stream entries, survives a killed writer up to its
last publish, splits by market hour, keeps its retention and never stops a feed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import redis
from django.conf import settings

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.replay import interleave
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.recorder import HOUR_NS, Recorder, read_recording, segments, stream_items
from tests.conftest import ROOT

H0 = 1_764_000_000 // 3600 * 3600 * 1_000_000_000  # a whole hour
MS = 1_000_000


def quotes(symbol: str, t0: int, n: int, seed: int = 1) -> QuoteBatch:
    rng = np.random.default_rng(seed)
    mid = 1.1 + np.cumsum(rng.normal(0, 1e-5, n))
    return QuoteBatch.from_arrays(symbol, t0 + np.arange(n) * 50 * MS, mid - 1e-5, mid + 1e-5,
                                  rng.integers(1, 9, n) * 1e5, rng.integers(1, 9, n) * 1e5)


def trades(symbol: str, t0: int, n: int) -> TradeBatch:
    return TradeBatch.from_arrays(symbol, t0 + np.arange(n) * 70 * MS, 1.1 + np.arange(n) * 1e-6,
                                  np.full(n, 2e5), np.where(np.arange(n) % 2, 1, -1))


def publishes():
    """Five publishes crossing a market hour: runs of quotes and trades of two symbols in
    time order (as a feed publishes), four with a clock."""
    out, t = [], H0 - 1_500 * MS
    for i in range(5):
        batch = list(interleave([quotes("EURUSD", t, 10, seed=i), trades("EURUSD", t + 1, 5),
                                 quotes("GBPUSD", t + 2, 10, seed=9 + i)]))  # runs in time order
        last = max(int(b.ts[-1]) for b in batch)
        out.append((batch, last + 1 if i != 2 else None))  # one publish without a clock
        t = last + 10
    return out


def same_batch(a, b) -> bool:
    if type(a) is not type(b) or a.symbol != b.symbol:
        return False
    cols = ("ts", "bid", "ask", "bid_size", "ask_size") if isinstance(a, QuoteBatch) else \
        ("ts", "price", "size", "aggressor")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in cols)


@pytest.mark.parametrize("background", [False, True])
def test_a_recording_gives_back_every_row_and_clock_exactly(tmp_path, background):
    rec = Recorder(tmp_path, "fx", background=background)
    sent = publishes()
    for batches, clock in sent:
        rec.write(batches, clock)
    rec.sync()  # a background writer has written all of it by now
    assert len(list(read_recording(tmp_path, "fx"))) == len(sent)
    rec.close()
    got = list(read_recording(tmp_path, "fx"))
    assert [p.clock_ns for p in got] == [c for _, c in sent]
    for (batches, _), pub in zip(sent, got, strict=True):
        assert len(pub.batches) == len(batches) and all(map(same_batch, batches, pub.batches))
    # the publishes straddle the hour: two segments, named by market hour
    assert [h for h, _ in segments(tmp_path, "fx")] == [H0 - HOUR_NS, H0]


def test_a_window_of_a_recording_keeps_only_its_rows_and_clocks(tmp_path):
    rec = Recorder(tmp_path, "fx")
    for batches, clock in publishes():
        rec.write(batches, clock)
    rec.close()
    lo, hi = H0 - 1_000 * MS, H0 + 500 * MS
    got = list(read_recording(tmp_path, "fx", from_ns=lo, to_ns=hi))
    rows = [int(t) for p in got for b in p.batches for t in b.ts]
    expected = sorted(int(t) for batches, _ in publishes() for b in batches for t in b.ts if lo <= t <= hi)
    assert sorted(rows) == expected and rows
    assert all(lo <= p.clock_ns <= hi for p in got if p.clock_ns is not None)


@pytest.fixture
def client():
    c = redis.Redis.from_url(settings.REDIS_URL)
    keys = [marketbus.stream_key(f) for f in ("t_rec_live", "t_rec_again")]
    c.delete(*keys)
    yield c
    c.delete(*keys)
    c.close()


def test_a_recording_replays_into_the_same_stream_entries(tmp_path, client):
    bus = FeedBus(client, "t_rec_live", recorder=Recorder(tmp_path, "t_rec_live"))
    for batches, clock in publishes():
        bus.publish(batches, clock)
    bus.recorder.close()
    for pub in read_recording(tmp_path, "t_rec_live"):
        marketbus.publish(client, "t_rec_again", pub.batches, clock_ns=pub.clock_ns)
    live = [fields for _, fields in client.xrange(marketbus.stream_key("t_rec_live"))]
    again = [fields for _, fields in client.xrange(marketbus.stream_key("t_rec_again"))]
    assert len(live) == 5 * 25 + 4 and live == again


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.feeds.test_recorder import publishes
    from ifns_paper.feeds.recorder import Recorder
    rec = Recorder({dir!r}, "fx", background=True)  # as the feed processes run it
    for batches, clock in publishes()[:{n}]:
        rec.write(batches, clock)
    rec.sync()  # flushed
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no gzip trailer
""")


def test_a_killed_writer_leaves_a_recording_readable_up_to_its_last_publish(tmp_path):
    out = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(root=str(ROOT), dir=str(tmp_path), n=2)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == -9, out.stderr
    got = list(read_recording(tmp_path, "fx"))
    assert [p.clock_ns for p in got] == [c for _, c in publishes()[:2]]
    assert all(map(same_batch, publishes()[1][0], got[1].batches))
    # the restarted feed writes a new part of the same hour; both read in order
    rec = Recorder(tmp_path, "fx")
    for batches, clock in publishes()[2:]:
        rec.write(batches, clock)
    rec.close()
    names = sorted(p.name for _, p in segments(tmp_path, "fx"))
    assert any(".1." in n for n in names)
    assert [p.clock_ns for p in read_recording(tmp_path, "fx")] == [c for _, c in publishes()]


def test_segments_older_than_the_retention_are_deleted(tmp_path):
    rec = Recorder(tmp_path, "fx", retention_hours=2)
    for hour in range(5):
        rec.write([quotes("EURUSD", H0 + hour * HOUR_NS, 3)], H0 + hour * HOUR_NS + 200 * MS)
    rec.close()
    # at the fifth hour, hours 0 and 1 are more than two hours old
    assert [h for h, _ in segments(tmp_path, "fx")] == [H0 + k * HOUR_NS for k in (2, 3, 4)]


def test_a_disk_that_refuses_writes_leaves_a_gap_but_never_stops_the_feed(tmp_path, client, caplog):
    blocked = tmp_path / "not_a_dir"
    blocked.write_text("a file where the recordings folder should be")
    bus = FeedBus(client, "t_rec_live", recorder=Recorder(blocked, "t_rec_live"))
    for batches, clock in publishes():
        assert bus.publish(batches, clock) == 25
    assert bus.recorder.errors == 5
    assert sum("could not write" in r.getMessage() for r in caplog.records) == 1  # logged once, not per publish
    assert client.xlen(marketbus.stream_key("t_rec_live")) == 5 * 25 + 4



def flat(items):
    """(kind, symbol or None, ts, values...) per row or clock, whatever the batch cuts."""
    out = []
    for item in items:
        if isinstance(item, int):
            out.append(("c", None, item))
        elif isinstance(item, QuoteBatch):
            out += [("q", item.symbol, *row) for row in zip(item.ts.tolist(), item.bid.tolist(), item.ask.tolist(),
                                                             item.bid_size.tolist(), item.ask_size.tolist(),
                                                             strict=True)]
        else:
            out += [("t", item.symbol, *row) for row in zip(item.ts.tolist(), item.price.tolist(),
                                                             item.size.tolist(), item.aggressor.tolist(), strict=True)]
    return out


def test_the_recording_gives_a_reader_exactly_the_entries_it_read_from_the_stream(tmp_path, client):
    bus = FeedBus(client, "t_rec_live", recorder=Recorder(tmp_path, "t_rec_live"))
    for batches, clock in publishes():
        bus.publish(batches, clock)
    bus.recorder.close()
    entries = [(i.decode(), {k.decode(): v.decode() for k, v in f.items()})
               for i, f in client.xrange(marketbus.stream_key("t_rec_live"))]
    after, until = entries[30][0], entries[100][0]  # a reader starting and stopping mid-publish
    # what that reader of EURUSD got, straight from the stream's entries
    expected = []
    for entry_id, f in entries:
        if not marketbus.parse_id(after) < marketbus.parse_id(entry_id) <= marketbus.parse_id(until):
            continue
        if f["k"] == "c":
            expected.append(("c", None, int(f["ts"])))
        elif f["y"] == "EURUSD" and f["k"] == "q":
            expected.append(("q", "EURUSD", int(f["ts"]), float(f["b"]), float(f["a"]), float(f["bs"]),
                             float(f["as"])))
        elif f["y"] == "EURUSD":
            expected.append(("t", "EURUSD", int(f["ts"]), float(f["p"]), float(f["s"]), int(f["g"])))
    recorded = flat(stream_items(tmp_path, "t_rec_live", symbols={"EURUSD"}, after_id=after, until_id=until))
    assert recorded == expected and len(expected) > 20
    # a paused stretch [from, to) is left out
    skip = (entries[40][0], entries[60][0])
    gap = flat(stream_items(tmp_path, "t_rec_live", symbols={"EURUSD"}, after_id=after, until_id=until,
                            skip=[skip]))
    kept_ids = [i for i, f in entries if marketbus.parse_id(after) < marketbus.parse_id(i) <= marketbus.parse_id(until)
                and (f["k"] == "c" or f.get("y") == "EURUSD")]
    dropped = [k for k, i in enumerate(kept_ids)
               if marketbus.parse_id(skip[0]) <= marketbus.parse_id(i) < marketbus.parse_id(skip[1])]
    assert gap == [row for k, row in enumerate(expected) if k not in dropped] and dropped


def test_a_background_writer_survives_a_bad_publish_and_never_blocks_the_feed(tmp_path, caplog, monkeypatch):
    from ifns_paper.feeds import recorder as recorder_module

    rec = Recorder(tmp_path, "fx", background=True)
    batches, clock = publishes()[0]
    rec.write(batches, clock, ids=[object()])  # not JSON: this publish cannot be recorded
    rec.write(batches, clock)
    rec.sync()
    assert rec.errors == 1 and any("was not recorded" in r.getMessage() for r in caplog.records)
    assert len(list(read_recording(tmp_path, "fx"))) == 1  # the thread went on with the next one
    rec.close()
    # a full queue drops the publish rather than make the feed wait
    import threading

    monkeypatch.setattr(recorder_module, "QUEUE_MAX", 1)
    slow = Recorder(tmp_path / "slow", "fx", background=True)
    gate = threading.Event()
    monkeypatch.setattr(slow, "_write", lambda *args: gate.wait(10))  # a disk that hangs
    for _ in range(5):
        slow.write(batches, clock)  # returns at once every time
    assert slow.errors >= 3  # at most one in the writer's hands and one waiting; the rest dropped
    gate.set()
    slow.close()
