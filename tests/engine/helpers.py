"""Small builders for engine tests: times in milliseconds, one symbol."""

from __future__ import annotations

from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.orders import Fill, Order, OrderEvent, OrderType, Side, TimeInForce
from ifns_paper.engine.routes import FillModel, RouteSpec

MS = 1_000_000
SYM = "EURUSD"


def route(model=FillModel.TOUCH, route_id="R", **kw) -> RouteSpec:
    kw.setdefault("stale_ns", 10_000 * MS)
    return RouteSpec(route_id, model, **kw)


def quotes(*rows, symbol=SYM) -> QuoteBatch:
    """rows: (ms, bid, ask, bid_size, ask_size)"""
    return QuoteBatch.from_arrays(symbol, [r[0] * MS for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                                  [r[3] for r in rows], [r[4] for r in rows])


def trades(*rows, symbol=SYM) -> TradeBatch:
    """rows: (ms, price, size, aggressor +1/-1/0)"""
    return TradeBatch.from_arrays(symbol, [r[0] * MS for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                                  [r[3] for r in rows])


def order(coid="o1", side=Side.BUY, qty=100.0, kind=OrderType.MARKET, tif=TimeInForce.GTC, route_id="R",
          limit=None, stop=None, symbol=SYM) -> Order:
    return Order(coid, symbol, side, qty, kind, tif, route_id, limit, stop)


def fills(events) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def statuses(events, coid="o1") -> list[str]:
    return [str(e.status) for e in events if isinstance(e, OrderEvent) and e.client_order_id == coid]
