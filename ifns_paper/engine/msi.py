"""MSI (model & signal integration): models → blended signal → target position.

A model maps a ``FeatureFrame`` to one signal per quote in [-1, 1]
(vectorized). Models are referenced by registry id; a session blends them
with configured weights and sizes the blend by volatility targeting within
the lane's budget:

    notional = signal × budget × min(1, vol_target / vol)

``budget`` is the smaller of the lane's max position notional per symbol
and ``budget_fraction`` × lane capital; ``vol_target`` is a per-tick log
return standard deviation (the same unit as ``FeatureFrame.vol``). The
target quantity is rounded towards zero to the symbol's lot size.

A proposal is made when the target moves by at least ``min_change_lots``
lots since the last proposal, and no sooner than ``min_interval_ns`` after it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ifns_paper.engine.features import FeatureFrame


class Model(Protocol):
    """What MSI needs of a model; ``registry_id``/``version`` identify it in the registry."""

    registry_id: str
    version: str

    def signal(self, frame: FeatureFrame) -> np.ndarray: ...


@dataclass
class MomentumModel:
    """Time-series momentum: tanh(trend / scale), trend = (fast − slow EWMA) / vol."""

    registry_id: str = "model.momentum"
    version: str = "2.1.0"
    scale: float = 4.0

    def signal(self, frame: FeatureFrame) -> np.ndarray:
        return np.tanh(frame.trend / self.scale)


@dataclass
class MeanReversionModel:
    """Mean reversion: −tanh(zscore / scale), flat in volatile regimes."""

    registry_id: str = "model.meanrev"
    version: str = "1.0.0"
    scale: float = 2.0

    def signal(self, frame: FeatureFrame) -> np.ndarray:
        return np.where(frame.regime == 1, 0.0, -np.tanh(frame.zscore / self.scale))


@dataclass
class VolBreakoutModel:
    """Follows the last move while the regime is volatile, otherwise flat."""

    registry_id: str = "model.vol_breakout"
    version: str = "0.3.0"
    scale: float = 2.0

    def signal(self, frame: FeatureFrame) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            move = np.where(frame.vol > 0, frame.ret / frame.vol, 0.0)
        return np.where(frame.regime == 1, np.tanh(move / self.scale), 0.0)


@dataclass
class CallableModel:
    """A user model: any callable ``f(frame) -> array`` loaded from a dotted path."""

    registry_id: str = ""
    version: str = ""
    path: str = ""
    func: Callable[[FeatureFrame], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.func is None:
            self.func = load_callable(self.path)

    def signal(self, frame: FeatureFrame) -> np.ndarray:
        values = np.asarray(self.func(frame), dtype=np.float64)
        if values.shape != (len(frame),):
            raise ValueError(f"model {self.path!r} returned shape {values.shape}, expected ({len(frame)},)")
        return np.clip(np.nan_to_num(values), -1.0, 1.0)


def load_callable(path: str) -> Callable:
    """``"package.module:function"`` or ``"package.module.function"`` → the callable."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"model path {path!r}: expected 'package.module:function'")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model path {path!r}: {exc}") from None
    if not callable(obj):
        raise ValueError(f"model path {path!r}: {attr} is not callable")
    return obj


BUILTIN_MODELS: dict[str, type] = {
    "model.momentum": MomentumModel,
    "model.meanrev": MeanReversionModel,
    "model.vol_breakout": VolBreakoutModel,
}


def build_model(registry_id: str, version: str, *, callable_path: str | None = None) -> Model:
    if callable_path:
        return CallableModel(registry_id=registry_id, version=version, path=callable_path)
    factory = BUILTIN_MODELS.get(registry_id)
    if factory is None:
        raise ValueError(f"no model implementation for registry id {registry_id!r} "
                         f"(built in: {', '.join(sorted(BUILTIN_MODELS))}; or give a callable path)")
    return factory(registry_id=registry_id, version=version)


@dataclass(frozen=True, slots=True)
class Sizing:
    budget: float  # max |notional| per symbol, account currency
    vol_target: float = 1e-4  # per-tick log-return std at which the full budget is used
    lot_size: float = 1.0
    min_change_lots: float = 1.0
    min_interval_ns: int = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Proposal:
    proposal_id: str
    symbol: str
    index: int  # row in the frame
    ts: int
    signal: float
    target_qty: float
    mid: float
    models: tuple[tuple[str, str, float], ...]  # (registry id, version, weight)
    features: dict

    def payload(self) -> dict:
        return {"proposal_id": self.proposal_id, "symbol": self.symbol, "signal": self.signal,
                "target_position": self.target_qty, "mid": self.mid,
                "models": [{"registry_id": r, "version": v, "weight": w} for r, v, w in self.models],
                "features": self.features}


class Blend:
    """Weighted models plus sizing; remembers the last proposal per symbol."""

    def __init__(self, models: list[tuple[Model, float]], sizing: Sizing, *, id_prefix: str) -> None:
        if not models:
            raise ValueError("a blend needs at least one model")
        total = sum(w for _, w in models)
        if not math.isclose(total, 1.0, rel_tol=1e-9):
            raise ValueError(f"model weights must sum to 1, got {total:g}")
        self.models = models
        self.sizing = sizing
        self.id_prefix = id_prefix
        self.last_target: dict[str, float] = {}
        self.last_ts: dict[str, int] = {}
        self.count = 0

    def signal(self, frame: FeatureFrame) -> np.ndarray:
        total = np.zeros(len(frame))
        for model, weight in self.models:
            total += weight * model.signal(frame)
        return np.clip(total, -1.0, 1.0)

    def targets(self, frame: FeatureFrame, signal: np.ndarray) -> np.ndarray:
        s = self.sizing
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(frame.vol > 0, np.minimum(1.0, s.vol_target / frame.vol), 1.0)
        notional = signal * s.budget * scale
        return np.trunc(notional / frame.mid / s.lot_size) * s.lot_size

    def proposals(self, frame: FeatureFrame) -> list[Proposal]:
        """Rebalancing points of this batch, in time order."""
        if len(frame) == 0:
            return []
        signal = self.signal(frame)
        target = self.targets(frame, signal)
        s, symbol = self.sizing, frame.symbol
        threshold = s.min_change_lots * s.lot_size - 1e-9 * s.lot_size
        current = self.last_target.get(symbol, 0.0)
        last_ts = self.last_ts.get(symbol)
        out: list[Proposal] = []
        start = 0
        n = len(frame)
        while start < n:
            lo = start
            if last_ts is not None:
                lo = max(lo, int(frame.ts.searchsorted(last_ts + s.min_interval_ns, "left")))
            if lo >= n:
                break
            moved = np.flatnonzero(np.abs(target[lo:] - current) >= threshold)
            if len(moved) == 0:
                break
            j = lo + int(moved[0])
            current, last_ts = float(target[j]), int(frame.ts[j])
            self.count += 1
            out.append(Proposal(
                f"{self.id_prefix}-p{self.count}", symbol, j, last_ts, float(signal[j]), current,
                float(frame.mid[j]),
                tuple((m.registry_id, m.version, w) for m, w in self.models),
                frame.snapshot(j),
            ))
            start = j + 1
        self.last_target[symbol] = current
        if last_ts is not None:
            self.last_ts[symbol] = last_ts
        return out
