"""Incremental market features (Stage 02), one state per symbol.

Every feature is an exponentially weighted recursion over ticks (quotes), so
each new quote costs O(1); a batch of quotes is processed with one
``scipy.signal.lfilter`` call per feature, carrying the filter state from
batch to batch. The values are therefore the same whether quotes arrive one
at a time (real time) or a million at once (replay).

Half-lives are in ticks (quotes), not seconds. Log mid is used throughout,
so returns are log returns and volatilities are per-tick log-return standard
deviations.

Features per quote
------------------
``ret``         log return of the mid since the previous quote
``ema_fast``    EWMA of log mid, half-life ``fast_halflife``
``ema_slow``    EWMA of log mid, half-life ``slow_halflife``
``vol``         EW standard deviation of ``ret`` (zero-mean), half-life ``vol_halflife``
``vol_long``    the same over ``vol_long_halflife`` (the "normal" level)
``trend``       (ema_fast − ema_slow) / vol: momentum in units of per-tick volatility
``zscore``      (log mid − EWMA) / EW std of that deviation, half-life ``z_halflife``
``spread_bps``  quoted spread in basis points of the mid
``volume``      EW traded volume per trade, from trades seen before the quote
``regime``      0 calm, 1 volatile (vol > ``volatile_ratio`` × vol_long),
                2 trending (|trend| > ``trend_threshold``, when not volatile)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch

CALM, VOLATILE, TRENDING = 0, 1, 2
REGIME_NAMES = {CALM: "calm", VOLATILE: "volatile", TRENDING: "trending"}


def alpha(halflife: float) -> float:
    """Weight of the newest observation for a half-life in ticks."""
    return 1.0 - 0.5 ** (1.0 / halflife)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    fast_halflife: float = 20.0
    slow_halflife: float = 200.0
    vol_halflife: float = 100.0
    vol_long_halflife: float = 2000.0
    z_halflife: float = 200.0
    volume_halflife: float = 50.0
    volatile_ratio: float = 1.5
    trend_threshold: float = 2.0


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """Features of one batch of quotes, one row per quote."""

    symbol: str
    ts: np.ndarray
    mid: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    ret: np.ndarray
    ema_fast: np.ndarray
    ema_slow: np.ndarray
    vol: np.ndarray
    vol_long: np.ndarray
    trend: np.ndarray
    zscore: np.ndarray
    spread_bps: np.ndarray
    volume: np.ndarray
    regime: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def snapshot(self, i: int) -> dict:
        """The features of quote ``i`` as plain numbers (for telemetry)."""
        return {
            "ts": int(self.ts[i]), "mid": float(self.mid[i]), "ret": float(self.ret[i]),
            "vol": float(self.vol[i]), "vol_long": float(self.vol_long[i]), "trend": float(self.trend[i]),
            "zscore": float(self.zscore[i]), "spread_bps": float(self.spread_bps[i]),
            "volume": float(self.volume[i]), "regime": REGIME_NAMES[int(self.regime[i])],
        }


SCALAR_MAX = 16  # batches up to this many values take the scalar path of _Ewma.run


@dataclass(slots=True)
class _Ewma:
    """y[n] = y[n-1] + a·(x[n] − y[n-1]); the first observation seeds y."""

    a: float
    value: float = math.nan

    def run(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return x
        if math.isnan(self.value):
            self.value = float(x[0])
        if len(x) <= SCALAR_MAX:
            return self._run_scalar(x)
        y, zf = lfilter([self.a], [1.0, self.a - 1.0], x, zi=[(1.0 - self.a) * self.value])
        self.value = float(y[-1])
        return y

    def _run_scalar(self, x: np.ndarray) -> np.ndarray:
        """What ``lfilter`` computes (transposed direct form II), operation for operation, so both
        paths give the same bits; a Python loop is faster than the call for a few values."""
        b0, b1, a1 = self.a, 0.0, self.a - 1.0
        z = (1.0 - self.a) * self.value
        out = []
        for xi in x.tolist():
            y = b0 * xi + z
            z = b1 * xi - a1 * y
            out.append(y)
        self.value = out[-1]
        return np.array(out)


@dataclass(slots=True)
class _SymbolFeatures:
    spec: FeatureSpec
    last_logmid: float = math.nan
    fast: _Ewma = field(init=False)
    slow: _Ewma = field(init=False)
    var: _Ewma = field(init=False)
    var_long: _Ewma = field(init=False)
    mean_z: _Ewma = field(init=False)
    var_z: _Ewma = field(init=False)
    volume: _Ewma = field(init=False)

    def __post_init__(self) -> None:
        s = self.spec
        self.fast = _Ewma(alpha(s.fast_halflife))
        self.slow = _Ewma(alpha(s.slow_halflife))
        self.var = _Ewma(alpha(s.vol_halflife), 0.0)
        self.var_long = _Ewma(alpha(s.vol_long_halflife), 0.0)
        self.mean_z = _Ewma(alpha(s.z_halflife))
        self.var_z = _Ewma(alpha(s.z_halflife), 0.0)
        self.volume = _Ewma(alpha(s.volume_halflife), 0.0)


class FeatureEngine:
    """Features for any number of symbols; feed quotes and trades in time order."""

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec or FeatureSpec()
        self._symbols: dict[str, _SymbolFeatures] = {}

    def _state(self, symbol: str) -> _SymbolFeatures:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _SymbolFeatures(self.spec)
        return state

    def update_trades(self, batch: TradeBatch) -> None:
        self._state(batch.symbol).volume.run(batch.size)

    def update(self, batch: QuoteBatch) -> FeatureFrame:
        st = self._state(batch.symbol)
        mid = (batch.bid + batch.ask) / 2.0
        logmid = np.log(mid)
        prev = np.empty_like(logmid)
        prev[0] = logmid[0] if math.isnan(st.last_logmid) else st.last_logmid
        prev[1:] = logmid[:-1]
        ret = logmid - prev
        st.last_logmid = float(logmid[-1])

        ema_fast = st.fast.run(logmid)
        ema_slow = st.slow.run(logmid)
        vol = np.sqrt(st.var.run(ret * ret))
        vol_long = np.sqrt(st.var_long.run(ret * ret))
        mean_z = st.mean_z.run(logmid)
        dev = logmid - mean_z
        std_z = np.sqrt(st.var_z.run(dev * dev))
        with np.errstate(divide="ignore", invalid="ignore"):
            trend = np.where(vol > 0, (ema_fast - ema_slow) / vol, 0.0)
            zscore = np.where(std_z > 0, dev / std_z, 0.0)
        spread_bps = (batch.ask - batch.bid) / mid * 1e4
        regime = np.full(len(mid), CALM, dtype=np.int8)
        regime[np.abs(trend) > self.spec.trend_threshold] = TRENDING
        regime[vol > self.spec.volatile_ratio * vol_long] = VOLATILE
        volume = np.full(len(mid), st.volume.value)
        return FeatureFrame(batch.symbol, batch.ts, mid, batch.bid, batch.ask, ret, ema_fast, ema_slow, vol,
                            vol_long, trend, zscore, spread_bps, volume, regime)

    def state(self) -> dict:
        """Serializable state (for checkpoints)."""
        return {
            symbol: {name: getattr(s, name).value for name in ("fast", "slow", "var", "var_long", "mean_z",
                                                                 "var_z", "volume")}
            | {"last_logmid": s.last_logmid}
            for symbol, s in self._symbols.items()
        }

    def restore(self, state: dict) -> None:
        for symbol, values in state.items():
            s = self._state(symbol)
            s.last_logmid = values["last_logmid"]
            for name in ("fast", "slow", "var", "var_long", "mean_z", "var_z", "volume"):
                getattr(s, name).value = values[name]
