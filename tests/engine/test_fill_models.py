"""Hand-computed fills for each model on small quote/trade sequences."""

from __future__ import annotations

import math

import pytest

from ifns_paper.engine.broker import PaperBroker
from ifns_paper.engine.orders import Liquidity, OrderType, Side, TimeInForce
from ifns_paper.engine.routes import FillModel
from tests.engine.helpers import MS, fills, order, quotes, route, statuses, trades


def broker(**kw) -> PaperBroker:
    return PaperBroker({"R": route(**kw)})


# --- touch -------------------------------------------------------------------------------------


def test_market_order_fills_at_the_quote_in_force_on_arrival_not_at_submission():
    # Given a quote at 0 ms, an order sent at 0 ms with 10 ms latency, and a new quote at 5 ms
    b = broker(insert_latency_ns=10 * MS)
    b.on_quotes(quotes((0, 1.0000, 1.0002, 1e6, 1e6)))
    assert statuses(b.submit(order(qty=1000), 0)) == ["new"]
    # When data moves past the arrival time
    events = b.on_quotes(quotes((5, 1.0010, 1.0012, 1e6, 1e6), (15, 1.0100, 1.0102, 1e6, 1e6)))
    # Then it filled at the 5 ms ask (in force at 10 ms), not 0 ms (stale) or 15 ms (future)
    [fill] = fills(events)
    assert (fill.price, fill.quantity, fill.ts) == (1.0012, 1000.0, 10 * MS)
    assert fill.arrival_mid == pytest.approx(1.0011)
    assert fill.slippage_bps == pytest.approx((1.0012 - 1.0011) / 1.0011 * 1e4)
    assert statuses(events) == ["accepted", "filled"]


def test_an_order_is_not_resolved_before_data_covers_its_arrival():
    b = broker(insert_latency_ns=10 * MS)
    b.on_quotes(quotes((0, 1.0, 1.01, 100, 100)))
    b.submit(order(qty=10), 0)
    assert b.on_quotes(quotes((9, 1.0, 1.01, 100, 100))) == []  # 9 ms < arrival at 10 ms
    assert b.order("o1").status == "new"
    assert fills(b.advance_to(10 * MS))[0].price == 1.01  # quiet market: the last quote is in force


def test_walk_takes_synthetic_levels_each_depth_bps_worse():
    b = broker(beyond_displayed="walk", depth_impact_bps=2.0)
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    events = b.submit(order(qty=100), 0)
    got = [(f.quantity, f.price) for f in fills(events)]
    assert got == [(40.0, 100.0), (40.0, pytest.approx(100.02)), (20.0, pytest.approx(100.04))]


def test_rest_leaves_the_remainder_working_against_later_displayed_size():
    b = broker(beyond_displayed="rest")
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    first = fills(b.submit(order(qty=100), 0))
    assert [(f.quantity, f.price) for f in first] == [(40.0, 100.0)]
    later = fills(b.on_quotes(quotes((1, 99.0, 100.5, 50, 30), (2, 99.0, 100.7, 50, 50))))
    assert [(f.quantity, f.price, f.ts) for f in later] == [(30.0, 100.5, 1 * MS), (30.0, 100.7, 2 * MS)]
    assert b.order("o1").status == "filled"


def test_reject_refuses_more_than_displayed():
    b = broker(beyond_displayed="reject")
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    events = b.submit(order(qty=41), 0)
    assert statuses(events) == ["new", "rejected"]
    assert b.order("o1").reason == "insufficient_liquidity"


def test_ioc_cancels_what_the_touch_cannot_fill():
    b = broker(beyond_displayed="rest")
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    events = b.submit(order(qty=100, tif=TimeInForce.IOC), 0)
    assert [f.quantity for f in fills(events)] == [40.0]
    assert statuses(events)[-1] == "cancelled" and b.order("o1").reason == "ioc_remainder"


def test_fok_fills_nothing_when_it_cannot_fill_everything():
    b = broker(beyond_displayed="rest")
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    events = b.submit(order(qty=100, tif=TimeInForce.FOK), 0)
    assert fills(events) == []
    assert b.order("o1").reason == "fok_not_fillable"
    # the failed FOK took nothing: an order for exactly the displayed size fills in full
    events = b.submit(order("o2", qty=40, tif=TimeInForce.FOK), 0)
    assert [f.quantity for f in fills(events)] == [40.0]


def test_two_orders_share_the_displayed_size_of_one_quote():
    b = broker(beyond_displayed="rest")
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    a = fills(b.submit(order("a", qty=30), 0))
    c = fills(b.submit(order("c", qty=30), 0))
    assert [f.quantity for f in a] == [30.0] and [f.quantity for f in c] == [10.0]


def test_sell_takes_the_bid():
    b = broker()
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 40)))
    [fill] = fills(b.submit(order(side=Side.SELL, qty=20), 0))
    assert fill.price == 99.0 and fill.slippage_bps == pytest.approx((99.5 - 99.0) / 99.5 * 1e4)


# --- fees ---------------------------------------------------------------------------------------


def test_taker_fee_in_bps_with_a_minimum_per_fill():
    b = broker(taker_bps=1.0, min_fee=0.5)
    b.on_quotes(quotes((0, 99.0, 100.0, 1e6, 1e6)))
    [small] = fills(b.submit(order("s", qty=10), 0))  # 1000 notional * 1 bp = 0.1 -> minimum 0.5
    [big] = fills(b.submit(order("b", qty=100), 0))  # 10000 * 1 bp = 1.0
    assert (small.fee, big.fee) == (0.5, pytest.approx(1.0))


def test_maker_rebate_has_no_minimum():
    b = broker(maker_bps=-0.2, min_fee=1.0)
    b.on_quotes(quotes((0, 99.0, 100.0, 10, 10)))
    b.submit(order(qty=5, kind=OrderType.LIMIT, limit=99.5), 0)
    [fill] = fills(b.on_quotes(quotes((1, 99.0, 99.4, 10, 10))))  # ask crosses through 99.5
    assert fill.liquidity is Liquidity.MAKER and fill.fee == pytest.approx(-5 * 99.5 * 0.2 / 1e4)


# --- limit orders with queue position -----------------------------------------------------------


def test_resting_limit_waits_for_the_queue_ahead_then_fills_at_its_limit():
    # Given a buy limit joining the bid at 99.0 behind 100 displayed
    b = broker()
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    events = b.submit(order(qty=50, kind=OrderType.LIMIT, limit=99.0), 0)
    assert statuses(events) == ["new", "accepted"] and fills(events) == []
    # When sells trade at 99.0: 60 (queue 40 left), then 70 (30 beyond the queue)
    events = b.on_trades(trades((1, 99.0, 60, -1), (2, 99.0, 70, -1)))
    assert [(f.quantity, f.price, f.ts) for f in fills(events)] == [(30.0, 99.0, 2 * MS)]
    # A buy-initiated print at our price does not reach a resting bid
    assert fills(b.on_trades(trades((3, 99.0, 500, +1)))) == []
    # Then a trade through the limit fills the rest, at the limit, never better
    [fill] = fills(b.on_trades(trades((4, 98.9, 1, -1))))
    assert (fill.quantity, fill.price, fill.liquidity) == (20.0, 99.0, Liquidity.MAKER)


def test_limit_improving_the_touch_has_no_queue_ahead():
    b = broker()
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=50, kind=OrderType.LIMIT, limit=99.2), 0)
    [fill] = fills(b.on_trades(trades((1, 99.2, 10, -1))))
    assert (fill.quantity, fill.price) == (10.0, 99.2)


def test_probabilistic_fill_on_touch_is_seeded():
    def run(seed):
        b = PaperBroker({"R": route(touch_fill_probability=0.5)}, seed=seed)
        b.on_quotes(quotes((0, 99.0, 99.5, 1e9, 100)))
        b.submit(order(qty=1000, kind=OrderType.LIMIT, limit=99.0), 0)
        events = b.on_trades(trades(*[(i, 99.0, 1, -1) for i in range(1, 201)]))
        return [f.ts for f in fills(events)]

    filled = run(1)
    assert 60 < len(filled) < 140  # about half of the 200 touches
    assert run(1) == filled and run(2) != filled


def test_marketable_limit_takes_liquidity_only_up_to_its_limit():
    b = broker(beyond_displayed="walk", depth_impact_bps=10.0)
    b.on_quotes(quotes((0, 99.0, 100.0, 10, 10)))
    events = b.submit(order(qty=50, kind=OrderType.LIMIT, limit=100.15), 0)
    # touch 100.00 x10, level 1 at 100.10 x10; level 2 (100.20) is beyond the limit
    assert [(f.quantity, f.price, f.liquidity) for f in fills(events)] == [
        (10.0, 100.0, Liquidity.TAKER), (10.0, pytest.approx(100.1), Liquidity.TAKER)]
    assert b.order("o1").status == "partially_filled"  # 30 rest at 100.15 with no queue ahead


# --- stops --------------------------------------------------------------------------------------


def test_buy_stop_triggers_on_the_ask_and_fills_as_market():
    b = broker()
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=10, kind=OrderType.STOP, stop=100.0), 0)
    events = b.on_quotes(quotes((1, 99.4, 99.9, 100, 100), (2, 99.6, 100.1, 100, 100), (3, 99.9, 100.4, 100, 100)))
    [fill] = fills(events)
    assert (fill.price, fill.ts) == (100.1, 2 * MS)


def test_sell_stop_limit_triggers_on_the_bid_then_rests_at_its_limit():
    b = broker()
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(side=Side.SELL, qty=10, kind=OrderType.STOP_LIMIT, stop=98.0, limit=97.9), 0)
    events = b.on_quotes(quotes((1, 97.8, 98.2, 100, 100)))  # bid 97.8 <= 98 triggers; bid below limit
    assert fills(events) == []
    [fill] = fills(b.on_quotes(quotes((2, 98.0, 98.3, 100, 100))))  # bid 98.0 > 97.9: quote through
    assert (fill.price, fill.liquidity) == (97.9, Liquidity.MAKER)


@pytest.mark.parametrize("split", [False, True], ids=["one_batch_of_prints", "a_batch_per_print"])
def test_a_stop_triggered_by_a_print_rests_as_a_limit_for_the_later_prints_of_the_same_batch(split):
    # Sell stop-limit, stop 99.5, limit 99.65. The bid stays at 99.6 (> stop: quotes never trigger
    # it). A print at 99.5 (<= stop) at 10 ms triggers it; the bid 99.6 < limit 99.65, so it rests.
    # A print at 99.9 at 20 ms is through the limit: the whole order fills at 99.65 at 20 ms —
    # whether the two prints come in one batch or in two (found by the batch-boundary property).
    b = broker()
    b.on_quotes(quotes((0, 99.6, 99.7, 100, 100)))
    b.submit(order(side=Side.SELL, qty=10, kind=OrderType.STOP_LIMIT, stop=99.5, limit=99.65), 0)
    prints = [(10, 99.5, 1.0, -1), (20, 99.9, 5.0, 0)]
    batches = [trades(p) for p in prints] if split else [trades(*prints)]
    events = [e for batch in batches for e in b.on_trades(batch)]
    [fill] = fills(events)
    assert (fill.quantity, fill.price, fill.ts, fill.liquidity) == (10.0, 99.65, 20 * MS, Liquidity.MAKER)


# --- volume participation ------------------------------------------------------------------------


def test_vwap_fills_a_share_of_each_interval_at_its_vwap_plus_half_spread():
    b = broker(model=FillModel.VWAP, max_participation=0.1, interval_ns=1000 * MS)
    b.on_trades(trades((-500, 100.0, 1, 0)))  # some volume before arrival
    b.on_quotes(quotes((0, 99.9, 100.1, 100, 100)))
    b.submit(order(qty=25), 0)
    # Interval [0, 1000): 100 @ 100.0 and 100 @ 101.0 -> VWAP 100.5, cap 20
    events = b.on_trades(trades((100, 100.0, 100, 0), (900, 101.0, 100, 0), (1500, 102.0, 100, 0)))
    [fill] = fills(events)
    assert (fill.quantity, fill.price, fill.ts) == (20.0, pytest.approx(100.5 + 0.1), 1000 * MS)
    # Interval [1000, 2000): 100 @ 102 -> cap 10, 5 left to fill
    [fill] = fills(b.advance_to(2000 * MS))
    assert (fill.quantity, fill.price) == (5.0, pytest.approx(102.1))
    assert b.order("o1").status == "filled"


def test_vwap_remainder_expires_when_configured():
    b = broker(model=FillModel.VWAP, max_participation=0.1, interval_ns=1000 * MS, remainder="expire")
    b.on_trades(trades((-500, 100.0, 1, 0)))
    b.on_quotes(quotes((0, 99.9, 100.1, 100, 100)))
    b.submit(order(qty=25), 0)
    events = b.on_trades(trades((100, 100.0, 100, 0), (1500, 100.0, 100, 0)))
    assert [f.quantity for f in fills(events)] == [10.0]
    assert b.order("o1").status == "expired" and b.order("o1").reason == "participation_remainder"


# --- square-root impact -----------------------------------------------------------------------------


def _impact_fill(qty: float, mids: list[float], volume: float) -> float:
    b = broker(model=FillModel.SQRT_IMPACT, impact_k=0.5, window_ns=60_000 * MS)
    rows = [(i * 10, m - 0.05, m + 0.05, 100, 100) for i, m in enumerate(mids)]
    b.on_quotes(quotes(*rows))
    b.on_trades(trades((5, mids[0], volume, 0)))
    [fill] = fills(b.submit(order(qty=qty), rows[-1][0] * MS))
    return fill.price


def test_sqrt_impact_price_by_hand():
    mids = [100.0, 101.0, 100.0]
    var = 2 * math.log(101.0 / 100.0) ** 2  # realized variance of log mid over the window
    expected = 100.0 * (1 + 0.05 / 100.0 + 0.5 * math.sqrt(var * 400 / 10_000))
    assert _impact_fill(400, mids, 10_000) == pytest.approx(expected, rel=1e-12)


def test_sqrt_impact_costs_more_for_larger_orders_and_higher_volatility():
    calm, wild = [100.0, 100.1, 100.0], [100.0, 102.0, 100.0]
    assert _impact_fill(100, calm, 10_000) < _impact_fill(1000, calm, 10_000)
    assert _impact_fill(100, calm, 10_000) < _impact_fill(100, wild, 10_000)
    assert _impact_fill(100, calm, 10_000) > _impact_fill(100, calm, 100_000)  # deeper market: cheaper


# --- cancels and expiry -----------------------------------------------------------------------------


def test_cancel_takes_effect_after_its_latency_and_fills_can_happen_before():
    b = broker(cancel_latency_ns=5 * MS)
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=10, kind=OrderType.LIMIT, limit=99.2), 0)
    assert b.cancel("o1", 1 * MS) == []  # effective at 6 ms
    events = b.on_quotes(quotes((4, 99.0, 99.1, 100, 100), (8, 99.0, 99.0, 100, 100)))
    assert [f.ts for f in fills(events)] == [4 * MS]
    assert b.order("o1").status == "filled"


def test_cancel_of_a_resting_order():
    b = broker(cancel_latency_ns=5 * MS)
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=10, kind=OrderType.LIMIT, limit=98.0), 0)
    b.cancel("o1", 1 * MS)
    events = b.advance_to(10 * MS)
    assert statuses(events) == ["cancelled"] and events[0].ts == 6 * MS


def test_day_orders_expire_at_utc_midnight():
    day = 86_400_000 * MS
    b = broker()
    b.on_quotes(quotes((1000, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=10, kind=OrderType.LIMIT, limit=98.0, tif=TimeInForce.DAY), 1000 * MS)
    assert b.advance_to(day - 1) == []
    events = b.advance_to(day)
    assert statuses(events) == ["expired"] and b.order("o1").reason == "end_of_day"


# --- market-data latency: the strategy's, not the venue's ---------------------------------------


def test_market_data_latency_does_not_make_the_venue_late():
    # Quotes at 0 and 8 ms; the order arrives at 10 ms: the 8 ms quote is in force at the
    # venue whatever the route's market-data latency (that delays the strategy's decisions)
    def fill_price(md_ms: int) -> float:
        b = broker(insert_latency_ns=10 * MS, market_data_latency_ns=md_ms * MS)
        b.on_quotes(quotes((0, 1.00, 1.01, 100, 100)))
        b.submit(order(qty=1), 0)
        return fills(b.on_quotes(quotes((8, 1.01, 1.02, 100, 100), (30, 1.05, 1.06, 100, 100))))[0].price

    assert fill_price(0) == fill_price(5) == 1.02


def test_resting_orders_react_at_the_exchange_time_of_the_data():
    b = broker(market_data_latency_ns=5 * MS)
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    b.submit(order(qty=10, kind=OrderType.LIMIT, limit=99.2), 10 * MS)
    [fill] = fills(b.on_quotes(quotes((20, 99.0, 99.1, 100, 100))))  # through the limit at 20 ms
    assert fill.ts == 20 * MS


def test_liquidity_bookkeeping_does_not_grow_with_the_number_of_quotes():
    import pickle

    b = broker(depth_window_ns=3_000 * MS)
    sizes = []
    for i in range(50):
        b.on_quotes(quotes((i * 100, 99.0, 100.0, 10, 10)))  # 5 s of quotes, 10 a second
        b.submit(order(f"o{i}", qty=1), i * 100 * MS)
        b.forget_finished()
        sizes.append(len(pickle.dumps(b._symbols["EURUSD"])))
    sym = b._symbols["EURUSD"]
    assert len(sym.s_sec) <= 4  # the window's whole seconds and the current one, not every quote
    assert sizes[-1] == sizes[-11]  # a second later, the same size


def test_a_broker_checkpointed_by_the_previous_engine_goes_on():
    """A session checkpointed before this round of changes (routes and symbol state stored as
    lists then) restores with its working order, which fills when the market trades through it."""
    import pickle
    import zlib
    from pathlib import Path

    state = (Path(__file__).parent / "data" / "broker_before_round_two.pickle.z").read_bytes()
    b = pickle.loads(zlib.decompress(state))  # a buy limit at 99.2 resting since 11 ms, last data at 20 ms
    route = b.routes["R"]
    assert (route.insert_latency_ns, route.depth_levels, route.refill_ns) == (10 * MS, 10, 1_000 * MS)
    assert b.order("resting").status == "accepted"
    [fill] = fills(b.on_quotes(quotes((30, 99.0, 99.1, 100, 100))))  # the ask goes through the limit
    assert (fill.quantity, fill.price, fill.ts) == (10.0, 99.2, 30 * MS)
    # and it takes liquidity with the new bookkeeping
    [taken] = fills(b.submit(order("market", qty=5), 40 * MS) + b.on_quotes(quotes((50, 99.0, 99.1, 100, 100))))
    assert (taken.quantity, taken.price) == (5.0, 99.1)
