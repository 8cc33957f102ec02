"""Ledger arithmetic by hand: average cost, partial closes, flips, fees, marks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ifns_paper.engine.ledger import Ledger, LedgerInvariantError
from ifns_paper.engine.orders import Fill, Liquidity, Side


def fill(side: Side, qty: float, price: float, fee: float = 0.0, symbol: str = "X") -> Fill:
    return Fill("f", "o", symbol, side, 0, qty, price, price, 0.0, fee, Liquidity.TAKER, "R")


def test_open_add_partial_close_flip_by_hand():
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, fee=1.0))
    ledger.apply_fill(fill(Side.BUY, 30, 104.0, fee=1.0))
    pos = ledger.position("X")
    assert (pos.quantity, pos.avg_cost) == (40.0, pytest.approx(103.0))  # (10*100 + 30*104) / 40
    ledger.apply_fill(fill(Side.SELL, 15, 110.0, fee=1.0))  # close 15 at +7 each
    assert (pos.quantity, pos.avg_cost, pos.realized) == (25.0, pytest.approx(103.0), pytest.approx(105.0))
    ledger.apply_fill(fill(Side.SELL, 35, 99.0, fee=1.0))  # close 25 at -4 each, then 10 short at 99
    assert pos.realized == pytest.approx(105.0 - 100.0)
    assert (pos.quantity, pos.avg_cost) == (-10.0, 99.0)
    ledger.mark("X", 97.0)
    assert pos.unrealized == pytest.approx(20.0)  # short 10 from 99, marked at 97
    # cash: 10000 - 1000 - 3120 + 1650 + 3465 - 4 fees = 10991
    assert ledger.cash == pytest.approx(10_991.0)
    assert ledger.fees == 4.0
    assert ledger.equity == pytest.approx(10_991.0 - 970.0)
    assert ledger.pnl == pytest.approx(5.0 + 20.0 - 4.0)
    assert (ledger.gross_exposure, ledger.net_exposure) == (pytest.approx(970.0), pytest.approx(-970.0))
    ledger.check_invariant()


def test_closing_to_flat_resets_the_average_cost():
    ledger = Ledger(0.0)
    ledger.apply_fill(fill(Side.SELL, 5, 10.0))
    ledger.apply_fill(fill(Side.BUY, 5, 8.0))
    pos = ledger.position("X")
    assert (pos.quantity, pos.avg_cost, pos.realized) == (0.0, 0.0, 10.0)


def test_positions_carried_in_from_a_backtest_count_as_starting_capital():
    ledger = Ledger(1_000.0, {"EURUSD": (15_000.0, 1.08), "GBPUSD": (-5_000.0, 1.27)})
    assert ledger.starting_capital == pytest.approx(1_000 + 16_200 - 6_350)
    ledger.mark("EURUSD", 1.09)
    assert ledger.unrealized == pytest.approx(150.0)
    ledger.check_invariant()


def traded_ledger() -> Ledger:
    """10,000 cash; bought 10 X at 100 (fee 1), marked at 104. By hand:
    cash 10,000 - 1,000 - 1 = 8,999; equity 8,999 + 10 * 104 = 10,039;
    capital + realized + unrealized - fees = 10,000 + 0 + 10 * (104 - 100) - 1 = 10,039."""
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, fee=1.0))
    ledger.mark("X", 104.0)
    return ledger


def test_an_intact_ledger_passes_the_invariant_check():
    # given a ledger after a fill and a mark
    ledger = traded_ledger()
    # then both sides are 10,039 and the check does not raise
    assert (ledger.cash, ledger.equity) == (8_999.0, 10_039.0)
    ledger.check_invariant()


def test_cash_that_does_not_match_the_fills_breaks_the_invariant():
    # given an intact ledger whose cash is then changed by 1 (a lost or doubled fee)
    ledger = traded_ledger()
    ledger.cash += 1.0

    # when checked, then it raises and shows both sides: 8,999 + 1 + 1,040 vs 10,039
    with pytest.raises(LedgerInvariantError) as err:
        ledger.check_invariant()
    assert str(err.value) == ("cash + positions = 10040.0 but "
                              "capital + realized + unrealized - fees = 10039.0")


def test_a_position_quantity_that_does_not_match_the_fills_breaks_the_invariant():
    # given a position of 10 at an average cost of 100 changed to 11 (a fill booked twice in part)
    ledger = traded_ledger()
    ledger.position("X").quantity = 11.0

    # then equity 8,999 + 11 * 104 = 10,143 but 10,000 + 11 * 4 - 1 = 10,043: off by the cost, 100
    with pytest.raises(LedgerInvariantError, match=r"= 10143\.0 but .* = 10043\.0"):
        ledger.check_invariant()


def test_realized_pnl_that_does_not_match_the_fills_breaks_the_invariant():
    # given a ledger that bought 10 at 100, sold 4 at 110 (realized 4 * 10 = 40), then realized is changed
    ledger = traded_ledger()
    ledger.apply_fill(fill(Side.SELL, 4, 110.0))
    ledger.check_invariant()  # intact: cash 8,999 + 440 = 9,439; equity 9,439 + 6 * 104 = 10,063
    ledger.position("X").realized = 45.0

    # then 10,000 + 45 + 6 * 4 - 1 = 10,068 != 10,063
    with pytest.raises(LedgerInvariantError, match=r"= 10063\.0 but .* = 10068\.0"):
        ledger.check_invariant()


def test_fees_that_do_not_match_the_fills_break_the_invariant():
    # given the ledger's fee total changed from 1 to 0 while cash still paid the fee
    ledger = traded_ledger()
    ledger.fees = 0.0

    # then 10,039 != 10,000 + 40 - 0 = 10,040
    with pytest.raises(LedgerInvariantError):
        ledger.check_invariant()


@pytest.mark.parametrize(("drift", "raises"), [(-50.0, False), (-150.0, True), (50.0, False), (150.0, True)])
def test_the_tolerance_scales_with_the_gross_exposure(drift, raises):
    # given 1,000 cash and a position of 1,000 X at 100 marked at 100: gross 100,000 > capital 1,000,
    # so with rel_tol 1e-3 the tolerance is 1e-3 * 100,000 = 100 (it would be 1 if scaled by the capital)
    ledger = Ledger(1_000.0)
    ledger.apply_fill(fill(Side.BUY, 1000, 100.0))
    assert (ledger.cash, ledger.gross_exposure) == (-99_000.0, 100_000.0)
    ledger.cash += drift

    # then a drift of 50 is within it and 150 is not
    if raises:
        with pytest.raises(LedgerInvariantError):
            ledger.check_invariant(rel_tol=1e-3)
    else:
        ledger.check_invariant(rel_tol=1e-3)


fills_strategy = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.floats(0.001, 1e6), st.floats(0.01, 1e5),
              st.floats(0, 100), st.sampled_from(["A", "B"]), st.floats(0.01, 1e5)),
    max_size=60,
)


@given(fills_strategy)
def test_invariant_holds_after_every_fill(rows):
    ledger = Ledger(1e6)
    for side, qty, price, fee, symbol, mark in rows:
        ledger.apply_fill(fill(side, qty, price, fee, symbol))
        ledger.check_invariant(rel_tol=1e-8)
        ledger.mark(symbol, mark)
        ledger.check_invariant(rel_tol=1e-8)
        net = ledger.position(symbol).bought - ledger.position(symbol).sold
        assert ledger.position(symbol).quantity == pytest.approx(net, rel=1e-9, abs=1e-6)
