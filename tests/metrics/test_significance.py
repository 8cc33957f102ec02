"""PSR and MinTRL (Bailey & López de Prado 2012) pinned to hand-computed values, to Lo's
(2002) standard error of the Sharpe ratio for Gaussian returns, and to their round trip:
a track record of exactly MinTRL returns has PSR = the confidence asked for."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ifns_paper.metrics.significance import (
    Moments,
    min_track_record,
    per_period,
    probabilistic_sharpe,
)

PHI = NormalDist()


def test_psr_and_min_trl_by_hand_for_gaussian_moments():
    m = Moments(n=100, sharpe=0.1, skew=0.0, kurtosis=3.0)
    # σ̂² = 1 − 0 + (3 − 1)/4 · 0.01 = 1.005; z = 0.1 · √99 / √1.005 = 0.992509...
    z = 0.1 * math.sqrt(99) / math.sqrt(1.005)
    assert z == pytest.approx(0.992509, abs=1e-6)
    assert probabilistic_sharpe(m) == pytest.approx(PHI.cdf(z), rel=1e-12)
    assert probabilistic_sharpe(m) == pytest.approx(0.8395, abs=1e-4)
    # MinTRL at 95 %: 1 + 1.005 · (1.6448536 / 0.1)² = 272.907...
    assert min_track_record(m, confidence=0.95) == pytest.approx(1 + 1.005 * (1.6448536269514722 / 0.1) ** 2)
    assert min_track_record(m, confidence=0.95) == pytest.approx(272.907, abs=1e-3)


def test_negative_skew_and_fat_tails_ask_for_a_longer_record():
    normal = Moments(n=60, sharpe=0.3, skew=0.0, kurtosis=3.0)
    # the hedge-fund-like shape the paper warns about: negative skew, excess kurtosis
    skewed = Moments(n=60, sharpe=0.3, skew=-2.0, kurtosis=10.0)
    # σ̂² = 1 + 2·0.3 + 9/4·0.09 = 1.8025 against 1 + 0.5·0.09 = 1.045
    assert skewed.sharpe_sd ** 2 == pytest.approx(1.8025) and normal.sharpe_sd ** 2 == pytest.approx(1.045)
    assert probabilistic_sharpe(skewed) < probabilistic_sharpe(normal)
    assert min_track_record(skewed) > min_track_record(normal)


def test_gaussian_moments_give_los_standard_error_of_the_sharpe_ratio():
    # Lo (2002): for IID Gaussian returns, Var(SR̂) ≈ (1 + SR²/2) / T; PSR's denominator is
    # the same with T − 1
    m = Moments(n=250, sharpe=0.08, skew=0.0, kurtosis=3.0)
    assert (m.sharpe_sd / math.sqrt(m.n - 1)) ** 2 == pytest.approx((1 + 0.08 ** 2 / 2) / 249, rel=1e-12)


@given(st.floats(0.01, 0.5), st.floats(-1.5, 1.5), st.floats(2.0, 12.0), st.floats(0.8, 0.99))
def test_a_record_of_exactly_min_trl_returns_has_the_confidence_asked_for(sharpe, skew, kurt, confidence):
    m = Moments(n=10, sharpe=sharpe, skew=skew, kurtosis=kurt)
    if m.sharpe_sd == 0:
        return
    needed = min_track_record(m, confidence=confidence)
    at_min = Moments(n=2, sharpe=sharpe, skew=skew, kurtosis=kurt)
    # PSR uses √(T − 1): with T − 1 = MinTRL − 1 it is Φ(z_conf) = conf
    z = sharpe * math.sqrt(needed - 1) / at_min.sharpe_sd
    assert PHI.cdf(z) == pytest.approx(confidence, rel=1e-9)


def test_moments_of_a_return_series_by_hand():
    r = np.array([0.01, -0.02, 0.03, 0.0])
    m = Moments.of(r)
    # mean 0.005; deviations 0.005, -0.025, 0.025, -0.005; m2 = (0.000025·2 + 0.000625·2)/4 = 0.000325
    # m3 = (1.25e-7 − 1.5625e-5 + 1.5625e-5 − 1.25e-7)/4 = 0 → skew 0
    # m4 = (6.25e-10·2 + 3.90625e-7·2)/4 = 1.956250e-7 → kurtosis 1.95625e-7 / 0.000325² = 1.852071
    assert m.n == 4 and m.skew == pytest.approx(0.0, abs=1e-12)
    assert m.kurtosis == pytest.approx(1.95625e-7 / 0.000325 ** 2, rel=1e-9)
    assert m.sharpe == pytest.approx(0.005 / math.sqrt(0.0013 / 3), rel=1e-12)  # sd with ddof=1
    assert Moments.of(np.array([0.01, 0.01, 0.01])) is None and Moments.of(np.array([0.1, 0.2])) is None


def test_no_length_is_enough_below_the_benchmark_and_annual_benchmarks_convert():
    m = Moments(n=500, sharpe=0.05, skew=0.0, kurtosis=3.0)
    assert min_track_record(m, 0.05) is None and min_track_record(m, 0.06) is None
    assert per_period(2.0, 365.0) == pytest.approx(2.0 / math.sqrt(365))
    assert probabilistic_sharpe(m, per_period(0.0, 365)) == probabilistic_sharpe(m)
    with pytest.raises(ValueError, match="confidence"):
        min_track_record(m, confidence=1.0)
