"""Route parameters as the engine uses them (from ``execution_routes.json``).

The config layer validates the file; ``RouteSpec.from_mapping`` takes one
validated route (a plain dict) and converts units once: milliseconds to
nanoseconds, basis points stay basis points.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    depth_impact_bps: float = 1.0  # extra cost per displayed-size level walked
    # vwap
    max_participation: float = 0.1
    interval_ns: int = NS_PER_SECOND
    remainder: str = "carry"  # carry | expire
    # sqrt impact
    impact_k: float = 0.7
    window_ns: int = 60 * NS_PER_SECOND
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

    @classmethod
    def from_mapping(cls, route_id: str, route: dict) -> RouteSpec:
        sim = route["simulation"]
        model = FillModel(sim["model"])
        extra: dict = {}
        if model is FillModel.TOUCH:
            extra = {"beyond_displayed": sim.get("beyond_displayed", "walk"),
                     "depth_impact_bps": float(sim.get("depth_impact_bps", 1.0))}
        elif model is FillModel.VWAP:
            extra = {"max_participation": float(sim["max_participation"]),
                     "interval_ns": int(sim["interval_ms"]) * NS_PER_MS,
                     "remainder": sim.get("remainder", "carry")}
        elif model is FillModel.SQRT_IMPACT:
            extra = {"impact_k": float(sim["k"]), "window_ns": int(sim["window_s"]) * NS_PER_SECOND}
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


def routes_from_mapping(routes: dict[str, dict]) -> dict[str, RouteSpec]:
    return {route_id: RouteSpec.from_mapping(route_id, route) for route_id, route in routes.items()}
