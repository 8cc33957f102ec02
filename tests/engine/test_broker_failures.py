"""Every rejection reason is reachable, machine-readable and leaves an incident."""

from __future__ import annotations

import pytest

from ifns_paper.engine.broker import PaperBroker
from ifns_paper.engine.orders import (
    Incident,
    OrderEvent,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from ifns_paper.engine.routes import FillModel, TradingHours
from tests.engine.helpers import MS, order, quotes, route, statuses, trades

GOOD = (0, 99.0, 100.0, 100, 100)


def _rejected(b: PaperBroker, events, coid="o1") -> tuple[str, list[Incident]]:
    assert statuses(events, coid)[-1] == "rejected", events
    incidents = [e for e in events if isinstance(e, Incident) and e.client_order_id == coid]
    return b.order(coid).reason, incidents


@pytest.mark.parametrize(
    ("reason", "setup"),
    [
        (RejectReason.NO_MARKET_DATA, lambda: (PaperBroker({"R": route()}), [], order())),
        (RejectReason.STALE_QUOTE,
         lambda: (PaperBroker({"R": route(stale_ns=500 * MS)}), [quotes(GOOD)], order())),
        (RejectReason.CROSSED_QUOTE,
         lambda: (PaperBroker({"R": route()}), [quotes((0, 100.5, 100.0, 10, 10))], order())),
        (RejectReason.LOCKED_QUOTE,
         lambda: (PaperBroker({"R": route()}), [quotes((0, 100.0, 100.0, 10, 10))], order())),
        (RejectReason.ZERO_VOLUME,
         lambda: (PaperBroker({"R": route(FillModel.SQRT_IMPACT, impact_k=1.0)}), [quotes(GOOD)], order())),
        (RejectReason.ZERO_VOLUME,
         lambda: (PaperBroker({"R": route(FillModel.VWAP)}), [quotes(GOOD)], order())),
        (RejectReason.OUTSIDE_TRADING_HOURS,  # 1970-01-01 was a Thursday; open Mondays only
         lambda: (PaperBroker({"R": route(trading_hours=TradingHours(0, 24 * 60, frozenset({0})))}),
                  [quotes(GOOD)], order())),
        (RejectReason.INSUFFICIENT_LIQUIDITY,
         lambda: (PaperBroker({"R": route(beyond_displayed="reject")}), [quotes(GOOD)], order(qty=101))),
        (RejectReason.SIMULATED_REJECT,
         lambda: (PaperBroker({"R": route(reject_probability=1.0)}), [quotes(GOOD)], order())),
        (RejectReason.SIMULATED_DISCONNECT,
         lambda: (PaperBroker({"R": route(disconnect_probability=1.0)}), [quotes(GOOD)], order())),
        (RejectReason.INVALID_ORDER, lambda: (PaperBroker({"R": route()}), [quotes(GOOD)], order(qty=-1))),
        (RejectReason.INVALID_ORDER,
         lambda: (PaperBroker({"R": route()}), [quotes(GOOD)], order(kind=OrderType.LIMIT))),
        (RejectReason.INVALID_ORDER,
         lambda: (PaperBroker({"R": route()}), [quotes(GOOD)],
                  order(kind=OrderType.STOP, stop=101.0, tif=TimeInForce.IOC))),
        (RejectReason.UNKNOWN_ROUTE, lambda: (PaperBroker({"R": route()}), [quotes(GOOD)], order(route_id="X"))),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "",
)
def test_each_rejection_reason(reason, setup):
    b, data, o = setup()
    for batch in data:
        b.on_quotes(batch)
    events = b.submit(o, 1000 * MS if data else 0) + b.advance_to(2000 * MS)
    got, incidents = _rejected(b, events)
    assert got == reason
    assert [i.kind for i in incidents] == [reason]
    assert incidents[0].detail  # a human-readable detail as well


def test_the_stale_threshold_is_inclusive():
    b = PaperBroker({"R": route(stale_ns=500 * MS)})
    b.on_quotes(quotes(GOOD))
    b.submit(order(), 500 * MS)
    assert statuses(b.advance_to(500 * MS))[-1] == "filled"
    b.submit(order("o2"), 500 * MS + 1)
    assert statuses(b.advance_to(500 * MS + 1), "o2")[-1] == "rejected"


def test_disconnect_cancels_other_working_orders_on_the_same_route():
    b = PaperBroker({"C": route(route_id="C", disconnect_probability=0.5)}, seed=3)
    b.on_quotes(quotes(GOOD))
    outcomes = {}
    for i in range(20):
        coid = f"o{i}"
        b.submit(order(coid, kind=OrderType.LIMIT, limit=90.0, route_id="C"), 0)
        outcomes[coid] = b.order(coid).status
    disconnected = [c for c in outcomes if b.order(c).reason == RejectReason.SIMULATED_DISCONNECT]
    assert disconnected, "with p=0.5 over 20 orders a disconnect happens (seeded)"
    first = disconnected[0]
    earlier = [f"o{i}" for i in range(int(first[1:]))]
    assert earlier and all(b.order(c).status == "cancelled" and b.order(c).reason == "disconnect" for c in earlier)


def test_duplicate_client_order_id():
    b = PaperBroker({"R": route()})
    b.on_quotes(quotes(GOOD))
    first = b.submit(order(qty=10), 0)
    assert statuses(first) == ["new", "accepted", "filled"]
    assert b.submit(order(qty=10), 0) == []  # identical resend: the original stands, nothing new
    events = b.submit(order(qty=11), 0)  # same id, different order
    assert [e.reason for e in events if isinstance(e, OrderEvent)] == [RejectReason.DUPLICATE_CLIENT_ORDER_ID]
    assert b.order("o1").status == "filled" and b.order("o1").filled_quantity == 10.0


def test_orders_in_the_past_of_processed_data_are_refused():
    b = PaperBroker({"R": route()})
    b.on_quotes(quotes(GOOD, (10, 99.0, 100.0, 1, 1)))
    with pytest.raises(ValueError, match="look-ahead"):
        b.submit(order(), 5 * MS)


def test_cancel_of_an_unknown_or_finished_order_is_an_incident_not_a_state_change():
    b = PaperBroker({"R": route()})
    b.on_quotes(quotes(GOOD))
    b.submit(order(qty=1), 0)
    [incident] = b.cancel("o1", 0)
    assert incident.kind == "cancel_rejected" and "already filled" in incident.detail
    [incident] = b.cancel("nope", 0)
    assert incident.detail == "unknown order"


def test_zero_volume_check_uses_recent_trades():
    b = PaperBroker({"R": route(FillModel.SQRT_IMPACT, impact_k=1.0, window_ns=1000 * MS)})
    b.on_trades(trades((0, 100.0, 50, 0)))
    b.on_quotes(quotes((1, 99.0, 101.0, 10, 10)))
    assert statuses(b.submit(order(side=Side.SELL, qty=5), 1 * MS))[-1] == "filled"
    b.on_quotes(quotes((2000, 99.0, 101.0, 10, 10)))
    assert statuses(b.submit(order("o2", qty=5), 2000 * MS), "o2")[-1] == "rejected"  # volume aged out
    assert b.order("o2").reason == RejectReason.ZERO_VOLUME


def test_the_paper_broker_is_a_broker_adapter():
    from ifns_paper.engine.orders import BrokerAdapter

    assert isinstance(PaperBroker({}), BrokerAdapter)


def test_forgotten_orders_stay_idempotent_and_the_state_stops_growing():
    import pickle

    b = PaperBroker({"R": route()})
    b.on_quotes(quotes((0, 99.0, 100.0, 1e6, 1e6)))  # deep enough for every order at once
    sizes = []
    for i in range(300):
        b.submit(order(coid=f"o{i}", qty=10), 0)
        if i % 100 == 99:
            assert b.forget_finished() == 100
            sizes.append(len(pickle.dumps(b)))
    assert b.order("o1") is None  # forgotten
    assert b.submit(order(coid="o1", qty=10), 0) == []  # identical resend: still a no-op
    events = b.submit(order(coid="o1", qty=11), 0)  # a different order under a used id
    assert [e.reason for e in events if isinstance(e, OrderEvent)] == [RejectReason.DUPLICATE_CLIENT_ORDER_ID]
    late = b.cancel("o1", 0)
    assert [(i.kind, i.detail) for i in late if isinstance(i, Incident)] == [
        ("cancel_rejected", "order is already filled")]
    # what is kept per forgotten order is a few dozen bytes, not its fills and working state
    assert (sizes[2] - sizes[1]) < 100 * 120, sizes
    restored = pickle.loads(pickle.dumps(b))  # the digests survive a checkpoint (another process)
    assert restored.submit(order(coid="o2", qty=10), 0) == []
