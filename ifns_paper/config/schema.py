"""Schemas of the shipped configuration files (spec §3, §4.1, §5.1).

Money amounts are ``Decimal`` in the account currency; ratios that are
percentages say so in their name (``_pct``); basis points end in ``_bps``;
durations in milliseconds end in ``_ms``. Every model forbids unknown keys so
a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
RouteId = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=64)]
RegistryId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_.]+$", max_length=100)]
Version = Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9._/-]*$", max_length=32)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3,5}$")]
PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=2)]
NonNegMoney = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=2)]
Bps = Annotated[float, Field(ge=0, le=10_000)]
Probability = Annotated[float, Field(ge=0, le=1)]
Millis = Annotated[int, Field(ge=0, le=3_600_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- environment and lanes (config/environments/paper.yaml) ---------------------------


class SyntheticFeed(Strict):
    kind: Literal["synthetic"]
    symbols: list[Symbol] = Field(min_length=1)
    seed: int = 0
    ticks_per_second: float = Field(default=10.0, gt=0, le=10_000)
    stale_after_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 2000
    description: str = ""


class ReplayFeed(Strict):
    """A recorded canonical file (quotes, trades or bars; CSV or Parquet) played as if live.

    ``file`` is relative to the repository (or absolute) and must exist and import
    cleanly (checked by the loader); ``symbols`` (optional) keeps only those symbols,
    each of which the file must carry; ``speed`` is file seconds per wall second, or
    ``max`` (as fast as possible)."""

    kind: Literal["replay"]
    file: str = Field(min_length=1)
    symbols: list[Symbol] | None = Field(default=None, min_length=1)
    speed: float | Literal["max"] = 1.0
    loop: bool = False
    stale_after_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 10_000
    description: str = ""

    @field_validator("speed", mode="before")
    @classmethod
    def _speed(cls, value):
        if value == "max":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise ValueError(f"must be a positive number or 'max', not {value!r}")
        return float(value)


class BinanceFeed(Strict):
    kind: Literal["binance_ws"]
    symbols: list[Symbol] = Field(min_length=1)
    url: str = Field(pattern=r"^wss?://")
    stale_after_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 5000
    description: str = ""


Feed = Annotated[SyntheticFeed | ReplayFeed | BinanceFeed, Field(discriminator="kind")]


class TelemetrySink(Strict):
    kind: Literal["database", "ndjson", "channels"]
    path: str | None = Field(default=None, description="ndjson only: folder under the data dir")

    @model_validator(mode="after")
    def _path_only_for_ndjson(self) -> TelemetrySink:
        if self.kind == "ndjson" and not self.path:
            raise ValueError("an ndjson sink needs a 'path'")
        if self.kind != "ndjson" and self.path is not None:
            raise ValueError(f"a {self.kind} sink takes no 'path'")
        return self


class Environment(Strict):
    name: Literal["paper"]
    description: str = ""
    clock: Literal["realtime", "replay", "asap"] = "realtime"
    feeds: dict[Identifier, Feed] = Field(min_length=1)
    telemetry_sinks: list[TelemetrySink] = Field(min_length=1)


class Capital(Strict):
    amount: PositiveMoney
    currency: Currency


class RiskEnvelope(Strict):
    """Hard limits for one lane. Notional and loss amounts are in the lane currency."""

    max_order_notional: PositiveMoney
    max_position_notional_per_symbol: PositiveMoney
    max_gross_exposure: PositiveMoney
    max_net_exposure: PositiveMoney
    max_daily_loss: PositiveMoney
    max_drawdown_pct: float = Field(gt=0, le=100)
    max_orders_per_minute: int = Field(gt=0, le=100_000)
    price_collar_bps: Bps = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> RiskEnvelope:
        if self.max_order_notional > self.max_gross_exposure:
            raise ValueError("max_order_notional cannot exceed max_gross_exposure")
        if self.max_net_exposure > self.max_gross_exposure:
            raise ValueError("max_net_exposure cannot exceed max_gross_exposure")
        if self.max_position_notional_per_symbol > self.max_gross_exposure:
            raise ValueError("max_position_notional_per_symbol cannot exceed max_gross_exposure")
        return self


class PromotionThresholds(Strict):
    """Metric thresholds of a lane's promotion (SEL evaluations, ``metrics.sel``); each one
    left out is not a criterion. PSR and MinTRL: Bailey & López de Prado (``metrics.significance``)
    against the annual benchmark Sharpe ratio ``psr_benchmark_sharpe`` (default 0) at
    ``min_track_record_confidence``; reconciliation: against the session's shadow backtest."""

    min_sharpe: float | None = None
    min_hit_rate: Probability | None = None
    max_drawdown_pct: float | None = Field(default=None, gt=0, le=100)
    max_mean_slippage_bps: Bps | None = None
    max_tracking_error_bps: Bps | None = None
    min_psr: Probability | None = None
    psr_benchmark_sharpe: float = 0.0
    min_track_record: bool = False  # the returns must be at least MinTRL long
    min_track_record_confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    max_incidents: int | None = Field(default=None, ge=0)
    max_slippage_vs_backtest_bps: Bps | None = None
    min_reconciliation_correlation: float | None = Field(default=None, ge=-1, le=1)
    max_reconciliation_dtw: float | None = Field(default=None, ge=0)


class PromotionRules(Strict):
    promotes_to: Identifier
    min_days: int = Field(ge=0, le=3650)
    min_trades: int = Field(ge=0)
    max_breaches: int = Field(ge=0)
    thresholds: PromotionThresholds = PromotionThresholds()


class CooldownRules(Strict):
    """When a lane's sessions stop taking new risk for a while (risk-reducing orders still pass).

    A cooldown of ``duration_s`` seconds starts after ``max_breaches`` risk
    breaches within ``window_s`` seconds, or after a loss of ``max_loss``
    (lane currency, from the highest equity seen within ``window_s``). No
    ``max_loss``: no loss rule. A lane without a ``cooldown`` section gets
    these defaults: 3 breaches in 60 s, 300 s, no loss rule.
    """

    max_breaches: int = Field(default=3, ge=1, le=10_000, strict=True)
    window_s: int = Field(default=60, ge=1, le=86_400, strict=True)
    duration_s: int = Field(default=300, ge=1, le=7 * 86_400, strict=True)
    max_loss: PositiveMoney | None = Field(default=None, description="null: no loss rule")


class LanePolicySpec(Strict):
    """What may run in a lane, how it is promoted and when it cools down; editable in Django admin."""

    allowed_strategies: list[RegistryId] = Field(min_length=1)
    allowed_models: list[RegistryId] = Field(min_length=1)
    promotion: PromotionRules
    cooldown: CooldownRules = CooldownRules()

    @field_validator("allowed_strategies", "allowed_models")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen = [v for i, v in enumerate(value) if v in value[:i]]
        if seen:
            raise ValueError(f"listed more than once: {', '.join(seen)}")
        return value


class Lane(LanePolicySpec):
    description: str = ""
    capital: Capital
    risk_envelope: RiskEnvelope
    telemetry_tags: dict[Identifier, str]


class PaperEnvironmentFile(Strict):
    """``config/environments/paper.yaml``."""

    environment: Environment
    lanes: dict[Identifier, Lane] = Field(min_length=1)

    @model_validator(mode="after")
    def _lane_tags(self) -> PaperEnvironmentFile:
        for name, lane in self.lanes.items():
            if not name.startswith("paper_"):
                raise ValueError(f"lane {name!r}: paper lanes are named paper_<purpose>")
            tags = lane.telemetry_tags
            if tags.get("env") != "paper" or tags.get("lane") != name:
                raise ValueError(
                    f"lane {name!r}: telemetry_tags must include env: paper and lane: {name}"
                )
        return self


# --- model/strategy registry (config/registry/models.yaml) -----------------------------


class RegistryEntry(Strict):
    registry_id: RegistryId
    kind: Literal["strategy", "model"]
    version: Version
    status: Literal["candidate", "research", "gatecheck", "live_canary", "live", "retired"]
    description: str = ""
    # A model's code: "package.module:function" (f(frame) -> signal per row in [-1, 1]); empty:
    # a built-in model of that registry id (ifns_paper.engine.msi.BUILTIN_MODELS).
    implementation: str = Field(default="", pattern=r"^$|^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")


class RegistryFile(Strict):
    entries: list[RegistryEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        keys = [(e.registry_id, e.version) for e in self.entries]
        dupes = sorted({f"{k[0]}@{k[1]}" for i, k in enumerate(keys) if k in keys[:i]})
        if dupes:
            raise ValueError(f"registry entries listed more than once: {', '.join(dupes)}")
        return self


# --- routes and execution policies (config/policies/*.json) ----------------------------


class TouchSimulation(Strict):
    """L1 touch: cross the spread at the quote in force on arrival."""

    model: Literal["touch"]
    beyond_displayed: Literal["walk", "rest", "reject"] = "walk"
    depth_impact_bps: Bps = Field(
        default=1.0, description="each synthetic level beyond the touch is this many bps worse ('walk')"
    )
    depth_levels: int = Field(default=10, ge=0, le=1000, strict=True,
                              description="synthetic levels beyond the touch one quote offers ('walk')")
    depth_window_s: int = Field(default=60, ge=1, le=3600, strict=True,
                                description="a level's size: median displayed size over this window")
    refill_ms: Millis = Field(default=1000, gt=0, description="liquidity taken at a price comes back over this time")


class VwapSimulation(Strict):
    model: Literal["vwap"]
    max_participation: float = Field(gt=0, le=1)
    interval_ms: Millis = Field(gt=0)
    remainder: Literal["carry", "expire"] = "carry"


class SqrtImpactSimulation(Strict):
    """slippage = half-spread + k·σ·sqrt(Q/ADV) (Almgren et al. 2005; Tóth et al. 2011)."""

    model: Literal["sqrt_impact"]
    k: float = Field(gt=0, le=10)
    window_s: int = Field(ge=1, le=86_400, description="rolling window for sigma and traded volume")
    max_window_share: float = Field(default=0.1, gt=0, le=1,
                                    description="one fill takes at most this share of the window's (or interval's) volume")
    interval_ms: Millis = Field(default=1000, gt=0, description="a remainder fills at the end of each interval")


class LimitQueueSimulation(Strict):
    model: Literal["limit_queue"]
    queue_ahead: Literal["displayed", "none"] = "displayed"
    touch_fill_probability: Probability = 0.0


Simulation = Annotated[
    TouchSimulation | VwapSimulation | SqrtImpactSimulation | LimitQueueSimulation,
    Field(discriminator="model"),
]


class Latency(Strict):
    order_insert_ms: Millis
    cancel_ms: Millis
    market_data_ms: Millis


class Fees(Strict):
    maker_bps: float = Field(ge=-100, le=1000)
    taker_bps: float = Field(ge=0, le=1000)
    min_fee: NonNegMoney = Decimal("0")


class FailureModel(Strict):
    reject_probability: Probability = 0.0
    disconnect_probability: Probability = 0.0


class TradingHours(Strict):
    timezone: Literal["UTC"] = "UTC"
    open: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    close: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)


class Route(Strict):
    description: str = ""
    simulation: Simulation
    latency: Latency
    fees: Fees
    stale_quote_ms: Millis = Field(gt=0)
    failures: FailureModel = FailureModel()
    trading_hours: TradingHours | None = None
    # A fill costing more than this against the arrival mid raises an `extreme_slippage` incident.
    extreme_slippage_bps: float = Field(default=25.0, gt=0)


class RoutesFile(Strict):
    """``config/policies/execution_routes.json`` — the Default Parameters Registry for routes."""

    schema_version: Literal[1]
    routes: dict[RouteId, Route] = Field(min_length=1)


class NoSlicing(Strict):
    kind: Literal["none"]


class TwapSlicing(Strict):
    kind: Literal["twap"]
    duration_s: int = Field(gt=0, le=86_400)
    slices: int = Field(ge=2, le=10_000)


class ParticipationSlicing(Strict):
    kind: Literal["participation"]
    max_participation: float = Field(gt=0, le=1)


Slicing = Annotated[
    NoSlicing | TwapSlicing | ParticipationSlicing, Field(discriminator="kind")
]


class ExecutionPolicy(Strict):
    description: str = ""
    urgency: Literal["low", "medium", "high"]
    order_type: Literal["market", "limit"]
    time_in_force: Literal["DAY", "GTC", "IOC", "FOK"]
    route: RouteId
    limit_offset_bps: Bps | None = Field(
        default=None, description="limit orders: distance from the touch (passive side)"
    )
    slicing: Slicing

    @model_validator(mode="after")
    def _limit_needs_offset(self) -> ExecutionPolicy:
        if self.order_type == "limit" and self.limit_offset_bps is None:
            raise ValueError("a limit policy needs limit_offset_bps")
        if self.order_type == "market" and self.limit_offset_bps is not None:
            raise ValueError("a market policy takes no limit_offset_bps")
        return self


class PoliciesFile(Strict):
    """``config/policies/execution_policies.json``."""

    schema_version: Literal[1]
    policies: dict[Identifier, ExecutionPolicy] = Field(min_length=1)


# --- sessions (config/paper_trading/session_<name>.yaml) -------------------------------

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int) -> timedelta:
    """``90`` (seconds), ``"45m"``, ``"8h"`` or ``"2d"`` → timedelta."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90, '45m', '8h' or '2d'")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"expected a duration like 90, '45m', '8h' or '2d', got {value!r}")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


class RegistryRef(Strict):
    registry_id: RegistryId
    version: Version


class ModelRef(RegistryRef):
    weight: float = Field(gt=0, le=1)


class FromBacktest(Strict):
    from_backtest: str = Field(min_length=1, description="end-state file, relative to config dir")


class StartConditions(Strict):
    at: AwareDatetime | None = Field(default=None, description="null: started by an operator")
    portfolio: Literal["flat"] | FromBacktest = "flat"


class EndTarget(Strict):
    pnl: Decimal | None = Field(default=None, gt=0, description="stop once P&L reaches this")
    trades: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _something(self) -> EndTarget:
        if self.pnl is None and self.trades is None:
            raise ValueError("a target needs pnl or trades")
        return self


class EndConditions(Strict):
    duration: str | int | None = None
    target: EndTarget | None = None
    abort_on_kill_switch: bool = Field(
        default=False, strict=True,
        description="abort (not complete) while the global, lane or session kill switch is halted")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> EndConditions:
        if self.duration is None and self.target is None:
            raise ValueError("end conditions need a duration or a target")
        return self

    @property
    def duration_seconds(self) -> int | None:
        if self.duration is None:
            return None
        return int(parse_duration(self.duration).total_seconds())


class SessionSizing(Strict):
    """How MSI turns signals into positions (see ``ifns_paper/engine/msi.py``)."""

    vol_target: float = Field(default=1e-4, gt=0, description="per-tick log-return std at full budget")
    budget_fraction: float = Field(default=0.25, gt=0, le=1, description="of lane capital per symbol")
    lot_sizes: dict[Symbol, float] = Field(default_factory=dict, description="order size step per symbol")
    min_change_lots: float = Field(default=1.0, gt=0)
    min_interval_s: float = Field(default=1.0, ge=0, description="at most one proposal per symbol per interval")

    @field_validator("lot_sizes")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [s for s, lot in value.items() if not lot > 0]
        if bad:
            raise ValueError(f"lot sizes must be positive: {', '.join(bad)}")
        return value


class SessionDefinition(Strict):
    """One ``config/paper_trading/session_<name>.yaml``."""

    session_id: Identifier
    lane: Identifier
    owner: str = Field(min_length=1, max_length=100)
    objective: str = Field(min_length=1)
    strategy: RegistryRef
    models: list[ModelRef] = Field(min_length=1)
    portfolio_id: Identifier
    execution_policy: Identifier
    feed: Identifier
    symbols: list[Symbol] = Field(min_length=1)
    start: StartConditions = StartConditions()
    end: EndConditions
    benchmark: str = Field(min_length=1, max_length=100)
    tags: list[Identifier] = []
    sizing: SessionSizing = SessionSizing()

    @model_validator(mode="after")
    def _weights(self) -> SessionDefinition:
        total = sum(m.weight for m in self.models)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"model weights must sum to 1, got {total:g}")
        ids = [m.registry_id for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError("a model is listed more than once")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a symbol is listed more than once")
        return self


class BacktestPosition(Strict):
    symbol: Symbol
    quantity: Decimal
    avg_price: Decimal = Field(gt=0)


class BacktestEndState(Strict):
    """A Stage 04 backtest end state used as a session's initial portfolio."""

    backtest_id: str = Field(min_length=1)
    as_of: AwareDatetime
    currency: Currency
    cash: Decimal
    positions: list[BacktestPosition] = []
