"""Numbers and events as the pages show them: units, separators, lot precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mirror_app import formatting as f


@pytest.mark.parametrize(("value", "kw", "expected"), [
    (1234.5, {"currency": "USD"}, "1,234.50 USD"),
    (-1234.5, {"currency": "USD"}, "−1,234.50 USD"),
    (1234.5, {"currency": "USD", "signed": True}, "+1,234.50 USD"),
    (0.0, {"currency": "USD", "signed": True}, "0.00 USD"),
    (None, {}, "—"),
    ("", {}, "—"),  # a template's missing value
    (float("nan"), {}, "—"),
])
def test_money(value, kw, expected):
    currency = kw.pop("currency", "")
    assert f.money(value, currency, **kw) == expected


@pytest.mark.parametrize(("quantity", "lot", "expected"), [
    (21.990000000000002, 0.01, "21.99"),  # the float noise a sum of lots leaves
    (0.30000000000000004, 0.001, "0.300"),
    (12000.0, 1000, "12,000"),
    (-5000.0, 1000, "−5,000"),
    (0.1 + 0.2, None, "0.3"),
])
def test_quantities_at_lot_precision(quantity, lot, expected):
    assert f.qty(quantity, lot) == expected


def test_bps_pct_and_age():
    assert f.bps(1.23456) == "1.2 bps"
    assert f.pct(-0.0134, places=3, signed=True) == "-0.013 %"
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert f.age(now - timedelta(seconds=42), now) == "42 s ago"
    assert f.age(now - timedelta(minutes=5, seconds=59), now) == "5 min ago"
    assert f.age(now - timedelta(hours=3), now) == "3 h ago"


def test_events_read_as_sentences():
    fill = {"symbol": "BTCUSDT", "side": "buy", "quantity": 0.30000000000000004, "price": 91234.5,
            "slippage_bps": 1.26, "fee": 13.685175, "liquidity": "taker", "route_id": "SIM_TOUCH"}
    assert f.describe_event("order_filled", fill, lots={"BTCUSDT": 0.001}, currency="USDT") == \
        "BUY 0.300 BTCUSDT @ 91,234.50 · slippage 1.3 bps · fee 13.69 USDT · taker · SIM_TOUCH"
    decision = {"symbol": "EURUSD", "side": "sell", "requested_quantity": 28000.0, "approved_quantity": 14000.0,
                "verdict": "REDUCE", "reasons": ["max_position_notional"], "risk_reducing": False}
    assert f.describe_event("dra_decision", decision, lots={"EURUSD": 1000}) == \
        "REDUCE SELL 14,000 of 28,000 EURUSD · max_position_notional"
    change = {"from": "running", "to": "paused", "actor": "web:olga", "reason": "CPI"}
    assert f.describe_event("paper_session_state_change", change) == "running → paused by web:olga · CPI"
    gap = {"kind": "data_gap", "symbol": "EURUSD", "gap_ms": 2500.0}
    assert f.describe_event("incident", gap) == "data gap EURUSD · 2,500 ms without quotes"
