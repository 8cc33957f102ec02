"""How much a track record says: the probabilistic Sharpe ratio and the minimum track
record length (Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of
Risk 15(2), 2012), for SEL promotion criteria.

With T returns on the grid (excess of the per-period risk-free rate), SR̂ their Sharpe
ratio **per period** (mean / standard deviation with ddof=1, not annualised), γ̂3 their
skewness and γ̂4 their kurtosis (both from the population moments, γ̂4 = 3 for Gaussian
returns), and SR* the benchmark Sharpe ratio per period:

    σ̂(SR̂)   = √(1 − γ̂3·SR̂ + (γ̂4 − 1)/4 · SR̂²)
    PSR(SR*) = Φ( (SR̂ − SR*) · √(T − 1) / σ̂(SR̂) )
    MinTRL   = 1 + σ̂(SR̂)² · ( z_{1−α} / (SR̂ − SR*) )²      (defined when SR̂ > SR*)

PSR is the probability that the true Sharpe ratio exceeds SR*; MinTRL is the number of
returns needed for PSR(SR*) ≥ 1 − α with the observed moments. An annual benchmark Sharpe
ratio S converts to per period as S / √periods_per_year. Φ and its inverse are the standard
library's ``statistics.NormalDist``. Plain Python and numpy, no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_N = NormalDist()


@dataclass(frozen=True)
class Moments:
    """What PSR needs from a return series: count, per-period Sharpe, skewness, kurtosis."""

    n: int
    sharpe: float
    skew: float
    kurtosis: float

    @classmethod
    def of(cls, excess_returns: np.ndarray) -> Moments | None:
        """None with fewer than three returns or no dispersion."""
        r = np.asarray(excess_returns, dtype=np.float64)
        if len(r) < 3:
            return None
        sd = float(np.std(r, ddof=1))
        d = r - r.mean()
        m2 = float(np.mean(d ** 2))
        if sd == 0 or m2 == 0:
            return None
        return cls(len(r), float(r.mean()) / sd, float(np.mean(d ** 3)) / m2 ** 1.5, float(np.mean(d ** 4)) / m2 ** 2)

    @property
    def sharpe_sd(self) -> float:
        """σ̂(SR̂) without the 1/√(T−1): √(1 − γ3·SR + (γ4 − 1)/4 · SR²)."""
        v = 1.0 - self.skew * self.sharpe + (self.kurtosis - 1.0) / 4.0 * self.sharpe ** 2
        return math.sqrt(max(v, 0.0))


def probabilistic_sharpe(m: Moments, benchmark_per_period: float = 0.0) -> float | None:
    """PSR(SR*) in [0, 1]; None when the moments leave no dispersion of the estimate."""
    sd = m.sharpe_sd
    if sd == 0 or m.n < 2:
        return None
    return _N.cdf((m.sharpe - benchmark_per_period) * math.sqrt(m.n - 1) / sd)


def min_track_record(m: Moments, benchmark_per_period: float = 0.0, *, confidence: float = 0.95) -> float | None:
    """MinTRL in returns (grid periods); None when SR̂ ≤ SR* (no length is enough)."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0.5, 1), got {confidence!r}")
    edge = m.sharpe - benchmark_per_period
    if edge <= 0:
        return None
    return 1.0 + m.sharpe_sd ** 2 * (_N.inv_cdf(confidence) / edge) ** 2


def per_period(annual_sharpe: float, periods_per_year: float) -> float:
    """An annual Sharpe ratio as a per-period one: S / √periods_per_year."""
    return annual_sharpe / math.sqrt(periods_per_year)
