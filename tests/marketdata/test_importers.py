"""Market-data importers: real shipped files, canonical round trips, bad data, chunks.

Expected values are hand-read from the files in ``data/market/``; epoch
nanoseconds are computed independently with ``datetime``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifns_paper.engine.marketdata import BarBatch, MarketDataError, QuoteBatch, TradeBatch
from ifns_paper.marketdata import (
    ImportOptions,
    bars_to_l1,
    detect_kind,
    iter_quote_chunks,
    read_any,
    read_bars,
    read_quotes,
    read_trades,
)
from tests.fuzz import examples

MARKET = Path(__file__).resolve().parents[2] / "data" / "market"
BTC_QUOTES = MARKET / "btcusdt_quotes_2021-01-08.csv"
BTC_TRADES = MARKET / "btcusdt_trades_2021-01-08.csv"
EURUSD = MARKET / "eurusd_quotes_2020-01-01.csv"
USDJPY = MARKET / "usdjpy_quotes_2013-01-01.csv"
BARS = MARKET / "btc-perp_bars-1m_2022-01.csv"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUARANTINE = ImportOptions(on_bad="quarantine")


def ns(dt: datetime) -> int:
    """Epoch nanoseconds by integer arithmetic (no floats, no pandas)."""
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the shipped files


def test_btcusdt_quotes_file_imports_every_row_with_its_symbol_and_exact_first_row():
    # given the recorded Binance quotes / when read
    result = read_quotes(BTC_QUOTES)
    # then all 451 rows, one BTCUSDT batch, nothing quarantined
    assert result.rows_read == 451
    assert list(result.batches) == ["BTCUSDT"]
    quotes = result.batches["BTCUSDT"]
    assert isinstance(quotes, QuoteBatch) and len(quotes) == 451
    assert result.quarantined == []
    # first row: 2021-01-08T00:00:01.076000Z,BTCUSDT,39432.99,39433.62,0.0031,0.066851
    first = quotes.quote(0)
    assert first.ts == ns(datetime(2021, 1, 8, 0, 0, 1, 76000, tzinfo=UTC)) == 1_610_064_001_076_000_000
    assert (first.bid, first.ask, first.bid_size, first.ask_size) == (39432.99, 39433.62, 0.0031, 0.066851)
    # last row: 2021-01-08T00:00:46.674000Z,BTCUSDT,39490.97,39490.98,0.131467,0.884984
    last = quotes.quote(450)
    assert last.ts == ns(datetime(2021, 1, 8, 0, 0, 46, 674000, tzinfo=UTC))
    assert (last.bid, last.ask, last.bid_size, last.ask_size) == (39490.97, 39490.98, 0.131467, 0.884984)


def test_btcusdt_trades_file_maps_quantity_to_size_and_aggressor_to_codes():
    # given the recorded trades (timestamp,symbol,trade_id,price,quantity,aggressor) / when read
    result = read_trades(BTC_TRADES)
    # then 2001 trades of BTCUSDT
    assert result.rows_read == 2001
    trades = result.batch()
    assert isinstance(trades, TradeBatch) and trades.symbol == "BTCUSDT" and len(trades) == 2001
    # first row: 2021-01-08T00:00:00.278000Z,BTCUSDT,553287559,39432.48,0.000263,sell
    assert int(trades.ts[0]) == ns(datetime(2021, 1, 8, 0, 0, 0, 278000, tzinfo=UTC))
    assert (float(trades.price[0]), float(trades.size[0]), int(trades.aggressor[0])) == (39432.48, 0.000263, -1)
    # second row is a buy; third has the long float quantity 0.00031099999999999997
    assert int(trades.aggressor[1]) == 1
    assert float(trades.size[2]) == 0.00031099999999999997
    # grep counts: 1087 ",buy" and 914 ",sell" lines
    assert int((trades.aggressor == 1).sum()) == 1087
    assert int((trades.aggressor == -1).sum()) == 914


def test_eurusd_file_takes_symbol_from_name_and_default_sizes():
    # given an FX file without symbol or sizes / when read with default options
    result = read_quotes(EURUSD)
    # then EURUSD from the file name, 9500 rows, sizes = default displayed size
    assert list(result.batches) == ["EURUSD"]
    quotes = result.batches["EURUSD"]
    assert result.rows_read == len(quotes) == 9500
    # first row: 2020-01-01T17:00:00.065000Z,1.1212,1.12172
    first = quotes.quote(0)
    assert first.ts == ns(datetime(2020, 1, 1, 17, 0, 0, 65000, tzinfo=UTC))
    assert (first.bid, first.ask) == (1.1212, 1.12172)
    assert np.all(quotes.bid_size == 1_000_000.0) and np.all(quotes.ask_size == 1_000_000.0)


def test_fx_default_size_is_an_option():
    # given a custom displayed size / when the USDJPY file is read
    result = read_quotes(USDJPY, ImportOptions(default_displayed_size=5_000_000.0))
    # then both sides carry it
    quotes = result.batch()
    assert np.all(quotes.bid_size == 5_000_000.0) and np.all(quotes.ask_size == 5_000_000.0)


def test_usdjpy_file_parses_offset_timestamps():
    # given the TrueFX file with "YYYY-MM-DD HH:MM:SS.ffffff+00:00" times / when read
    result = read_quotes(USDJPY)
    # then 1000 USDJPY quotes, first row exact
    quotes = result.batches["USDJPY"]
    assert result.rows_read == len(quotes) == 1000
    # first row: 2013-01-01 22:00:00.295000+00:00,86.655,86.728
    first = quotes.quote(0)
    assert first.ts == ns(datetime(2013, 1, 1, 22, 0, 0, 295000, tzinfo=UTC)) == 1_357_077_600_295_000_000
    assert (first.bid, first.ask) == (86.655, 86.728)
    assert first.bid_size == first.ask_size == 1_000_000.0


def test_btc_perp_bars_file_converts_quote_volume_to_base_units():
    # given the 1-minute bars (naive UTC times, volume in USD) / when read with the conversion on
    result = read_bars(BARS, ImportOptions(bar_volume_in_quote_currency=True))
    # then 45031 BTC-PERP bars, first bar exact, volume = 2300413.7295 / 46377.0 BTC
    bars = result.batches["BTC-PERP"]
    assert isinstance(bars, BarBatch)
    assert result.rows_read == len(bars) == 45031
    # first row: 2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295
    assert int(bars.ts[0]) == ns(datetime(2021, 12, 31, 23, 1, tzinfo=UTC)) == 1_640_991_660_000_000_000
    assert (bars.open[0], bars.high[0], bars.low[0], bars.close[0]) == (46319.0, 46385.0, 46319.0, 46377.0)
    assert bars.volume[0] == 2300413.7295 / 46377.0
    # last row: 2022-02-01 05:31:00.000000,...,38544.0,685906.9735
    assert int(bars.ts[-1]) == ns(datetime(2022, 2, 1, 5, 31, tzinfo=UTC))
    assert bars.volume[-1] == 685906.9735 / 38544.0


def test_bars_volume_is_left_alone_without_the_quote_currency_option():
    # given default options / when the bars are read / then volume is as written
    bars = read_bars(BARS).batch()
    assert bars.volume[0] == 2300413.7295


def test_the_45k_bar_file_imports_well_under_a_second():
    # given the largest shipped file / when read (after a warm-up for imports)
    read_bars(BARS)
    started = time.perf_counter()
    read_bars(BARS, ImportOptions(bar_volume_in_quote_currency=True))
    elapsed = time.perf_counter() - started
    # then it is fast (vectorized)
    assert elapsed < 0.5, f"took {elapsed:.3f} s"


@pytest.mark.parametrize(
    ("path", "kind", "rows"),
    [(BTC_QUOTES, "quotes", 451), (BTC_TRADES, "trades", 2001), (EURUSD, "quotes", 9500),
     (USDJPY, "quotes", 1000), (BARS, "bars", 45031)],
)
def test_detect_kind_and_read_any_on_the_shipped_files(path, kind, rows):
    # given a shipped file / when its kind is detected and it is read generically
    result = read_any(path)
    # then the kind matches the header and every row arrives
    assert detect_kind(path) == kind
    assert result.kind == kind
    assert result.rows_read == result.rows_kept == rows


def test_bars_to_l1_uses_the_options_spread_and_size():
    # given the first bars and a 10 bps spread, 3 BTC displayed
    bars = read_bars(BARS, ImportOptions(bar_volume_in_quote_currency=True)).batch()
    options = ImportOptions(bar_spread_bps=10.0, bar_displayed_size=3.0)
    # when synthesized
    quotes, trades = bars_to_l1(bars, options)
    # then quotes straddle the close by 5 bps each side with the given size
    assert quotes.bid[0] == pytest.approx(46377.0 * (1 - 5e-4))
    assert quotes.ask[0] == pytest.approx(46377.0 * (1 + 5e-4))
    assert quotes.bid_size[0] == quotes.ask_size[0] == 3.0
    assert trades.size[0] == 2300413.7295 / 46377.0


# --------------------------------------------------------------------------- canonical round trips

TS = np.array([1_610_064_001_076_123_456, 1_610_064_001_076_123_456, 1_610_064_002_000_000_001,
               1_610_064_002_500_000_000, 1_610_064_003_000_000_000], dtype=np.int64)
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"]


def quote_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "ts": TS, "symbol": SYMBOLS,
        "bid": [39432.99, 1200.5, 39433.0, 1200.25, 39434.125],
        "ask": [39433.62, 1200.75, 39433.0, 1200.5, 39435.0],
        "bid_size": [0.0031, 2.0, 0.0, 5.5, 1e-8],
        "ask_size": [0.066851, 3.0, 1.0, 0.25, 7.0],
    })


def iso(ns_values: np.ndarray) -> list[str]:
    return [pd.Timestamp(int(v), tz="UTC").isoformat() for v in ns_values]


def assert_quotes_equal(result, frame: pd.DataFrame) -> None:
    assert list(result.batches) == list(dict.fromkeys(frame["symbol"]))
    for symbol, batch in result.batches.items():
        rows = frame[frame["symbol"] == symbol]
        np.testing.assert_array_equal(batch.ts, rows["ts"].to_numpy(dtype=np.int64))
        for col in ("bid", "ask", "bid_size", "ask_size"):
            np.testing.assert_array_equal(getattr(batch, col), rows[col].to_numpy())


@pytest.mark.parametrize("ts_as", ["int", "iso"])
def test_canonical_quotes_csv_round_trips(tmp_path, ts_as):
    # given canonical quotes of two symbols written as CSV (ts as epoch ns or ISO text)
    frame = quote_frame()
    on_disk = frame.assign(ts=iso(TS)) if ts_as == "iso" else frame
    path = tmp_path / "mixed_quotes.csv"
    on_disk.to_csv(path, index=False)
    # when read back
    result = read_quotes(path)
    # then the arrays are identical, one batch per symbol in first-appearance order
    assert result.rows_read == 5
    assert_quotes_equal(result, frame)


@pytest.mark.parametrize("ts_as", ["int", "datetime", "iso"])
def test_canonical_quotes_parquet_round_trips(tmp_path, ts_as):
    # given canonical quotes written as Parquet with ts as int64, a UTC timestamp or text
    frame = quote_frame()
    on_disk = {"int": frame, "datetime": frame.assign(ts=pd.to_datetime(TS, utc=True)),
               "iso": frame.assign(ts=iso(TS))}[ts_as]
    path = tmp_path / "mixed_quotes.parquet"
    on_disk.to_parquet(path, index=False)
    # when read back / then identical
    result = read_quotes(path)
    assert_quotes_equal(result, frame)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_canonical_trades_round_trip(tmp_path, suffix):
    # given canonical trades with text aggressors (buy, sell, unknown, empty)
    frame = pd.DataFrame({"ts": TS[:4], "symbol": "BTCUSDT", "price": [1.5, 2.5, 3.5, 4.5],
                          "size": [0.1, 0.2, 0.3, 0.4], "aggressor": ["buy", "sell", "unknown", None]})
    path = tmp_path / f"btcusdt_trades.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    # when read back
    trades = read_trades(path).batch("BTCUSDT")
    # then
    np.testing.assert_array_equal(trades.ts, TS[:4])
    np.testing.assert_array_equal(trades.price, [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(trades.size, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(trades.aggressor, [1, -1, 0, 0])


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_canonical_bars_round_trip(tmp_path, suffix):
    # given canonical bars
    frame = pd.DataFrame({"ts": TS[[0, 2, 3]], "symbol": "X", "open": [1.0, 2.0, 3.0], "high": [1.5, 2.5, 3.5],
                          "low": [0.5, 1.5, 2.5], "close": [1.25, 2.25, 3.25], "volume": [10.0, 0.0, 30.0]})
    path = tmp_path / f"x_bars.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    # when read back / then identical
    bars = read_bars(path).batch("X")
    np.testing.assert_array_equal(bars.ts, frame["ts"].to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(bars, col), frame[col].to_numpy())


def test_every_timestamp_form_gives_the_same_nanoseconds(tmp_path):
    # given one instant written as Z, as an offset, naive (= UTC), with a blank separator and as epoch ns
    instant = ns(datetime(2021, 1, 8, 0, 0, 1, 76000, tzinfo=UTC)) + 123
    text = ("ts,bid,ask\n"
            "2021-01-08T00:00:01.076000123Z,1,2\n"
            "2021-01-08T02:00:01.076000123+02:00,1,2\n"
            "2021-01-08T00:00:01.076000123,1,2\n"
            "2021-01-08 00:00:01.076000123,1,2\n"
            f"{instant},1,2\n")
    # when read
    quotes = read_quotes(write(tmp_path, "eurusd_quotes.csv", text)).batch()
    # then every row has the same epoch ns
    assert quotes.ts.tolist() == [instant] * 5


def test_symbol_option_and_file_name_rules(tmp_path):
    # given a file without a symbol column
    path = write(tmp_path, "gbpusd_quotes_2020.csv", "ts,bid,ask\n2020-01-01T00:00:00Z,1.3,1.31\n")
    # when read with and without an explicit symbol / then the option wins over the file name
    assert list(read_quotes(path).batches) == ["GBPUSD"]
    assert list(read_quotes(path, ImportOptions(symbol="GBP/USD")).batches) == ["GBP/USD"]
    # and a name without "_" gives no symbol: an error that says what to do
    bare = write(tmp_path, "quotes.csv", "ts,bid,ask\n2020-01-01T00:00:00Z,1.3,1.31\n")
    with pytest.raises(MarketDataError, match="set ImportOptions.symbol"):
        read_quotes(bare)


def test_blank_lines_are_skipped_but_keep_line_numbers(tmp_path):
    # given a blank line 3 before a crossed quote on line 4, and a trailing blank line
    path = write(tmp_path, "x_quotes.csv",
                 "ts,bid,ask\n2020-01-01T00:00:00Z,1,2\n\n2020-01-01T00:00:01Z,3,2\n2020-01-01T00:00:02Z,1,2\n\n")
    # when read in quarantine mode
    result = read_quotes(path, QUARANTINE)
    # then line 4 is reported and the blank lines are not rows
    assert result.quarantined == [(4, "crossed quote (bid > ask)")]
    assert result.rows_read == 3 and result.rows_kept == 2


# --------------------------------------------------------------------------- bad data

QUOTES_HEAD = "ts,symbol,bid,ask,bid_size,ask_size\n"
Q2 = "2021-01-08T00:00:01Z,BTCUSDT,100.0,100.5,1,2\n"
Q3 = "2021-01-08T00:00:02Z,BTCUSDT,100.1,100.6,1,2\n"
Q5 = "2021-01-08T00:00:04Z,BTCUSDT,100.2,100.7,1,2\n"
T1, T2, T4 = (ns(datetime(2021, 1, 8, 0, 0, s, tzinfo=UTC)) for s in (1, 2, 4))

TRADES_HEAD = "timestamp,symbol,trade_id,price,quantity,aggressor\n"
R2 = "2021-01-08T00:00:01Z,BTCUSDT,1,100.0,0.5,buy\n"
R3 = "2021-01-08T00:00:02Z,BTCUSDT,2,100.1,0.5,sell\n"
R5 = "2021-01-08T00:00:04Z,BTCUSDT,4,100.2,0.5,\n"

# (case, reader, file text with the bad row on line 4, reason substring, exact reason or None)
BAD_ROWS = [
    ("non-monotonic time", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:01.5Z,BTCUSDT,100.1,100.6,1,2\n" + Q5,
     "time goes backwards", None),
    ("crossed quote", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,101.0,100.5,1,2\n" + Q5,
     "crossed quote (bid > ask)", "crossed quote (bid > ask)"),
    ("zero price", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,0,100.5,1,2\n" + Q5,
     "zero or negative price", "zero or negative price"),
    ("NaN bid", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,NaN,100.5,1,2\n" + Q5,
     "NaN or infinite value", "NaN or infinite value"),
    ("empty bid", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,,100.5,1,2\n" + Q5,
     "NaN or infinite value", "NaN or infinite value"),
    ("text bid", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,abc,100.5,1,2\n" + Q5,
     "not a number", "not a number in column bid: 'abc'"),
    ("negative size", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,BTCUSDT,100,100.5,-1,2\n" + Q5,
     "negative size", "negative size"),
    ("bad timestamp text", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-13-45T00:00:03Z,BTCUSDT,100,100.5,1,2\n" + Q5,
     "unparsable timestamp", "unparsable timestamp '2021-13-45T00:00:03Z'"),
    ("missing symbol", read_quotes, QUOTES_HEAD + Q2 + Q3 + "2021-01-08T00:00:03Z,,100,100.5,1,2\n" + Q5,
     "missing symbol", "missing symbol"),
    ("bad aggressor", read_trades, TRADES_HEAD + R2 + R3 + "2021-01-08T00:00:03Z,BTCUSDT,3,100.1,0.5,hold\n" + R5,
     "bad aggressor value 'hold'", "bad aggressor value 'hold' (expected buy, sell, unknown or empty)"),
    ("zero trade size", read_trades, TRADES_HEAD + R2 + R3 + "2021-01-08T00:00:03Z,BTCUSDT,3,100.1,0,buy\n" + R5,
     "zero or negative size", "zero or negative size"),
]


@pytest.mark.parametrize(("case", "reader", "text", "reason", "exact"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_reject_mode_names_file_line_and_reason_of_the_first_bad_row(tmp_path, case, reader, text, reason, exact):
    # given a file whose line 4 is bad / when read with the default on_bad="reject"
    path = write(tmp_path, "btcusdt_data.csv", text)
    with pytest.raises(MarketDataError) as err:
        reader(path)
    # then the error points at that line with the reason
    assert err.value.source == str(path)
    assert err.value.row == 4
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{path}:line 4: ")


@pytest.mark.parametrize(("case", "reader", "text", "reason", "exact"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_quarantine_mode_drops_only_the_bad_row_and_records_it(tmp_path, case, reader, text, reason, exact):
    # given the same file / when read with on_bad="quarantine"
    result = reader(write(tmp_path, "btcusdt_data.csv", text), QUARANTINE)
    # then line 4 is quarantined with its reason and the other three rows are kept
    assert [line for line, _ in result.quarantined] == [4]
    assert reason in result.quarantined[0][1]
    if exact is not None:
        assert result.quarantined[0][1] == exact
    assert result.rows_read == 4
    assert result.batch("BTCUSDT").ts.tolist() == [T1, T2, T4]


def test_backwards_reason_names_both_times(tmp_path):
    # given time going back from 00:00:02 to 00:00:01.5 on line 4
    result = read_quotes(write(tmp_path, "btcusdt_q.csv", BAD_ROWS[0][2]), QUARANTINE)
    # then the reason shows both instants
    assert result.quarantined == [
        (4, "time goes backwards: 2021-01-08T00:00:01.500000000Z < previous 2021-01-08T00:00:02.000000000Z")
    ]


def test_time_is_checked_against_the_last_kept_row_not_a_dropped_one(tmp_path):
    # given 00:01, then a crossed quote at 00:05 (dropped), then 00:03 and 00:04
    text = (QUOTES_HEAD + Q2 + "2021-01-08T00:00:05Z,BTCUSDT,101,100,1,2\n"
            + "2021-01-08T00:00:03Z,BTCUSDT,100,100.5,1,2\n" + Q5)
    # when quarantined
    result = read_quotes(write(tmp_path, "btcusdt_q.csv", text), QUARANTINE)
    # then only the crossed quote goes; 00:03 is fine since 00:05 was never kept
    assert result.quarantined == [(3, "crossed quote (bid > ask)")]
    assert result.batch().ts.tolist() == [T1, ns(datetime(2021, 1, 8, 0, 0, 3, tzinfo=UTC)), T4]


def test_a_kept_forward_jump_makes_every_earlier_following_row_go_backwards(tmp_path):
    # given 00:01, a valid 00:05, then 00:03 and 00:04
    text = (QUOTES_HEAD + Q2 + "2021-01-08T00:00:05Z,BTCUSDT,100,100.5,1,2\n"
            + "2021-01-08T00:00:03Z,BTCUSDT,100,100.5,1,2\n" + Q5)
    # when quarantined
    result = read_quotes(write(tmp_path, "btcusdt_q.csv", text), QUARANTINE)
    # then both later rows are behind the kept 00:05
    assert [line for line, _ in result.quarantined] == [4, 5]
    assert all(reason.startswith("time goes backwards") for _, reason in result.quarantined)


def test_time_is_per_symbol(tmp_path):
    # given two symbols interleaved, each increasing, the second one starting earlier
    text = (QUOTES_HEAD + "2021-01-08T00:00:02Z,AAA,1,2,1,1\n" + "2021-01-08T00:00:01Z,BBB,1,2,1,1\n"
            + "2021-01-08T00:00:01Z,AAA,1,2,1,1\n")
    # when quarantined / then only AAA's step back is bad
    result = read_quotes(write(tmp_path, "mixed_quotes.csv", text), QUARANTINE)
    assert [line for line, _ in result.quarantined] == [4]
    assert {s: len(b) for s, b in result.batches.items()} == {"AAA": 1, "BBB": 1}


def test_bars_must_strictly_increase(tmp_path):
    # given two bars with the same close time
    text = ("ts,open,high,low,close,volume\n2022-01-01 00:01:00,1,2,1,2,5\n2022-01-01 00:01:00,1,2,1,2,5\n")
    # when read / then the second is refused
    with pytest.raises(MarketDataError, match="time does not increase") as err:
        read_bars(write(tmp_path, "x_bars.csv", text))
    assert err.value.row == 3


@pytest.mark.parametrize("on_bad", ["reject", "quarantine"])
def test_unknown_column_is_a_file_error_in_both_modes(tmp_path, on_bad):
    # given a quotes header with an extra "venue" column
    path = write(tmp_path, "btcusdt_q.csv", "ts,symbol,bid,ask,bid_size,ask_size,venue\n" + Q2.strip() + ",x\n")
    # when read
    with pytest.raises(MarketDataError) as err:
        read_quotes(path, ImportOptions(on_bad=on_bad))
    # then the whole file is refused, naming the column and what is expected
    assert err.value.row is None
    assert err.value.reason.startswith(
        "unknown column(s): venue (expected: ts, symbol, bid, ask, bid_size, ask_size"
    )


@pytest.mark.parametrize("on_bad", ["reject", "quarantine"])
def test_missing_column_is_a_file_error_naming_it(tmp_path, on_bad):
    # given a quotes header without "ask"
    path = write(tmp_path, "btcusdt_q.csv", "timestamp,symbol,bid,bid_size,ask_size\n2021-01-08T00:00:01Z,X,1,1,1\n")
    # when read / then
    with pytest.raises(MarketDataError) as err:
        read_quotes(path, ImportOptions(on_bad=on_bad))
    assert err.value.row is None
    assert err.value.reason.startswith("missing required column(s): ask ")


@pytest.mark.parametrize(
    ("header", "message"),
    [("ts,timestamp,bid,ask", "duplicate column(s): ts (ts, timestamp)"),
     ("ts,bid,ask,bid_size", "missing required column(s): ask_size")],
)
def test_duplicate_columns_and_half_a_size_pair_are_refused(tmp_path, header, message):
    path = write(tmp_path, "x_quotes.csv", header + "\n")
    with pytest.raises(MarketDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_quotes(path)


def test_trade_id_is_known_only_for_trades(tmp_path):
    # given a quotes file carrying trade_id / when read as quotes / then it is unknown there
    path = write(tmp_path, "x_quotes.csv", "ts,bid,ask,trade_id\n")
    with pytest.raises(MarketDataError, match=r"unknown column\(s\): trade_id"):
        read_quotes(path)


def test_symbol_column_must_agree_with_an_explicit_symbol(tmp_path):
    # given a file of BTCUSDT read with symbol="ETHUSDT"
    result = read_quotes(write(tmp_path, "x_q.csv", QUOTES_HEAD + Q2),
                         ImportOptions(symbol="ETHUSDT", on_bad="quarantine"))
    # then the row is not silently relabelled
    assert result.quarantined == [(2, "symbol 'BTCUSDT' differs from ImportOptions.symbol 'ETHUSDT'")]
    assert result.batches == {}


def test_unsupported_file_type_and_undetectable_kind(tmp_path):
    with pytest.raises(MarketDataError, match="unsupported file type '.txt'"):
        read_quotes(write(tmp_path, "x_q.txt", QUOTES_HEAD))
    with pytest.raises(MarketDataError, match="cannot tell the kind"):
        detect_kind(write(tmp_path, "x.csv", "ts,foo\n"))


def test_options_are_validated():
    with pytest.raises(ValueError, match="on_bad"):
        ImportOptions(on_bad="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_displayed_size"):
        ImportOptions(default_displayed_size=0.0)


# --------------------------------------------------------------------------- chunks


def test_quote_chunks_over_eurusd_equal_the_whole_file_read():
    # given the EURUSD file / when iterated in chunks of 1000 rows
    chunks = list(iter_quote_chunks(EURUSD, chunk_rows=1000))
    whole = read_quotes(EURUSD).batch()
    # then 10 chunks (9 full + 500), all EURUSD, concatenating to exactly the whole-file batch
    assert [len(c) for c in chunks] == [1000] * 9 + [500]
    assert {c.symbol for c in chunks} == {"EURUSD"}
    for col in ("ts", "bid", "ask", "bid_size", "ask_size"):
        np.testing.assert_array_equal(np.concatenate([getattr(c, col) for c in chunks]), getattr(whole, col))


@pytest.fixture
def eurusd_back_at_boundary(tmp_path) -> Path:
    """EURUSD with data row 1000 (file line 1002, first row of chunk 2) set before row 999."""
    lines = EURUSD.read_text().splitlines(keepends=True)
    _, bid, ask = lines[1001].split(",")
    lines[1001] = f"2020-01-01T17:49:04.000000Z,{bid},{ask}"  # line 1001 (row 999) is at 17:49:04.827
    path = tmp_path / "eurusd_quotes_2020-01-01.csv"
    path.write_text("".join(lines))
    return path


def test_quote_chunks_refuse_time_going_back_across_a_chunk_boundary(eurusd_back_at_boundary):
    # given a step back exactly at the first row of the second chunk
    chunks = iter_quote_chunks(eurusd_back_at_boundary, chunk_rows=1000)
    # when iterated / then the first chunk comes, then the error names line 1002
    assert len(next(chunks)) == 1000
    with pytest.raises(MarketDataError) as err:
        next(chunks)
    assert err.value.row == 1002
    assert err.value.reason == (
        "time goes backwards: 2020-01-01T17:49:04.000000000Z < previous 2020-01-01T17:49:04.827000000Z"
    )
    # and the whole-file reader agrees
    with pytest.raises(MarketDataError) as whole:
        read_quotes(eurusd_back_at_boundary)
    assert whole.value.row == 1002


def test_quote_chunks_quarantine_the_boundary_row(eurusd_back_at_boundary):
    # given the same file in quarantine mode / when iterated
    chunks = iter_quote_chunks(eurusd_back_at_boundary, QUARANTINE, chunk_rows=1000)
    kept = sum(len(c) for c in chunks)
    # then exactly that row is dropped and recorded
    assert kept == 9499
    assert chunks.rows_read == 9500
    assert [line for line, _ in chunks.quarantined] == [1002]


def test_quote_chunks_check_columns_when_created(tmp_path):
    with pytest.raises(MarketDataError, match=r"unknown column\(s\): price"):
        iter_quote_chunks(write(tmp_path, "x_quotes.csv", "ts,price\n"))


# --------------------------------------------------------------------------- property: quarantine = reference

CORRUPTIONS = ["none", "none", "none", "bad_ts", "text_bid", "empty_bid", "inf_ask", "zero_bid",
               "neg_size", "crossed", "missing_symbol"]


@st.composite
def quote_files(draw):
    n = draw(st.integers(1, 30))
    t = 1_610_064_000_000  # ms
    rows = []
    for _ in range(n):
        t += draw(st.integers(-3_000, 5_000))  # sometimes backwards on purpose
        symbol = draw(st.sampled_from(["AAA", "BBB"]))
        bid = draw(st.integers(1, 100_000)) / 100
        ask = bid + draw(st.integers(0, 500)) / 100
        sizes = [draw(st.integers(0, 50)) / 4, draw(st.integers(0, 50)) / 4]
        as_int = draw(st.booleans())
        ts_text = str(t * 1_000_000) if as_int else datetime.fromtimestamp(t / 1000, tz=UTC).isoformat()
        cells = [ts_text, symbol, repr(bid), repr(ask), repr(sizes[0]), repr(sizes[1])]
        kind = draw(st.sampled_from(CORRUPTIONS))
        if kind == "bad_ts":
            cells[0] = "2021-02-30T00:00:00Z"
        elif kind == "text_bid":
            cells[2] = "1.2.3"
        elif kind == "empty_bid":
            cells[2] = ""
        elif kind == "inf_ask":
            cells[3] = "inf"
        elif kind == "zero_bid":
            cells[2] = "0"
        elif kind == "neg_size":
            cells[5] = "-0.5"
        elif kind == "crossed":
            cells[2], cells[3] = repr(ask + 1.0), repr(ask)
        elif kind == "missing_symbol":
            cells[1] = ""
        rows.append(",".join(cells))
    return "ts,symbol,bid,ask,bid_size,ask_size\n" + "\n".join(rows) + "\n"


def reference_quarantine(text: str):
    """Row by row, the rules as written in the module docstring; no pandas."""
    kept: dict[str, list[tuple[int, float]]] = {}
    last: dict[str, int] = {}
    bad: list[tuple[int, str]] = []
    for line_no, line in enumerate(text.splitlines()[1:], start=2):
        ts_text, symbol, *numbers = line.split(",")
        try:
            ts = int(ts_text) if ts_text.isdigit() else ns(datetime.fromisoformat(ts_text))
        except ValueError:
            bad.append((line_no, "ts"))
            continue
        if not symbol:
            bad.append((line_no, "symbol"))
            continue
        try:
            bid, ask, bid_size, ask_size = (float(x) if x else math.nan for x in numbers)
        except ValueError:
            bad.append((line_no, "text"))
            continue
        if not all(math.isfinite(v) for v in (bid, ask, bid_size, ask_size)):
            why = "nan"
        elif bid <= 0 or ask <= 0:
            why = "price"
        elif bid_size < 0 or ask_size < 0:
            why = "size"
        elif bid > ask:
            why = "crossed"
        elif ts < last.get(symbol, -(2**63)):
            why = "time"
        else:
            last[symbol] = ts
            kept.setdefault(symbol, []).append((ts, bid))
            continue
        bad.append((line_no, why))
    return kept, bad


def category(reason: str) -> str:
    prefixes = {"unparsable timestamp": "ts", "missing symbol": "symbol", "not a number": "text",
                "NaN or infinite": "nan", "zero or negative price": "price", "negative size": "size",
                "crossed quote": "crossed", "time goes backwards": "time"}
    return next(cat for prefix, cat in prefixes.items() if reason.startswith(prefix))


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=quote_files())
def test_quarantine_keeps_exactly_what_a_row_by_row_reference_keeps(tmp_path, text):
    # given a random quote file with random corruptions
    path = tmp_path / "mixed_quotes.csv"
    path.write_text(text)
    expected_kept, expected_bad = reference_quarantine(text)
    # when imported in quarantine mode
    result = read_quotes(path, QUARANTINE)
    # then the same rows are kept (per symbol, in order) and the same lines quarantined for the same reasons
    got_kept = {s: list(zip(b.ts.tolist(), b.bid.tolist(), strict=True)) for s, b in result.batches.items()}
    assert got_kept == expected_kept
    assert [(line, category(reason)) for line, reason in result.quarantined] == expected_bad
    # and reject mode stops at the first of those lines
    if expected_bad:
        with pytest.raises(MarketDataError) as err:
            read_quotes(path)
        assert err.value.row == expected_bad[0][0]
    else:
        assert read_quotes(path).rows_kept == result.rows_read


@settings(max_examples=examples(75), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=quote_files(), chunk_rows=st.integers(1, 7))
def test_chunks_in_quarantine_mode_keep_what_the_reference_keeps(tmp_path, text, chunk_rows):
    # given a random corrupted quote file / when iterated in small chunks
    path = tmp_path / "mixed_quotes.csv"
    path.write_text(text)
    expected_kept, expected_bad = reference_quarantine(text)
    chunks = iter_quote_chunks(path, QUARANTINE, chunk_rows=chunk_rows)
    got: dict[str, list[tuple[int, float]]] = {}
    for batch in chunks:
        assert len(batch) <= chunk_rows
        got.setdefault(batch.symbol, []).extend(zip(batch.ts.tolist(), batch.bid.tolist(), strict=True))
    # then time is carried across chunk boundaries exactly like the row-by-row reference
    assert got == expected_kept
    assert [(line, category(reason)) for line, reason in chunks.quarantined] == expected_bad


def test_parquet_integer_aggressor_codes_and_pandas_index_column(tmp_path):
    # given trades in Parquet with int8 aggressor codes and a saved (non-range) pandas index
    frame = pd.DataFrame({"ts": TS[:3], "price": [1.0, 2.0, 3.0], "size": [1.0, 1.0, 1.0],
                          "aggressor": np.array([1, -1, 0], dtype=np.int8)}, index=[10, 11, 12])
    path = tmp_path / "ethusdt_trades.parquet"
    frame.to_parquet(path)
    # when read / then the codes pass through and the index column is ignored
    trades = read_trades(path).batch("ETHUSDT")
    np.testing.assert_array_equal(trades.aggressor, [1, -1, 0])
    # and an unknown code is a bad row, reported at its CSV-equivalent line (row index + 2)
    frame.assign(aggressor=np.array([1, 2, 0], dtype=np.int8)).to_parquet(path)
    assert read_trades(path, QUARANTINE).quarantined == [
        (3, "bad aggressor value '2' (expected buy, sell, unknown or empty)")
    ]


def test_importers_do_not_import_django():
    # given a fresh interpreter / when the importers are imported / then no Django or Celery is loaded
    code = ("import sys, ifns_paper.marketdata\n"
            "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in ('django', 'celery'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=MARKET.parents[1], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("on_bad", ["reject", "quarantine"])
def test_a_line_with_too_many_fields_is_refused_with_its_line(tmp_path, on_bad):
    # given line 3 with a stray extra field (a comma inside a value would look the same)
    path = write(tmp_path, "x_quotes.csv", "ts,bid,ask\n2021-01-01T00:00:00Z,1,2\n2021-01-01T00:00:01Z,1,5,2\n")
    # when read / then the file is refused at that line instead of silently cutting the row
    with pytest.raises(MarketDataError) as err:
        read_quotes(path, ImportOptions(on_bad=on_bad))
    assert (err.value.row, err.value.reason) == (3, "malformed CSV line: expected 3 fields, saw 4")


def test_a_line_with_too_many_fields_is_found_in_a_later_chunk(tmp_path):
    # given EURUSD with an extra field on line 2501 (third chunk of 1000)
    lines = EURUSD.read_text().splitlines(keepends=True)
    lines[2500] = lines[2500].rstrip("\n") + ",9\n"
    path = tmp_path / "eurusd_quotes.csv"
    path.write_text("".join(lines))
    # when iterated / then the absolute line is named
    with pytest.raises(MarketDataError) as err:
        list(iter_quote_chunks(path, chunk_rows=1000))
    assert err.value.row == 2501
