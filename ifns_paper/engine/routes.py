"""Route parameters as the engine uses them (from ``execution_routes.json``).

The config layer validates the file; ``RouteSpec.from_mapping`` takes one
validated route (a plain dict) and converts units once: milliseconds to
nanoseconds, basis points stay basis points.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from ifns_paper.engine.marketdata import NS_PER_MS, NS_PER_SECOND

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FillModel(StrEnum):
    TOUCH = "touch"
    VWAP = "vwap"
    SQRT_IMPACT = "sqrt_impact"
    LIMIT_QUEUE = "limit_queue"


@dataclass(frozen=True, slots=True)
class TradingHours:
    open_minute: int  # minutes after UTC midnight
    close_minute: int
    weekdays: frozenset[int]  # 0 = Monday

    def is_open(self, ts: int) -> bool:
        seconds = ts // NS_PER_SECOND
        days, second_of_day = divmod(seconds, 86_400)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        minute = second_of_day // 60
        return weekday in self.weekdays and self.open_minute <= minute < self.close_minute


@dataclass(frozen=True, slots=True)
class RouteSpec:
    route_id: str
    model: FillModel
    # touch
    beyond_displayed: str = "walk"  # walk | rest | reject
    depth_impact_bps: float = 1.0  # each synthetic level beyond the touch is this much worse
    depth_levels: int = 10  # synthetic levels beyond the touch; what they cannot give is not filled there
    depth_window_ns: int = 60 * NS_PER_SECOND  # a level's size: median displayed size over this window
    refill_ns: int = NS_PER_SECOND  # liquidity taken at a price comes back linearly over this time
    # vwap
    max_participation: float = 0.1
    interval_ns: int = NS_PER_SECOND
    remainder: str = "carry"  # carry | expire
    # sqrt impact (interval_ns above: how often a remainder fills)
    impact_k: float = 0.7
    window_ns: int = 60 * NS_PER_SECOND
    max_window_share: float = 0.1  # one fill takes at most this share of the volume it is measured on
    # limit queue
    queue_ahead: str = "displayed"  # displayed | none
    touch_fill_probability: float = 0.0
    # common
    insert_latency_ns: int = 0
    cancel_latency_ns: int = 0
    market_data_latency_ns: int = 0
    maker_bps: float = 0.0
    taker_bps: float = 0.0
    min_fee: float = 0.0
    stale_ns: int = 2 * NS_PER_SECOND
    reject_probability: float = 0.0
    disconnect_probability: float = 0.0
    trading_hours: TradingHours | None = None
    extreme_slippage_bps: float = 25.0  # a fill costing more than this vs arrival mid is an incident

    # Checkpoints hold routes: by field name, so that a parameter added later gets its default.
    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict | list) -> None:
        if isinstance(state, list | tuple):  # checkpointed when routes were stored as a list
            state = dict(zip(_ROUTE_V1, state, strict=False))
        for f in fields(self):
            object.__setattr__(self, f.name, state.get(f.name, f.default))

    @classmethod
    def from_mapping(cls, route_id: str, route: dict) -> RouteSpec:
        sim = route["simulation"]
        model = FillModel(sim["model"])
        extra: dict = {}
        if model is FillModel.TOUCH:
            extra = {"beyond_displayed": sim.get("beyond_displayed", "walk"),
                     "depth_impact_bps": float(sim.get("depth_impact_bps", 1.0)),
                     "depth_levels": int(sim.get("depth_levels", 10)),
                     "depth_window_ns": int(sim.get("depth_window_s", 60)) * NS_PER_SECOND,
                     "refill_ns": int(sim.get("refill_ms", 1000)) * NS_PER_MS}
        elif model is FillModel.VWAP:
            extra = {"max_participation": float(sim["max_participation"]),
                     "interval_ns": int(sim["interval_ms"]) * NS_PER_MS,
                     "remainder": sim.get("remainder", "carry")}
        elif model is FillModel.SQRT_IMPACT:
            extra = {"impact_k": float(sim["k"]), "window_ns": int(sim["window_s"]) * NS_PER_SECOND,
                     "max_window_share": float(sim.get("max_window_share", 0.1)),
                     "interval_ns": int(sim.get("interval_ms", 1000)) * NS_PER_MS}
        else:
            extra = {"queue_ahead": sim.get("queue_ahead", "displayed"),
                     "touch_fill_probability": float(sim.get("touch_fill_probability", 0.0))}
        hours = route.get("trading_hours")
        trading_hours = None
        if hours:
            h_open, m_open = (int(x) for x in hours["open"].split(":"))
            h_close, m_close = (int(x) for x in hours["close"].split(":"))
            trading_hours = TradingHours(h_open * 60 + m_open, h_close * 60 + m_close,
                                         frozenset(WEEKDAYS.index(d) for d in hours["weekdays"]))
        latency, fees, failures = route["latency"], route["fees"], route.get("failures") or {}
        return cls(
            route_id=route_id,
            model=model,
            insert_latency_ns=int(latency["order_insert_ms"]) * NS_PER_MS,
            cancel_latency_ns=int(latency["cancel_ms"]) * NS_PER_MS,
            market_data_latency_ns=int(latency["market_data_ms"]) * NS_PER_MS,
            maker_bps=float(fees["maker_bps"]),
            taker_bps=float(fees["taker_bps"]),
            min_fee=float(fees.get("min_fee", 0.0)),
            stale_ns=int(route["stale_quote_ms"]) * NS_PER_MS,
            reject_probability=float(failures.get("reject_probability", 0.0)),
            disconnect_probability=float(failures.get("disconnect_probability", 0.0)),
            trading_hours=trading_hours,
            extreme_slippage_bps=float(route.get("extreme_slippage_bps", 25.0)),
            **extra,
        )


# RouteSpec's fields when checkpoints stored routes as a list
_ROUTE_V1 = ("route_id", "model", "beyond_displayed", "depth_impact_bps", "max_participation", "interval_ns",
             "remainder", "impact_k", "window_ns", "queue_ahead", "touch_fill_probability", "insert_latency_ns",
             "cancel_latency_ns", "market_data_latency_ns", "maker_bps", "taker_bps", "min_fee", "stale_ns",
             "reject_probability", "disconnect_probability", "trading_hours", "extreme_slippage_bps")


def routes_from_mapping(routes: dict[str, dict]) -> dict[str, RouteSpec]:
    return {route_id: RouteSpec.from_mapping(route_id, route) for route_id, route in routes.items()}
