"""Ledger arithmetic by hand: average cost, partial closes, flips, fees, marks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ifns_paper.engine.ledger import Ledger
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
