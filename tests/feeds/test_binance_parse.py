"""Binance frame parsing: hand-read values of the recording, malformed frames name the field."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from ifns_paper.engine.marketdata import (
    NS_PER_MS,
    Aggressor,
    MarketDataError,
    Quote,
    QuoteBatch,
    Trade,
    TradeBatch,
)
from ifns_paper.feeds.binance import backoff_delay, parse_frame, parse_frame_with_id, stream_url
from tests.feeds.wsreplay import ROOT, recorded_lines

LINES = recorded_lines()


def parsed(i: int):
    row = LINES[i]
    return parse_frame(row["frame"], row["recv_ms"] * NS_PER_MS, row=i + 1)


def test_first_frames_parse_to_hand_read_values():
    # line 1: T=1610064000278, p=39432.48, q=0.00026300, m=true -> the taker sold
    assert parsed(0) == Trade(1_610_064_000_278 * NS_PER_MS, "BTCUSDT", 39432.48, 0.000263, Aggressor.SELL)
    # line 2: T=1610064000310, p=39439.44, q=0.00437600, m=false -> the taker bought
    assert parsed(1) == Trade(1_610_064_000_310 * NS_PER_MS, "BTCUSDT", 39439.44, 0.004376, Aggressor.BUY)
    # line 3: T=1610064000368 (E is 2 ms later, recv 5 ms after E: ts is T, not E nor recv)
    assert parsed(2) == Trade(1_610_064_000_368 * NS_PER_MS, "BTCUSDT", 39439.22, 0.000311, Aggressor.BUY)
    # line 31, the first bookTicker: no time in the payload -> ts = receive time 1610064001081 ms
    assert json.loads(LINES[30]["frame"])["stream"] == "btcusdt@bookTicker"
    assert parsed(30) == Quote(1_610_064_001_081 * NS_PER_MS, "BTCUSDT", 39432.99, 39433.62, 0.0031, 0.066851)
    # line 38, the second bookTicker: b 39432.33 B 2.00000000 a 39433.60 A 0.01802700
    assert parsed(37) == Quote(1_610_064_001_162 * NS_PER_MS, "BTCUSDT", 39432.33, 39433.60, 2.0, 0.018027)


def test_trade_id_is_returned_for_gap_counting():
    record, trade_id = parse_frame_with_id(LINES[0]["frame"], 0)
    assert isinstance(record, Trade) and trade_id == 553_287_559
    assert parse_frame_with_id(LINES[30]["frame"], 0)[1] is None


def test_whole_recording_matches_the_csv_copies():
    quotes, trades = [], []
    for i in range(len(LINES)):
        rec = parsed(i)
        (quotes if isinstance(rec, Quote) else trades).append(rec)
    assert (len(quotes), len(trades)) == (451, 2001)
    qb, tb = QuoteBatch.from_quotes(quotes), TradeBatch.from_trades(trades)
    assert not qb.problems()[0].any() and not tb.problems()[0].any()

    csv_t = pd.read_csv(ROOT / "data/market/btcusdt_trades_2021-01-08.csv")
    assert np.array_equal(tb.ts, pd.to_datetime(csv_t["timestamp"]).dt.as_unit("ns").astype("int64").to_numpy())
    assert np.array_equal(tb.price, csv_t["price"].to_numpy())
    # The CSV sizes carry binary-float noise (0.00031099999999999997 for the frame's "0.00031100").
    np.testing.assert_allclose(tb.size, csv_t["quantity"].to_numpy(), rtol=1e-12, atol=0)
    assert np.array_equal(tb.aggressor, np.where(csv_t["aggressor"] == "buy", 1, -1))

    csv_q = pd.read_csv(ROOT / "data/market/btcusdt_quotes_2021-01-08.csv")
    assert np.array_equal(qb.bid, csv_q["bid"].to_numpy()) and np.array_equal(qb.ask, csv_q["ask"].to_numpy())
    for col in ("bid_size", "ask_size"):
        np.testing.assert_allclose(getattr(qb, col), csv_q[col].to_numpy(), rtol=1e-12, atol=0)
    # The quote ts is the receive time: in this recording always exactly 5 ms after the CSV time.
    lag = qb.ts - pd.to_datetime(csv_q["timestamp"]).dt.as_unit("ns").astype("int64").to_numpy()
    assert set(lag.tolist()) == {5 * NS_PER_MS}


TRADE = {"e": "trade", "E": 1610064000280, "s": "BTCUSDT", "t": 553287559, "p": "39432.48",
         "q": "0.00026300", "T": 1610064000278, "m": True, "M": True}
BOOK = {"u": 4009000007, "s": "BTCUSDT", "b": "39432.99", "B": "0.00310000", "a": "39433.62", "A": "0.06685100"}


def frame(stream: str, data) -> str:
    return json.dumps({"stream": stream, "data": data})


def without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(("text", "needle"), [
    ("{not json", "not valid JSON"),
    ('{"stream": "btcusdt@trade", "data": {"p": "1"', "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"stream": "btcusdt@trade"}), "'data'"),
    (frame("btcusdt@trade", [1]), "'data'"),
    (frame("btcusdt@trade", without(TRADE, "p")), "missing field 'p' (price)"),
    (frame("btcusdt@trade", {**TRADE, "p": "abc"}), "field 'p' (price) is not a number: 'abc'"),
    (frame("btcusdt@trade", {**TRADE, "p": None}), "field 'p' (price) is not a number"),
    (frame("btcusdt@trade", {**TRADE, "q": "NaN"}), "field 'q' (quantity) is not a finite number"),
    (frame("btcusdt@trade", {**TRADE, "q": True}), "field 'q' (quantity) is not a number"),
    (frame("btcusdt@trade", without(TRADE, "T")), "missing field 'T' (trade time)"),
    (frame("btcusdt@trade", {**TRADE, "T": "1610064000278"}), "field 'T' (trade time) is not an integer"),
    (frame("btcusdt@trade", without(TRADE, "t")), "missing field 't' (trade id)"),
    (frame("btcusdt@trade", {**TRADE, "m": "true"}), "field 'm' (buyer is maker) is not a boolean"),
    (frame("btcusdt@trade", without(TRADE, "s")), "missing field 's' (symbol)"),
    (frame("btcusdt@bookTicker", without(BOOK, "b")), "missing field 'b' (best bid price)"),
    (frame("btcusdt@bookTicker", {**BOOK, "a": "39433,62"}), "field 'a' (best ask price) is not a number"),
    (frame("btcusdt@bookTicker", {**BOOK, "A": "inf"}), "field 'A' (best ask quantity) is not a finite number"),
    (frame("btcusdt@bookTicker", {**BOOK, "s": ""}), "field 's' (symbol)"),
])
def test_malformed_frames_raise_naming_the_field(text, needle):
    with pytest.raises(MarketDataError) as info:
        parse_frame(text, 1, row=7)
    assert needle in info.value.reason
    assert info.value.source == "binance" and info.value.row == 7
    assert str(info.value).startswith("binance:line 7: ")


def test_other_frames_are_ignored_and_bad_values_are_not_cleaned():
    assert parse_frame('{"result": null, "id": 1}', 1) is None
    assert parse_frame(frame("btcusdt@depth5", {"lastUpdateId": 1, "bids": [], "asks": []}), 1) is None
    assert parse_frame(frame("btcusdt@aggTrade", {**TRADE, "e": "aggTrade"}), 1) is None
    # raw (single-stream) payloads without the combined wrapper
    assert parse_frame(json.dumps(TRADE), 1) == parse_frame(frame("btcusdt@trade", TRADE), 1)
    assert parse_frame(json.dumps(BOOK), 5) == Quote(5, "BTCUSDT", 39432.99, 39433.62, 0.0031, 0.066851)
    # a crossed or zero quote is well-formed: it parses, and validation downstream rejects it
    crossed = parse_frame(frame("btcusdt@bookTicker", {**BOOK, "b": "39500", "a": "0"}), 5)
    bad, reasons = QuoteBatch.from_quotes([crossed]).problems()
    assert bad.all() and reasons == ["zero or negative price"]
    assert parse_frame(frame("btcusdt@bookTicker", BOOK).encode(), 5).bid == 39432.99  # bytes frames


def test_stream_url_and_backoff():
    assert stream_url("wss://stream.binance.com:9443/stream", ["BTCUSDT", "ethusdt"]) == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@bookTicker/btcusdt@trade/ethusdt@bookTicker/ethusdt@trade")
    assert stream_url("ws://h/stream?x=1", ["A"]) == "ws://h/stream?x=1&streams=a@bookTicker/a@trade"
    with pytest.raises(ValueError):
        stream_url("ws://h/stream", [])
    steps = (0.5, 1, 2, 4, 8)
    assert [backoff_delay(i, steps) for i in range(8)] == [0.5, 1, 2, 4, 8, 8, 8, 8]
    r1, r2 = random.Random(3), random.Random(3)
    a = [backoff_delay(i, steps, 0.2, r1) for i in range(6)]
    assert a != [0.5, 1, 2, 4, 8, 8]
    assert all(0.8 * steps[min(i, 4)] <= d <= 1.2 * steps[min(i, 4)] for i, d in enumerate(a))
    assert [backoff_delay(i, steps, 0.2, r2) for i in range(6)] == a  # seeded: reproducible
    assert backoff_delay(9, steps, 0.2, None) == 8  # no rng: no jitter
