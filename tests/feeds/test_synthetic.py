"""SyntheticMarket: determinism, step-size independence, microstructure, glitches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifns_paper.engine.marketdata import NS_PER_SECOND, QuoteBatch, TradeBatch
from ifns_paper.feeds.synthetic import (
    CALM,
    DEFAULT_REGIMES,
    EXAMPLE_SYMBOLS,
    VOLATILE,
    GlitchKind,
    GlitchSpec,
    RegimeSpec,
    SymbolSpec,
    SyntheticMarket,
    volume_curve,
)
from tests.fuzz import examples

S = NS_PER_SECOND
T0 = 1_610_064_000 * S  # 2021-01-08 00:00:00 UTC (a day boundary)

SYMBOLS = {
    "AAA": SymbolSpec(price=100.0, tick=0.01, lot=1.0, vol=0.4, quote_rate=8.0, trade_rate=4.0,
                      trade_size=20.0, display_size=(1.0, 500.0), spread_bps_per_vol=5.0),
    "BBB": SymbolSpec(price=1.1, tick=1e-5, lot=1000.0, vol=0.08, quote_rate=5.0, trade_rate=2.0,
                      trade_size=1e5, display_size=(1e5, 5e6), spread_bps_per_vol=10.0),
}
ALL_GLITCHES = GlitchSpec(gap_rate=0.05, gap_s=(0.5, 3.0), stale_rate=0.05, stale_s=(0.5, 3.0),
                          crossed_rate=0.1, outlier_rate=0.1, disconnect_rate=0.02, disconnect_s=(0.5, 4.0))
QUOTE_COLS = ("ts", "bid", "ask", "bid_size", "ask_size")
TRADE_COLS = ("ts", "price", "size", "aggressor")


def collect(market: SyntheticMarket, cuts):
    """Run ``advance`` over ``cuts`` (absolute ns) and glue the outputs per symbol."""
    q = {s: {c: [] for c in QUOTE_COLS} for s in market.symbols}
    t = {s: {c: [] for c in TRADE_COLS} for s in market.symbols}
    glitches = []
    prev = market.now_ns
    for cut in cuts:
        quotes, trades, gl = market.advance(cut)
        for b in quotes:
            assert isinstance(b, QuoteBatch) and len(b) > 0 and prev <= b.ts.min() and b.ts.max() < cut
            for c in QUOTE_COLS:
                q[b.symbol][c].append(getattr(b, c))
        for b in trades:
            assert isinstance(b, TradeBatch) and len(b) > 0 and prev <= b.ts.min() and b.ts.max() < cut
            for c in TRADE_COLS:
                t[b.symbol][c].append(getattr(b, c))
        assert all(prev <= g.start_ns < cut for g in gl)
        glitches += gl
        prev = cut

    def join(d):
        return {s: {c: np.concatenate(v) if v else np.empty(0) for c, v in cols.items()} for s, cols in d.items()}

    return join(q), join(t), glitches


def run(cuts, *, seed=7, symbols=SYMBOLS, start=T0, **kw):
    market = SyntheticMarket(symbols, seed=seed, start_ns=start, **kw)
    return (*collect(market, cuts), market)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[s].keys() == b[s].keys() and all(np.array_equal(a[s][c], b[s][c]) for c in a[s]) for s in a)


# -- determinism and step independence -------------------------------------------------------

def test_same_seed_same_data_other_seed_other_data():
    end = [T0 + 300 * S]
    q1, t1, g1, _ = run(end, glitches=ALL_GLITCHES)
    q2, t2, g2, _ = run(end, glitches=ALL_GLITCHES)
    q3, t3, g3, _ = run(end, seed=8, glitches=ALL_GLITCHES)
    assert same(q1, q2) and same(t1, t2) and g1 == g2 and g1
    assert not np.array_equal(q1["AAA"]["bid"][:100], q3["AAA"]["bid"][:100])
    assert not same(t1, t3) and g1 != g3
    assert len(q1["AAA"]["ts"]) > 1000 and len(t1["BBB"]["ts"]) > 200


HORIZON = 150 * S
BLOCK_S = 7.0
_REFERENCE = {}


def reference():
    if not _REFERENCE:
        _REFERENCE["v"] = run([T0 + HORIZON], glitches=ALL_GLITCHES, block_s=BLOCK_S)[:3]
        assert {g.kind for g in _REFERENCE["v"][2]} == set(GlitchKind)  # every path is exercised
    return _REFERENCE["v"]


cut_offsets = st.lists(
    st.one_of(st.integers(0, HORIZON),
              st.integers(0, int(HORIZON / (BLOCK_S * S))).map(lambda k: int(k * BLOCK_S * S)),
              st.integers(0, HORIZON).map(lambda x: x - x % S)),
    max_size=25)


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cut_offsets)
def test_split_points_do_not_change_the_data(offsets):
    cuts = sorted(T0 + o for o in offsets) + [T0 + HORIZON]
    q, t, g, _ = run(cuts, glitches=ALL_GLITCHES, block_s=BLOCK_S)
    rq, rt, rg = reference()
    assert same(q, rq) and same(t, rt) and g == rg


def test_real_time_steps_equal_one_replay_step():
    """A loop calling every 100 ms gives what one big call gives (default 60 s blocks)."""
    cuts = [T0 + k * S // 10 for k in range(1, 1201)]  # 2 minutes
    a = run(cuts, glitches=ALL_GLITCHES)[:3]
    b = run([cuts[-1]], glitches=ALL_GLITCHES)[:3]
    assert same(a[0], b[0]) and same(a[1], b[1]) and a[2] == b[2]


def test_advance_rejects_going_back_and_allows_empty_steps():
    m = SyntheticMarket(SYMBOLS, seed=1, start_ns=T0)
    quotes, trades, glitches = m.advance(T0)
    assert (quotes, trades, glitches) == ([], [], [])
    quotes, _, _ = m.advance(T0 + 1)  # the snapshot quotes at start_ns
    assert [(b.symbol, len(b), int(b.ts[0])) for b in quotes] == [("AAA", 1, T0), ("BBB", 1, T0)]
    assert m.now_ns == T0 + 1
    with pytest.raises(ValueError, match="backwards"):
        m.advance(T0)


def test_adding_a_symbol_or_glitches_keeps_the_true_market():
    end = [T0 + 600 * S]
    q1, t1, _, _ = run(end, symbols={"AAA": SYMBOLS["AAA"]})
    q2, t2, _, _ = run(end)
    assert same({"AAA": q1["AAA"]}, {"AAA": q2["AAA"]}) and same({"AAA": t1["AAA"]}, {"AAA": t2["AAA"]})
    # gaps only: the glitched feed is the clean feed minus the quotes inside the gaps; trades identical
    qg, tg, gg, _ = run(end, glitches=GlitchSpec(gap_rate=0.05))
    assert same(tg, t2)
    for sym in SYMBOLS:
        ts = q2[sym]["ts"]
        inside = np.zeros(len(ts), dtype=bool)
        for g in gg:
            if g.symbol == sym:
                inside |= (ts >= g.start_ns) & (ts < g.end_ns)
        assert inside.any()
        for c in QUOTE_COLS:
            assert np.array_equal(qg[sym][c], q2[sym][c][~inside])


# -- clean data ------------------------------------------------------------------------------

def test_clean_data_passes_validation_and_trades_print_at_the_touch():
    market = SyntheticMarket(EXAMPLE_SYMBOLS, seed=3, start_ns=T0 + 6 * 3600 * S)
    quotes, trades, glitches = market.advance(T0 + 8 * 3600 * S)
    assert glitches == [] and len(quotes) == len(trades) == 3
    for qb, tb in zip(quotes, trades, strict=True):
        spec = EXAMPLE_SYMBOLS[qb.symbol]
        assert len(qb) > 10_000 and len(tb) > 3_000
        assert not qb.problems()[0].any() and not tb.problems()[0].any()
        assert (qb.ask - qb.bid >= spec.tick * spec.min_spread_ticks * (1 - 1e-9)).all()
        for arr, step in ((qb.bid, spec.tick), (qb.ask, spec.tick), (tb.price, spec.tick),
                          (qb.bid_size, spec.lot), (tb.size, spec.lot)):
            units = arr / step
            assert np.allclose(units, np.round(units), rtol=0, atol=1e-6)  # on the grid
        lo, hi = spec.display_size
        assert (qb.bid_size >= lo - spec.lot).all() and (qb.ask_size <= hi + spec.lot).all()
        assert (tb.size >= spec.lot).all() and set(np.unique(tb.aggressor)) == {-1, 1}
        # every trade hits the bid (taker sells) or lifts the ask (taker buys) of the last quote
        i = np.searchsorted(qb.ts, tb.ts, side="right") - 1
        assert (i >= 0).all()
        expected = np.where(tb.aggressor == 1, qb.ask[i], qb.bid[i])
        assert np.array_equal(tb.price, expected)


def test_spreads_are_wider_in_the_volatile_regime():
    spec = EXAMPLE_SYMBOLS["BTCUSDT"]
    market = SyntheticMarket({"BTCUSDT": spec}, seed=11, start_ns=T0)
    (qb,), _, _ = market.advance(T0 + 8 * 3600 * S)
    regime = market.regime_at("BTCUSDT", qb.ts)
    assert set(regime) == {r.name for r in DEFAULT_REGIMES}  # the chain visits every regime
    spread = (qb.ask - qb.bid) / spec.tick
    calm, volatile = spread[regime == CALM].mean(), spread[regime == VOLATILE].mean()
    assert volatile > 2.0 * calm
    # quotes arrive faster in the volatile regime (activity 2 vs 1): quotes per second spent
    seconds = market.regime_at("BTCUSDT", np.arange(T0, T0 + 8 * 3600 * S, S))
    calm_rate = (regime == CALM).sum() / (seconds == CALM).sum()
    volatile_rate = (regime == VOLATILE).sum() / (seconds == VOLATILE).sum()
    assert volatile_rate > 1.6 * calm_rate


def test_volume_is_u_shaped_over_the_utc_day():
    only = (RegimeSpec("flat", vol_mult=1.0),)  # one regime: no activity changes to blur the curve
    spec = SymbolSpec(price=100.0, tick=0.01, lot=1.0, quote_rate=0.2, trade_rate=1.0, trade_size=50.0)
    market = SyntheticMarket({"X": spec}, seed=5, start_ns=T0, regimes=only, intraday_u=2.0)
    _, (tb,), _ = market.advance(T0 + 86_400 * S)
    hour = (tb.ts - T0) // (3600 * S)
    volume = np.bincount(hour, weights=tb.size, minlength=24)
    count = np.bincount(hour, minlength=24)
    edges = volume[[0, 23]].mean()
    midday = volume[[11, 12]].mean()
    assert edges > 3.0 * midday  # (1 + u) ** 1.5 = 5.2 in expectation
    assert count[[0, 23]].mean() > 2.0 * count[[11, 12]].mean()  # 1 + u = 3 in expectation
    assert abs(count.sum() / 86_400 - 1.0) < 0.05  # trade_rate is the day average
    x = volume_curve(np.array([T0, T0 + 43_200 * S, T0 + 86_400 * S - 1]), 2.0)
    assert x[0] == pytest.approx(3 * x[1]) and x[2] == pytest.approx(x[0], rel=1e-6)


# -- glitches --------------------------------------------------------------------------------

def glitched(spec: GlitchSpec, seconds: int = 240, seed: int = 21):
    end = [T0 + seconds * S]
    q, t, g, _ = run(end, seed=seed, glitches=spec)
    cq, ct, cg, _ = run(end, seed=seed)
    assert cg == []
    return q, t, g, cq, ct


def records(glitches, kind):
    out = [g for g in glitches if g.kind == kind]
    assert out, f"no {kind} glitch"
    return out


def test_gap_glitch_drops_quotes_but_not_trades():
    q, t, g, cq, ct = glitched(GlitchSpec(gap_rate=0.5, gap_s=(1.0, 3.0)))
    gaps = records(g, GlitchKind.GAP)
    assert {x.kind for x in g} == {GlitchKind.GAP}
    for x in gaps:
        assert 1 * S <= x.end_ns - x.start_ns <= 3 * S
        ts = q[x.symbol]["ts"]
        assert not ((ts >= x.start_ns) & (ts < x.end_ns)).any()
    in_gaps = sum(((ct["AAA"]["ts"] >= x.start_ns) & (ct["AAA"]["ts"] < x.end_ns)).sum()
                  for x in gaps if x.symbol == "AAA")
    assert in_gaps > 20
    assert same(t, ct)  # trades keep printing during a quote gap
    assert not QuoteBatch("AAA", *(q["AAA"][c] for c in QUOTE_COLS)).problems()[0].any()


def test_stale_glitch_repeats_the_same_quote():
    q, t, g, cq, ct = glitched(GlitchSpec(stale_rate=0.5, stale_s=(1.0, 3.0)))
    stale = records(g, GlitchKind.STALE)
    repeated = 0
    for x in stale:
        cols = q[x.symbol]
        m = (cols["ts"] >= x.start_ns) & (cols["ts"] < x.end_ns)
        values = {tuple(cols[c][m][i] for c in QUOTE_COLS[1:]) for i in range(m.sum())}
        assert len(values) <= 1  # unchanged, only ts moves
        if m.sum() >= 2:
            repeated += 1
            clean = {tuple(cq[x.symbol][c][m][i] for c in QUOTE_COLS[1:]) for i in range(m.sum())}
            assert len(clean) > 1  # the true market moved meanwhile
    assert repeated >= 5
    assert same(t, ct)
    assert np.array_equal(q["AAA"]["ts"], cq["AAA"]["ts"])  # stale quotes still arrive


def test_crossed_glitch_emits_a_crossed_quote_that_validation_rejects():
    q, t, g, cq, ct = glitched(GlitchSpec(crossed_rate=1.0, crossed_ticks=(1, 3)))
    crossed = records(g, GlitchKind.CROSSED)
    for sym in SYMBOLS:
        batch = QuoteBatch(sym, *(q[sym][c] for c in QUOTE_COLS))
        bad, reasons = batch.problems()
        mine = [x for x in crossed if x.symbol == sym]
        assert sorted(batch.ts[bad].tolist()) == sorted(x.start_ns for x in mine)
        assert set(reasons) == {"crossed quote (bid > ask)"}
        assert all(x.end_ns == x.start_ns + 1 for x in mine)
        tick = SYMBOLS[sym].tick
        over = np.round((batch.bid[bad] - batch.ask[bad]) / tick)
        assert over.min() >= 1 and over.max() <= 3
    assert len(crossed) > 100


def test_outlier_glitch_moves_a_single_quote_far_off():
    q, t, g, cq, ct = glitched(GlitchSpec(outlier_rate=0.5, outlier_bps=(500.0, 1000.0)))
    outliers = records(g, GlitchKind.OUTLIER)
    for sym in SYMBOLS:
        ts, cts = q[sym]["ts"], cq[sym]["ts"]
        assert np.array_equal(ts, cts)
        mid = (q[sym]["bid"] + q[sym]["ask"]) / 2
        cmid = (cq[sym]["bid"] + cq[sym]["ask"]) / 2
        off = np.abs(mid / cmid - 1)
        hit = np.isin(ts, [x.start_ns for x in outliers if x.symbol == sym])
        assert hit.sum() == len([x for x in outliers if x.symbol == sym]) > 50
        assert (off[hit] > 0.049).all() and (off[hit] < 0.101).all()
        assert (off[~hit] == 0).all()
        # a single quote: its neighbours (when not outliers themselves) are on the market
        idx = np.flatnonzero(hit)
        idx = idx[(idx > 0) & (idx < len(ts) - 1)]
        idx = idx[~hit[idx - 1] & ~hit[idx + 1]]
        assert len(idx) > 40
        assert (np.abs(mid[idx + 1] / mid[idx - 1] - 1) < 0.01).all()
        assert not QuoteBatch(sym, *(q[sym][c] for c in QUOTE_COLS)).problems()[0].any()  # valid, just wrong


def test_disconnect_glitch_silences_every_symbol():
    q, t, g, cq, ct = glitched(GlitchSpec(disconnect_rate=0.1, disconnect_s=(2.0, 5.0)))
    discs = records(g, GlitchKind.DISCONNECT)
    assert all(x.symbol is None for x in discs) and len(discs) >= 5
    lost = 0
    for x in discs:
        for sym in SYMBOLS:
            for cols, clean in ((q[sym], cq[sym]), (t[sym], ct[sym])):
                assert not ((cols["ts"] >= x.start_ns) & (cols["ts"] < x.end_ns)).any()
                lost += ((clean["ts"] >= x.start_ns) & (clean["ts"] < x.end_ns)).sum()
    assert lost > 100
    kept = sum(len(q[s]["ts"]) for s in SYMBOLS) + sum(len(t[s]["ts"]) for s in SYMBOLS)
    total = sum(len(cq[s]["ts"]) for s in SYMBOLS) + sum(len(ct[s]["ts"]) for s in SYMBOLS)
    assert kept + lost == total


def test_glitch_rates_are_per_second():
    _, _, g, _, _ = glitched(GlitchSpec(crossed_rate=0.2), seconds=600)
    n = len(records(g, GlitchKind.CROSSED))
    assert 0.2 * 600 * 2 * 0.75 < n < 0.2 * 600 * 2 * 1.25  # two symbols


def test_spec_validation():
    with pytest.raises(ValueError):
        SymbolSpec(price=0.0, tick=0.01)
    with pytest.raises(ValueError):
        SymbolSpec(price=1.0, tick=0.01, display_size=(2.0, 1.0))
    with pytest.raises(ValueError):
        GlitchSpec(gap_rate=-1)
    with pytest.raises(ValueError):
        SyntheticMarket(SYMBOLS, seed=1, start_ns=T0, regimes=(RegimeSpec("a", next={"b": 1.0}),))
    with pytest.raises(ValueError):
        SyntheticMarket(SYMBOLS, seed=1, start_ns=T0,
                        regimes=(RegimeSpec("a", next={"b": 0.5}), RegimeSpec("b", next={"a": 1.0})))
    m = SyntheticMarket(SYMBOLS, seed=1, start_ns=T0)
    with pytest.raises(ValueError):
        m.regime_at("AAA", [T0])  # nothing generated yet
