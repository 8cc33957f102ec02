"""Paper Broker realism, round two (issue 13): every expected price and quantity worked out by
hand from the rules in the design, on tiny quote/trade sequences. Times in ms (MS = 1e6 ns)."""

from __future__ import annotations

import math

import pytest

from ifns_paper.engine.broker import PaperBroker
from ifns_paper.engine.orders import OrderEvent, OrderType, Side, TimeInForce
from ifns_paper.engine.routes import FillModel
from tests.engine.helpers import MS, fills, order, quotes, route, statuses, trades


def broker(**kw) -> PaperBroker:
    return PaperBroker({"R": route(**kw)})


def taken(events) -> list[tuple]:
    return [(f.quantity, f.price) for f in fills(events)]


# --- 1. market-data latency is the strategy's problem, not the venue's -------------------------


@pytest.mark.parametrize(
    ("jump_ms", "expected_ask"),
    [(17, 1.02), (19, 1.02), (20, 1.02), (21, 1.01)],
    ids=["jump_3ms_before_arrival", "jump_1ms_before_arrival", "jump_at_arrival", "jump_1ms_after_arrival"],
)
def test_market_order_fills_on_the_exchange_quote_in_force_at_arrival_whatever_the_data_latency(
        jump_ms, expected_ask):
    # insert 20 ms, market data 5 ms: sent at 0 -> arrives at 20 ms; the venue has every quote
    # with ts <= 20 ms (no +5 ms): a jump at 17, 19 or 20 ms is used, one at 21 ms is not.
    b = broker(insert_latency_ns=20 * MS, market_data_latency_ns=5 * MS)
    b.on_quotes(quotes((0, 1.00, 1.01, 100, 100)))
    b.submit(order(qty=1), 0)
    events = b.on_quotes(quotes((jump_ms, 1.01, 1.02, 100, 100), (30, 1.04, 1.05, 100, 100)))
    [fill] = fills(events)
    assert (fill.price, fill.ts) == (expected_ask, 20 * MS)


def test_staleness_is_arrival_minus_the_exchange_time_of_the_quote_in_force():
    # md 300 ms is ignored. Quotes at 0 and 200 ms, stale limit 250 ms.
    b = broker(market_data_latency_ns=300 * MS, stale_ns=250 * MS)
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100), (200, 99.0, 99.6, 100, 100)))
    # o1 arrives at 400 ms: quote in force is the 200 ms one, 400 - 200 = 200 ms old <= 250 -> fills at 99.6
    events = b.submit(order("o1", qty=1), 400 * MS) + b.advance_to(400 * MS)
    assert statuses(events, "o1")[-1] == "filled" and taken(events) == [(1.0, 99.6)]
    # o2 arrives at 460 ms: 460 - 200 = 260 ms old > 250 -> stale
    events = b.submit(order("o2", qty=1), 460 * MS) + b.advance_to(460 * MS)
    assert statuses(events, "o2")[-1] == "rejected" and b.order("o2").reason == "stale_quote"


@pytest.mark.parametrize(("through_ms", "fills_it"), [(14, True), (15, False), (16, False)],
                         ids=["1ms_before_cancel", "at_cancel", "1ms_after_cancel"])
def test_a_cancel_stops_fills_exactly_its_latency_after_it_is_sent(through_ms, fills_it):
    # Buy limit 99.2 rests from 0 ms. Cancel sent at 10 ms, cancel latency 5 ms -> effective 15 ms
    # exchange time (md 5 ms plays no part). An ask of 99.1 (through the limit) at 14 ms fills the
    # order at its limit; at 15 or 16 ms the order is already cancelled.
    b = broker(cancel_latency_ns=5 * MS, market_data_latency_ns=5 * MS)
    b.on_quotes(quotes((0, 99.0, 99.5, 100, 100)))
    assert statuses(b.submit(order(qty=10, kind=OrderType.LIMIT, limit=99.2), 0)) == ["new", "accepted"]
    b.cancel("o1", 10 * MS)
    events = b.on_quotes(quotes((through_ms, 99.0, 99.1, 100, 100), (30, 99.0, 99.5, 100, 100)))
    if fills_it:
        [fill] = fills(events)
        assert (fill.quantity, fill.price, fill.ts) == (10.0, 99.2, 14 * MS)
        assert b.order("o1").status == "filled"
    else:
        assert fills(events) == []
        assert statuses(events) == ["cancelled"]
        assert [e.ts for e in events if isinstance(e, OrderEvent)] == [15 * MS]
        assert b.order("o1").reason == "requested"


# --- 2. vwap participation counts only volume printed after arrival ----------------------------


def vwap_broker(qty=25.0) -> PaperBroker:
    # max participation 0.1, interval 1000 ms, insert 10 ms: sent at 0, arrives at 10 ms,
    # first interval (10, 1010) ms. Quote at 0: half spread (100.1 - 99.9) / 2 = 0.1.
    b = broker(model=FillModel.VWAP, max_participation=0.1, interval_ns=1000 * MS, insert_latency_ns=10 * MS)
    b.on_quotes(quotes((0, 99.9, 100.1, 100, 100)))
    b.submit(order(qty=qty), 0)
    return b


def test_vwap_ignores_volume_printed_before_the_order_arrived():
    b = vwap_broker()
    # 500 @ 100 at 7 ms is before arrival; 100 @ 101 at 12 ms counts -> volume 100, cap 10, VWAP 101
    events = b.on_trades(trades((7, 100.0, 500, 0), (12, 101.0, 100, 0))) + b.advance_to(1010 * MS)
    [fill] = fills(events)
    assert (fill.quantity, fill.price, fill.ts) == (10.0, pytest.approx(101.0 + 0.1), 1010 * MS)


def test_vwap_print_exactly_at_arrival_does_not_count():
    b = vwap_broker()
    # 1 @ 100 at 7 ms (before), 500 @ 100 at 10 ms (= arrival: excluded), 100 @ 101 at 12 ms
    # -> interval volume 100, cap 10, VWAP 101 -> 10 @ 101.1 (not min(25, 60) at 100.17)
    events = b.on_trades(trades((7, 100.0, 1, 0), (10, 100.0, 500, 0), (12, 101.0, 100, 0)))
    events += b.advance_to(1010 * MS)
    [fill] = fills(events)
    assert (fill.quantity, fill.price, fill.ts) == (10.0, pytest.approx(101.1), 1010 * MS)


def test_vwap_each_fill_is_at_most_the_cap_times_the_volume_of_its_interval():
    b = vwap_broker(qty=25.0)
    events = b.on_trades(trades((7, 100.0, 50, 0), (500, 100.0, 100, 0), (900, 102.0, 100, 0),
                                (1500, 103.0, 30, 0)))
    events += b.on_quotes(quotes((1800, 102.8, 103.2, 100, 100)))  # half spread now 0.2
    events += b.on_trades(trades((2500, 104.0, 100, 0)))
    events += b.advance_to(3010 * MS)
    got = [(f.quantity, f.price, f.ts) for f in fills(events)]
    assert got == [
        # (10, 1010): 100 @ 100 + 100 @ 102 -> VWAP 101, 0.1 x 200 = 20, + half spread 0.1
        (20.0, pytest.approx(101.1), 1010 * MS),
        # (1010, 2010): 30 @ 103 -> 0.1 x 30 = 3, + half spread 0.2 of the 1800 ms quote
        (3.0, pytest.approx(103.2), 2010 * MS),
        # (2010, 3010): 100 @ 104 -> cap 10, leaves 25 - 23 = 2
        (2.0, pytest.approx(104.2), 3010 * MS),
    ]
    assert b.order("o1").status == "filled"


# --- 3/4/5. touch: a finite synthetic book, consumed liquidity persists ------------------------


def test_the_worked_example_of_the_design_walk_three_levels_then_partial_refill():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0, depth_levels=3, refill_ns=1000 * MS)
    b.on_quotes(quotes((0, 99.99, 100.0, 10, 10)))
    # median ask size {10} = 10 -> 10 @ 100.00, then 10 @ 100 x (1 + k/1e4) for k = 1..3 -> 40 of 55
    first = b.submit(order(qty=55), 0)
    assert taken(first) == [(10.0, 100.0), (10.0, pytest.approx(100.01)), (10.0, pytest.approx(100.02)),
                            (10.0, pytest.approx(100.03))]
    assert b.order("o1").status == "partially_filled"
    # 500 ms later, same ask 100.00: taken 40 - 40 x 500/1000 = 20 -> displayed 10 and level 1 gone;
    # 15 left takes 10 @ 100.02 (level 2) and 5 @ 100.03 (level 3)
    later = fills(b.on_quotes(quotes((500, 99.99, 100.0, 10, 10))))
    assert [(f.quantity, f.price, f.ts) for f in later] == [(10.0, pytest.approx(100.02), 500 * MS),
                                                            (5.0, pytest.approx(100.03), 500 * MS)]
    assert b.order("o1").status == "filled"


def test_an_order_a_thousand_times_the_displayed_size_is_not_filled_on_one_quote():
    b = broker(beyond_displayed="walk", depth_impact_bps=2.0, depth_levels=5)
    b.on_quotes(quotes((0, 99.98, 100.0, 10, 10)))
    got = fills(b.submit(order(qty=10_000), 0))
    # displayed 10 + 5 levels x median 10 = 60; deepest level 100 x (1 + 5 x 2 / 1e4) = 100.10
    assert sum(f.quantity for f in got) == pytest.approx(60.0)
    assert max(f.price for f in got) == pytest.approx(100.10)
    assert b.order("o1").status == "partially_filled"  # the GTC remainder waits for later quotes


def test_the_synthetic_book_is_ten_levels_deep_by_default():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0)
    b.on_quotes(quotes((0, 99.99, 100.0, 10, 10)))
    got = fills(b.submit(order(qty=10_000), 0))
    # default depth_levels 10: 10 + 10 x 10 = 110; deepest 100 x (1 + 10 x 1 / 1e4) = 100.10
    assert sum(f.quantity for f in got) == pytest.approx(110.0)
    assert max(f.price for f in got) == pytest.approx(100.10)


def test_level_size_is_the_median_of_the_sides_size_once_a_second_over_the_window():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0, depth_levels=2, depth_window_ns=2000 * MS)
    b.on_quotes(quotes((0, 99.99, 100.0, 1000, 1000),                                  # second 0
                       (1000, 99.99, 100.0, 30, 30), (1900, 99.99, 100.0, 20, 20),  # second 1: ends at 20
                       (2500, 99.99, 100.0, 40, 40),                                 # second 2: ends at 40
                       (3500, 99.99, 100.0, 10, 10)))                                # now, in second 3
    events = b.submit(order(qty=100, tif=TimeInForce.IOC), 3500 * MS)
    # a 2 s window before second 3 is seconds 1 and 2, sampled at their end: {20, 40}, and the
    # quote's own 10 -> median 20 (second 0's 1000 is out of the window; the 30 at 1000 ms was
    # not the end of its second). Book: 10 @ 100.00 (displayed), 20 @ 100.01, 20 @ 100.02 -> 50
    assert taken(events) == [(10.0, 100.0), (20.0, pytest.approx(100.01)), (20.0, pytest.approx(100.02))]


def _thin_touch_cost(side: Side) -> tuple[int, float]:
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0)
    b.on_quotes(quotes((0, 29_999.0, 30_001.0, 1.5, 1.5), (1000, 29_999.0, 30_001.0, 1.5, 1.5),
                       (2000, 29_999.0, 30_001.0, 0.0031, 0.0031)))
    got = fills(b.submit(order(side=side, qty=0.1), 2000 * MS))
    touch = 30_001.0 if side is Side.BUY else 29_999.0
    avg = sum(f.quantity * f.price for f in got) / sum(f.quantity for f in got)
    return len(got), side.sign * (avg / touch - 1) * 1e4


def test_a_tiny_displayed_size_costs_about_one_level_not_the_whole_ladder():
    # seconds 0 and 1 ended at 1.5, the quote shows 0.0031: median of {1.5, 1.5, 0.0031} = 1.5;
    # 0.0031 at the touch, 0.0969 at level 1 (1 bp worse)
    # -> cost vs touch = 0.0969 x 1 bp / 0.1 = 0.969 bp, for a buy on the ask and a sell on the bid
    buy_levels, buy_bps = _thin_touch_cost(Side.BUY)
    sell_levels, sell_bps = _thin_touch_cost(Side.SELL)
    assert buy_levels == sell_levels == 2
    assert buy_bps == pytest.approx(0.969, rel=1e-6)
    assert sell_bps == pytest.approx(buy_bps, rel=1e-9)


def test_rest_does_not_give_back_displayed_size_already_taken_until_it_refills():
    b = broker(beyond_displayed="rest", refill_ns=1000 * MS)
    b.on_quotes(quotes((0, 99.0, 100.0, 50, 5)))
    assert taken(b.submit(order(qty=20), 0)) == [(5.0, 100.0)]
    # same quote 100 ms later: 5 taken, refilled 5 x 100/1000 = 0.5 -> available 5 - 4.5 = 0.5
    [fill] = fills(b.on_quotes(quotes((100, 99.0, 100.0, 50, 5))))
    assert (fill.quantity, fill.price, fill.ts) == (pytest.approx(0.5), 100.0, 100 * MS)
    # the ask moves to 100.5: nothing taken at that price -> the whole 5 displayed
    [fill] = fills(b.on_quotes(quotes((200, 99.0, 100.5, 50, 5))))
    assert (fill.quantity, fill.price, fill.ts) == (5.0, 100.5, 200 * MS)
    assert b.order("o1").filled_quantity == pytest.approx(10.5)


def test_ioc_cancels_what_the_finite_book_cannot_fill():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0, depth_levels=2)
    b.on_quotes(quotes((0, 99.99, 100.0, 10, 10)))
    events = b.submit(order(qty=100, tif=TimeInForce.IOC), 0)
    # book 10 @ 100.00, 10 @ 100.01, 10 @ 100.02 = 30 of 100
    assert taken(events) == [(10.0, 100.0), (10.0, pytest.approx(100.01)), (10.0, pytest.approx(100.02))]
    assert statuses(events)[-1] == "cancelled" and b.order("o1").reason == "ioc_remainder"
    assert b.order("o1").filled_quantity == pytest.approx(30.0)


def test_fok_fills_nothing_when_the_whole_quantity_does_not_fit_in_the_book():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0, depth_levels=2)
    b.on_quotes(quotes((0, 99.99, 100.0, 10, 10)))
    events = b.submit(order(qty=31, tif=TimeInForce.FOK), 0)  # book holds 10 + 2 x 10 = 30
    assert fills(events) == [] and b.order("o1").reason == "fok_not_fillable"
    events = b.submit(order("o2", qty=30, tif=TimeInForce.FOK), 0)  # exactly the book: fills
    assert taken(events) == [(10.0, 100.0), (10.0, pytest.approx(100.01)), (10.0, pytest.approx(100.02))]


def test_fok_limit_counts_only_the_book_within_its_limit():
    b = broker(beyond_displayed="walk", depth_impact_bps=1.0, depth_levels=2)
    b.on_quotes(quotes((0, 99.99, 100.0, 10, 10)))
    # within 100.015: 10 @ 100.00 + 10 @ 100.01 = 20 < 25 -> nothing
    events = b.submit(order(qty=25, kind=OrderType.LIMIT, limit=100.015, tif=TimeInForce.FOK), 0)
    assert fills(events) == [] and b.order("o1").reason == "fok_not_fillable"
    events = b.submit(order("o2", qty=20, kind=OrderType.LIMIT, limit=100.015, tif=TimeInForce.FOK), 0)
    assert taken(events) == [(10.0, 100.0), (10.0, pytest.approx(100.01))]


# --- 6/7. sqrt impact: limits pay the impact up to their limit, one fill takes a share ---------
#
# Quotes at 0..40 ms with mids 100, 100e^0.002, 100, 100e^0.002, 100 and spread 0.02:
# log-mid changes +-0.002 four times -> sigma^2 = 4 x 0.002^2 = 16e-6, sigma = 0.004;
# k = 0.5 -> k sigma = 0.002; at 40 ms mid 100, half spread / mid = 0.01 / 100 = 1e-4. So
#   impact price of q against window volume V:  p(q, V) = 100 x (1 + side x (1e-4 + 0.002 sqrt(q / V)))

UP = 100.0 * math.exp(0.002)


def p(q: float, volume: float, side: int = 1) -> float:
    return 100.0 * (1 + side * (1e-4 + 0.002 * math.sqrt(q / volume)))


def impact_broker(*volumes, **kw) -> PaperBroker:
    """Impact route fed the quotes above and prints (ms, size) at price 100, up to 40 ms."""
    kw = {"impact_k": 0.5, "window_ns": 60_000 * MS, "max_window_share": 0.1, "interval_ns": 1000 * MS, **kw}
    b = broker(model=FillModel.SQRT_IMPACT, **kw)
    b.on_quotes(quotes(*[(i * 10, m - 0.01, m + 0.01, 100, 100) for i, m in enumerate([100.0, UP, 100.0, UP, 100.0])]))
    b.on_trades(trades(*[(ms, 100.0, size, 0) for ms, size in volumes]))
    return b


@pytest.mark.parametrize(("side", "limit"), [(Side.BUY, 100.06), (Side.SELL, 99.94)])
def test_marketable_limit_on_impact_route_fills_as_much_as_its_limit_allows(side, limit):
    b = impact_broker((5, 1000))  # V = 1000, cap 0.1 x 1000 = 100
    events = b.submit(order(side=side, qty=250, kind=OrderType.LIMIT, limit=limit), 40 * MS)
    # q* = V x ((side(limit/mid - 1) - hs/mid) / (k sigma))^2 = 1000 x ((6e-4 - 1e-4) / 2e-3)^2 = 62.5
    # p(62.5, 1000) = 100 x (1 +- (1e-4 + 0.002 x 0.25)) = 100.06 / 99.94: exactly the limit
    [fill] = fills(events)
    assert fill.quantity == pytest.approx(62.5, rel=1e-9)
    assert fill.price == pytest.approx(p(62.5, 1000, side.sign), rel=1e-12)
    assert side.sign * (fill.price - limit) <= 1e-9  # never beyond the limit
    assert b.order("o1").status == "partially_filled"  # 187.5 rests as a limit


@pytest.mark.parametrize(("tif", "filled", "reason"),
                         [(TimeInForce.IOC, 62.5, "ioc_remainder"), (TimeInForce.FOK, 0.0, "fok_not_fillable")])
def test_impact_limit_ioc_cancels_the_rest_and_fok_fills_nothing(tif, filled, reason):
    b = impact_broker((5, 1000))
    events = b.submit(order(qty=250, kind=OrderType.LIMIT, limit=100.06, tif=tif), 40 * MS)
    # as above: 62.5 of 250 fit within 100.06
    assert sum(f.quantity for f in fills(events)) == pytest.approx(filled, rel=1e-9)
    assert b.order("o1").status == "cancelled" and b.order("o1").reason == reason


def test_a_limit_that_does_not_bind_costs_the_same_as_a_market_order():
    # 40 <= q* = 62.5 and <= cap 100: p(40, 1000) = 100 x (1 + 1e-4 + 0.002 x sqrt(0.04)) = 100.05 <= 100.06
    b = impact_broker((5, 1000))
    [limit_fill] = fills(b.submit(order("lim", qty=40, kind=OrderType.LIMIT, limit=100.06), 40 * MS))
    [market_fill] = fills(b.submit(order("mkt", qty=40), 40 * MS))
    assert (limit_fill.quantity, market_fill.quantity) == (40.0, 40.0)
    assert limit_fill.price == pytest.approx(100.05, rel=1e-12)
    assert market_fill.price == pytest.approx(limit_fill.price, rel=1e-12)


def test_one_impact_fill_takes_at_most_a_share_of_the_window_volume_then_interval_shares():
    b = impact_broker((5, 358))
    # arrival 40 ms: q1 = min(100, 0.1 x 358) = 35.8 at p(35.8, 358)
    events = b.submit(order(qty=100), 40 * MS)
    events += b.on_trades(trades((500, 100.0, 200, 0), (1500, 100.0, 1000, 0)))
    events += b.advance_to(2040 * MS)
    got = [(f.quantity, f.price, f.ts) for f in fills(events)]
    assert got == [
        (pytest.approx(35.8), pytest.approx(p(35.8, 358), rel=1e-12), 40 * MS),
        # (40, 1040) ms: 200 printed -> 0.1 x 200 = 20, window volume now 358 + 200 = 558
        (pytest.approx(20.0), pytest.approx(p(20, 558), rel=1e-12), 1040 * MS),
        # (1040, 2040) ms: 1000 printed -> min(100 - 55.8 = 44.2, 100), window volume 1558
        (pytest.approx(44.2), pytest.approx(p(44.2, 1558), rel=1e-12), 2040 * MS),
    ]
    assert b.order("o1").status == "filled"


def test_a_print_at_arrival_is_in_the_impact_window_but_not_in_the_first_interval():
    b = impact_broker((5, 300), (40, 58))
    # V over (arrival - window, arrival] = 300 + 58 = 358 -> 35.8; first interval (40, 1040) ms sees
    # only the 200 at 500 ms -> 20 (not 0.1 x 258 = 25.8)
    events = b.submit(order(qty=100), 40 * MS)
    events += b.on_trades(trades((500, 100.0, 200, 0)))
    events += b.advance_to(1040 * MS)
    assert [f.quantity for f in fills(events)] == [pytest.approx(35.8), pytest.approx(20.0)]


def test_impact_ioc_cancels_the_remainder_after_the_arrival_fill():
    b = impact_broker((5, 358))
    events = b.submit(order(qty=100, tif=TimeInForce.IOC), 40 * MS)
    assert [f.quantity for f in fills(events)] == [pytest.approx(35.8)]  # 0.1 x 358
    assert statuses(events)[-1] == "cancelled" and b.order("o1").reason == "ioc_remainder"


def test_impact_fok_fills_nothing_when_the_share_of_the_window_is_too_small():
    b = impact_broker((5, 358))
    events = b.submit(order(qty=100, tif=TimeInForce.FOK), 40 * MS)  # 35.8 < 100
    assert fills(events) == [] and b.order("o1").reason == "fok_not_fillable"
    # 35 <= 35.8 fits: one fill at p(35, 358)
    [fill] = fills(b.submit(order("o2", qty=35, tif=TimeInForce.FOK), 40 * MS))
    assert (fill.quantity, fill.price) == (35.0, pytest.approx(p(35, 358), rel=1e-12))
