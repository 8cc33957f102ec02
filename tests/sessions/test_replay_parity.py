"""Real-time steps (engines built from the database, data from a Redis Stream, written in
steps) and ``paper_replay --session`` (the session file, the same data from recorded files,
as fast as possible) make the same decisions and fills, for every shipped session: the
gatecheck one starts from its backtest end state, the others flat; immediate, TWAP and
passive-limit policies. The stream is published in randomly sized pieces, each followed by
the feed's clock, and a step runs after each publish."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis as redis_lib
from django.conf import settings

from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.engine.replay import interleave
from ifns_paper.feeds.instruments import spec_for
from ifns_paper.feeds.synthetic import SyntheticMarket
from ifns_paper.paper_replay import run_session
from sessions_app.models import PaperSession
from sessions_app.services import session_transition
from sessions_app.steps import session_step
from telemetry_app.models import TelemetryEvent
from tests.conftest import SHIPPED_CONFIG
from tests.system.procs import replay_differences

START_NS = 1_764_000_000_000_000_000
SECONDS = 120
SESSIONS = {  # session -> its definition file
    "research_fx_momentum_v13": "session_research_fx_momentum.yaml",
    "research_crypto_trend": "session_research_crypto_trend.yaml",
    "gatecheck_fx_momentum_v12": "session_gatecheck_fx_momentum.yaml",
}


@pytest.fixture
def client():
    c = redis_lib.Redis.from_url(settings.REDIS_URL)
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    c.close()


def market(symbols: tuple[str, ...]) -> list:
    m = SyntheticMarket({s: spec_for(s, quote_rate=20) for s in symbols}, seed=3, start_ns=START_NS)
    quotes, trades, _ = m.advance(START_NS + SECONDS * 1_000_000_000)
    return list(interleave(quotes + trades))


def write_files(batches, tmp_path):
    """The same rows as canonical Parquet files (float64 and int64: exact)."""
    quotes, trades = [], []
    for b in batches:
        if isinstance(b, QuoteBatch):
            quotes.append(pd.DataFrame({"ts": b.ts, "symbol": b.symbol, "bid": b.bid, "ask": b.ask,
                                        "bid_size": b.bid_size, "ask_size": b.ask_size}))
        else:
            trades.append(pd.DataFrame({"ts": b.ts, "symbol": b.symbol, "price": b.price, "size": b.size,
                                        "aggressor": b.aggressor}))
    paths = []
    for name, frames in (("quotes", quotes), ("trades", trades)):
        path = tmp_path / f"{name}.parquet"
        pd.concat(frames).sort_values("ts", kind="stable").to_parquet(path, index=False)
        paths.append(path)
    return paths


def pieces(batches, rng: random.Random, at: list[int] = ()):
    """The stream cut at random rows and just before the first row after each time in ``at``
    (so that the feed's clock falls right after it): lists of batches, in order."""
    rows = [(b, i) for b in batches for i in range(len(b))]
    times = [int(b.ts[i]) for b, i in rows]
    forced = sorted({next((k for k, t in enumerate(times) if t > when), len(rows)) for when in at})
    pos = 0
    while pos < len(rows):
        size = rng.choice([1, 7, 60, 300, 1500])
        cut = next((c for c in forced if c > pos), len(rows))
        end = min(pos + size, cut)
        chunk, pos = rows[pos:end], end
        out, start = [], 0
        while start < len(chunk):
            batch, first = chunk[start]
            end = start
            while end < len(chunk) and chunk[end][0] is batch:
                end += 1
            out.append(batch.slice(first, first + end - start))
            start = end
        next_ts = int(rows[pos][0].ts[rows[pos][1]]) if pos < len(rows) else None
        yield out, next_ts


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("session_id", list(SESSIONS))
@pytest.mark.django_db(transaction=True)
def test_real_time_steps_make_the_decisions_and_fills_of_paper_replay(loaded, client, tmp_path, session_id, seed,
                                                                      monkeypatch):
    from sessions_app import steps
    from sessions_app.services.summaries import summary_compute

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)  # every step checkpointed: the summary is current
    session = PaperSession.objects.get(session_id=session_id)
    feed_symbols = tuple(loaded.environment.environment.feeds[session.feed].symbols)
    data = market(feed_symbols)
    session_transition(session_id=session_id, action="start", actor="test")

    # replay: the session file on the rows of its symbols, from files
    quotes, trades = write_files([b for b in data if b.symbol in session.symbols], tmp_path)
    summary = run_session(session_file=SHIPPED_CONFIG / "paper_trading" / SESSIONS[session_id],
                          config_dir=SHIPPED_CONFIG, quotes=[quotes], trades=[trades], out=tmp_path / "replay")
    lines = (tmp_path / "replay" / "events.ndjson").read_text().splitlines()
    replayed = [[e["type"], e["ts"] // 1000, e["payload"]] for e in map(json.loads, lines)]

    # real time: the whole feed published piece by piece, each with the feed's clock just before
    # the next row; pieces end right after the times orders were sent (TWAP slices, arrivals):
    # the clock then passes them before any data does
    sends = [json.loads(line)["ts"] for line in lines if '"order_submitted"' in line]
    for batches, next_ts in pieces(data, random.Random(seed), at=sends):
        last = max(int(b.ts[-1]) for b in batches)
        clock = max(last, next_ts - 1) if next_ts is not None else last
        marketbus.publish(client, session.feed, batches, clock_ns=clock)
        session_step(session_id=session_id, client=client)
    stored = [[e.event_type, (e.event_time - EPOCH) // ONE_US, e.payload]
              for e in TelemetryEvent.objects.filter(session=session).exclude(
                  event_type="paper_session_state_change").order_by("sequence")]

    fills = sum(1 for e in stored if e[0] == "order_filled")
    assert fills > 0 and any(e[0] == "order_submitted" for e in stored)
    assert replay_differences(stored, replayed) == []
    positions = {p.symbol: p.quantity for p in session.positions.all()}
    for symbol, pos in summary["ledger"]["positions"].items():
        assert positions.get(symbol, 0.0) == pytest.approx(pos["quantity"], abs=1e-9)

    # the summaries agree key by key on what both saw: P&L, trades, fills, execution, breaches
    # (return ratios are on the same minute grid too, but each ends at its own last sample)
    paper = summary_compute(session_id=session_id, final=True)
    backtest = json.loads((tmp_path / "replay" / "paper_summary.json").read_text())
    for key in ("total", "realized", "unrealized", "fees", "starting_capital"):
        assert paper["pnl"][key] == pytest.approx(backtest["pnl"][key], rel=1e-9, abs=1e-6), key
    for path in (("trades",), ("fills",), ("execution", "slippage"), ("execution", "orders_by_route"),
                 ("risk", "breaches"), ("conventions",), ("incidents",)):
        a, b = paper, backtest
        for key in path:
            a, b = a[key], b[key]
        assert same(a, b), path


def same(a, b) -> bool:
    """Equal, floats to 1e-9 relative; None only equals None."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
