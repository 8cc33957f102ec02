"""What recording a feed costs its publishes (issue 10): the time of ``FeedBus.publish`` with
the recorder off and on, at 200 ticks/s per symbol × 5 symbols.

    python -m bench.recorder_bench [--seconds 120] [--block-s 5] [--interval-ms 50]
                                   [--redis-url redis://127.0.0.1:6379/14] [--out bench/results]

A synthetic market (the ``synthetic_fx`` model, 5 symbols, quote rate 200/s each) is
generated up front for ``--seconds`` of market time and cut into publishes of
``--interval-ms`` (about 50 quotes and a few trades each, plus the clock), as the synthetic
feed runner does. The publishes go to a Redis stream of database 14 (flushed first) in
blocks of ``--block-s`` seconds of market time, alternating recorder off / on (ABAB: the
machine is shared and its speed drifts; both sides see the same drift). Each
``publish`` call is timed with ``perf_counter`` (Redis round trip included); the recorder
writes gzip segments in a temporary folder, on its writer thread (``background=True``, as
the feed processes run it). Publishes are paced at ``--interval-ms`` in real time, as the
feed runner paces them (what the recorder's thread does between two publishes is what it
costs the feed); ``--no-pacing`` publishes back to back instead (the writer thread then
competes with every publish for the interpreter). Target: publish p99 with recording ≤ 1.10
× without.

Writes ``<out>/recorder_<UTC stamp>.json`` and ``recorder_latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF")
FEED = "bench_recorder"
T0 = 1_764_000_000 * 1_000_000_000


def _publishes(seconds: float, interval_ms: int) -> list[tuple[list, int]]:
    from ifns_paper.engine.replay import interleave
    from ifns_paper.feeds.instruments import spec_for
    from ifns_paper.feeds.synthetic import SyntheticMarket

    market = SyntheticMarket({s: spec_for(s, quote_rate=200) for s in SYMBOLS}, seed=7, start_ns=T0)
    out, step = [], interval_ms * 1_000_000
    for k in range(1, int(seconds * 1000 / interval_ms) + 1):
        until = T0 + k * step
        quotes, trades, _ = market.advance(until)
        out.append((list(interleave([*quotes, *trades])), until - 1))
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)  # 2 × 1,200 paced publishes: a stable p99
    parser.add_argument("--no-pacing", action="store_true")
    parser.add_argument("--block-s", type=float, default=5.0)
    parser.add_argument("--interval-ms", type=int, default=50)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ifns_paper import marketbus
    from ifns_paper.feeds.bus import FeedBus
    from ifns_paper.feeds.recorder import Recorder

    client = redis.Redis.from_url(args.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"recorder benchmark skipped: no Redis at {args.redis_url} ({exc})")
        return 0
    if client.connection_pool.connection_kwargs.get("db", 0) < 14:
        print("--redis-url: use database 14 or 15 (this benchmark flushes it)")
        return 2
    client.flushdb()
    started = dt.datetime.now(dt.UTC)
    pubs = _publishes(args.seconds, args.interval_ms)
    per_block = max(1, int(args.block_s * 1000 / args.interval_ms))
    times: dict[str, list[float]] = {"off": [], "on": []}
    rows = sum(len(b) for batches, _ in pubs for b in batches)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(tmp, FEED, background=True)  # as the feed processes run it
        bus = FeedBus(client, FEED)
        start, step = time.perf_counter(), args.interval_ms / 1000
        for i in range(0, len(pubs), per_block):
            mode = "on" if (i // per_block) % 2 else "off"
            bus.recorder = recorder if mode == "on" else None
            for k, (batches, clock) in enumerate(pubs[i:i + per_block], start=i):
                if not args.no_pacing:
                    time.sleep(max(0.0, start + k * step - time.perf_counter()))
                t = time.perf_counter()
                bus.publish(batches, clock)
                times[mode].append(time.perf_counter() - t)
        recorder.close()  # everything queued is written before the size is read
        recorded = sum(p.stat().st_size for p in Path(tmp).rglob("*.gz"))
        on_rows = sum(len(b) for i, (batches, _) in enumerate(pubs) if (i // per_block) % 2 for b in batches)
    client.delete(marketbus.stream_key(FEED))
    client.close()

    ms = {m: {"n": len(v), "p50_ms": _pct(v, 50) * 1e3, "p99_ms": _pct(v, 99) * 1e3,
              "mean_ms": statistics.fmean(v) * 1e3} for m, v in times.items()}
    ratio = ms["on"]["p99_ms"] / ms["off"]["p99_ms"]
    result = {
        "benchmark": "recorder", "started_utc": started.isoformat(timespec="seconds"),
        "workload": {"symbols": list(SYMBOLS), "ticks_per_s_per_symbol": 200, "market_seconds": args.seconds,
                     "interval_ms": args.interval_ms, "paced": not args.no_pacing, "publishes": len(pubs),
                     "rows": rows,
                     "rows_per_publish": rows / len(pubs)},
        "publish": ms, "p99_ratio_on_over_off": ratio,
        "recording": {"bytes": recorded, "bytes_per_row": recorded / on_rows if on_rows else None},
        "target": {"p99_ratio": 1.10, "pass": ratio <= 1.10},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"recorder_{stamp}.json", "recorder_latest.json"):
        (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"IFNS feed recorder: {len(pubs):,} publishes of {rows / len(pubs):.0f} rows "
          f"(5 symbols × 200 ticks/s, {args.interval_ms} ms), ABAB blocks of {args.block_s:g} s")
    for m in ("off", "on"):
        print(f"  recording {m:3}: publish p50 {ms[m]['p50_ms']:.2f} ms  p99 {ms[m]['p99_ms']:.2f} ms  (n={ms[m]['n']})")
    print(f"  p99 on/off = {ratio:.3f}; target <= 1.10: {'PASS' if ratio <= 1.10 else 'FAIL'}; "
          f"{result['recording']['bytes_per_row']:.1f} bytes a row on disk")
    print(f"  wrote {args.out / ('recorder_' + stamp + '.json')} (and recorder_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
