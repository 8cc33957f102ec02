"""Features: hand-checked recursions, O(1) incremental updates, batch independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ifns_paper.engine.features import CALM, TRENDING, VOLATILE, FeatureEngine, FeatureSpec, alpha
from ifns_paper.engine.marketdata import QuoteBatch
from tests.fuzz import examples


def batch(mids, spread=0.0002, t0=0):
    mids = np.asarray(mids, dtype=float)
    n = len(mids)
    return QuoteBatch.from_arrays("X", np.arange(t0, t0 + n), mids - spread / 2, mids + spread / 2,
                                  np.ones(n), np.ones(n))


def test_ewma_and_returns_by_hand():
    spec = FeatureSpec(fast_halflife=1.0, vol_halflife=1.0)  # alpha = 0.5
    frame = FeatureEngine(spec).update(batch([100.0, 101.0, 99.0]))
    logs = np.log([100.0, 101.0, 99.0])
    assert frame.ret[0] == 0.0 and frame.ret[1] == pytest.approx(logs[1] - logs[0])
    fast1 = logs[0] + 0.5 * (logs[1] - logs[0])
    fast2 = fast1 + 0.5 * (logs[2] - fast1)
    assert frame.ema_fast[1] == pytest.approx(fast1) and frame.ema_fast[2] == pytest.approx(fast2)
    var1 = 0.5 * (logs[1] - logs[0]) ** 2
    var2 = 0.5 * var1 + 0.5 * (logs[2] - logs[1]) ** 2
    assert frame.vol[2] == pytest.approx(math.sqrt(var2))
    assert frame.spread_bps[0] == pytest.approx(0.0002 / 100.0 * 1e4)
    assert alpha(1.0) == 0.5


def test_a_steady_trend_is_labelled_trending_and_a_burst_volatile():
    engine = FeatureEngine(FeatureSpec(fast_halflife=5, slow_halflife=50, vol_halflife=20, vol_long_halflife=500))
    rng = np.random.default_rng(0)
    calm = 100 * np.exp(np.cumsum(rng.normal(0, 1e-5, 3000)))
    engine.update(batch(calm))
    trend = calm[-1] * np.exp(np.cumsum(np.full(200, 1e-5) + rng.normal(0, 2e-6, 200)))  # drift ~ usual vol
    assert engine.update(batch(trend, t0=3000)).regime[-1] == TRENDING
    burst = trend[-1] * np.exp(np.cumsum(rng.normal(0, 1e-4, 100)))
    assert engine.update(batch(burst, t0=3200)).regime[-1] == VOLATILE
    quiet = burst[-1] * np.exp(np.cumsum(rng.normal(0, 1e-6, 6000)))
    assert engine.update(batch(quiet, t0=3300)).regime[-1] == CALM


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.floats(-0.003, 0.003), min_size=2, max_size=300), st.lists(st.integers(1, 50), min_size=1))
def test_features_do_not_depend_on_batch_boundaries(steps, cuts):
    mids = 100 * np.exp(np.cumsum(steps))
    whole = FeatureEngine().update(batch(mids))
    engine, parts, start = FeatureEngine(), [], 0
    for cut in cuts * (len(mids) // max(1, sum(cuts)) + 1):
        if start >= len(mids):
            break
        parts.append(engine.update(batch(mids[start:start + cut], t0=start)))
        start += cut
    if start < len(mids):
        parts.append(engine.update(batch(mids[start:], t0=start)))
    for name in ("ret", "ema_fast", "ema_slow", "vol", "trend", "zscore", "regime"):
        np.testing.assert_allclose(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_state_survives_a_checkpoint():
    mids = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-4, 500)))
    straight = FeatureEngine()
    straight.update(batch(mids[:300]))
    expected = straight.update(batch(mids[300:], t0=300))
    first = FeatureEngine()
    first.update(batch(mids[:300]))
    restored = FeatureEngine()
    restored.restore(first.state())
    got = restored.update(batch(mids[300:], t0=300))
    np.testing.assert_array_equal(got.zscore, expected.zscore)


@settings(max_examples=examples(300), deadline=None)
@given(a=st.floats(1e-5, 0.99), seed_value=st.floats(-1e3, 1e3),
       xs=st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), min_size=1, max_size=16))
def test_the_scalar_ewma_path_gives_the_same_bits_as_lfilter(a, seed_value, xs):
    from scipy.signal import lfilter

    from ifns_paper.engine.features import SCALAR_MAX, _Ewma

    assert len(xs) <= SCALAR_MAX  # the path under test is the one small batches take
    x = np.asarray(xs)
    ewma = _Ewma(a, seed_value)
    expected, _ = lfilter([a], [1.0, a - 1.0], x, zi=[(1.0 - a) * seed_value])
    assert ewma.run(x).tobytes() == expected.tobytes()
    assert ewma.value == expected[-1]
