"""Importers: recorded market-data files (CSV, Parquet) -> canonical engine batches.

Plain Python (pandas/numpy/pyarrow), no Django. The output is the engine's
canonical batches (``ifns_paper.engine.marketdata``): one batch per symbol,
rows in file order, time as int64 nanoseconds since the epoch (UTC).

Canonical files
---------------
* quotes: ``ts,symbol,bid,ask,bid_size,ask_size``
* trades: ``ts,symbol,price,size,aggressor``
* bars:   ``ts,symbol,open,high,low,close,volume`` (``ts`` = bar close time)

General rules (all files)
-------------------------
* Header names are matched after stripping blanks, case-insensitively.
  Accepted aliases: ``timestamp`` -> ``ts`` (all kinds), ``quantity`` ->
  ``size`` (trades). ``trade_id`` is known and dropped (trades). Pandas index
  columns in Parquet (``__index_level_N__``) are ignored. Any other column is
  an error ("unknown column(s): ..."), so is a missing required column or two
  columns meaning the same thing.
* ``ts`` is either ISO-8601 text (``Z``, a ``+hh:mm`` offset, or naive; a
  naive time is taken as UTC; ``T`` or a blank between date and time) or an
  integer number of nanoseconds since the epoch (a CSV cell of digits only,
  or an integer/timestamp Parquet column). Times outside what int64
  nanoseconds can hold (years 1677..2262) are unparsable.
* ``symbol`` is optional. Without it the symbol is ``ImportOptions.symbol``
  or, when that is None, the file name's first ``_``-separated token
  upper-cased (``eurusd_quotes_2020-01-01.csv`` -> ``EURUSD``,
  ``btc-perp_bars-1m_2022-01.csv`` -> ``BTC-PERP``). With a symbol column and
  an ``ImportOptions.symbol`` too, rows of another symbol are bad rows.
* Quotes: ``bid_size``/``ask_size`` are optional as a pair; without them both
  sides get ``ImportOptions.default_displayed_size`` (an assumption: FX
  quote feeds carry no sizes).
* Trades: ``aggressor`` is the taker side: ``buy`` -> +1, ``sell`` -> -1,
  ``unknown``/empty/missing column -> 0 (also accepted: 1, -1, 0; case-
  insensitive). Anything else is a bad row.
* Bars: ``volume`` is in base units unless
  ``ImportOptions.bar_volume_in_quote_currency`` is set; then it is converted
  to base units as ``volume / close`` (the bar's close is the best single
  price we have; an approximation of the bar's VWAP).
* Bad rows: unparsable timestamp, missing symbol, text that is not a number,
  NaN/infinite values, zero/negative price, negative size (zero for trades),
  crossed quote, bar high/low not containing open/close, bad aggressor, time
  going backwards within a symbol (bars: not strictly increasing). Value
  checks are the engine's ``problems()`` validators. The first reason found
  per row is reported (order: timestamp, symbol, numbers, aggressor, values,
  time). Time is checked against the last *kept* row of the same symbol, so
  a dropped row never hides or causes another row's time problem; note that
  after a bad forward jump every following earlier-dated row is the one
  reported, the jump itself is kept.
* ``on_bad="reject"`` raises ``MarketDataError(file, line, reason)`` for the
  first bad row; ``"quarantine"`` drops bad rows and lists ``(line,
  reason)`` in ``ImportResult.quarantined``. Bad data is never used.
* A CSV line with more fields than the header is refused as a whole-file
  error in both modes (``MarketDataError`` with that line): a stray comma may
  have shifted the values, and skipping the line would shift line numbers.
  A line with fewer fields has empty (NaN) values, a bad row.
* Line numbers are 1-based lines of the file, header = line 1, so the first
  data row is line 2. Blank lines (every field empty) are skipped, not
  counted in ``rows_read``, and keep their line numbers. Quoted fields with
  embedded newlines are not supported (line numbers would drift). For
  Parquet the "line" is the row's line in the equivalent CSV: row index + 2.

Assumptions per shipped file (``data/market/``)
-----------------------------------------------
* ``btcusdt_quotes_2021-01-08.csv``: columns
  ``timestamp,symbol,bid,ask,bid_size,ask_size``; ISO times with ``Z``;
  sizes in BTC as given by Binance; symbol from the column (BTCUSDT).
* ``btcusdt_trades_2021-01-08.csv``: ``timestamp,symbol,trade_id,price,
  quantity,aggressor``; ``quantity`` (BTC) -> ``size``; ``trade_id`` dropped;
  ``aggressor`` buy/sell is the taker side -> +1/-1.
* ``eurusd_quotes_2020-01-01.csv``: ``timestamp,bid,ask``; ISO with ``Z``; no
  symbol column -> EURUSD from the file name; no sizes -> both sides
  ``default_displayed_size`` (1,000,000 units by default).
* ``usdjpy_quotes_2013-01-01.csv``: ``timestamp,bid,ask``; times as
  ``YYYY-MM-DD HH:MM:SS.ffffff+00:00``; USDJPY from the file name; sizes as
  for EURUSD.
* ``btc-perp_bars-1m_2022-01.csv``: ``timestamp,open,high,low,close,volume``;
  naive ``YYYY-MM-DD HH:MM:SS.ffffff`` times taken as UTC and as the bar
  *close* time (no shift); BTC-PERP from the file name; volume is in quote
  currency (USD): import with ``bar_volume_in_quote_currency=True`` to get
  BTC (``volume / close``). Bars carry no spread: ``bars_to_l1`` synthesizes
  quotes with ``bar_spread_bps`` (2 bps) and ``bar_displayed_size`` (None ->
  ``default_displayed_size``) via the engine's ``bars_to_quotes_and_trades``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from ifns_paper.engine.marketdata import (
    BarBatch,
    MarketDataError,
    QuoteBatch,
    TradeBatch,
    bars_to_quotes_and_trades,
)

Kind = Literal["quotes", "trades", "bars"]
OnBad = Literal["reject", "quarantine"]
Batch = QuoteBatch | TradeBatch | BarBatch

QUOTE_COLUMNS = ("ts", "symbol", "bid", "ask", "bid_size", "ask_size")
TRADE_COLUMNS = ("ts", "symbol", "price", "size", "aggressor")
BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX_TEXT = str(np.iinfo(np.int64).max)
# Text read as "no value" in number columns (CSV); empty text elsewhere.
_NUMBER_NA = ["", "nan", "NaN", "NAN", "-nan", "-NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "#N/A"]
_NUMBER_NA_LOWER = frozenset(v.lower() for v in _NUMBER_NA)
_AGGRESSOR_CODES = {"buy": 1, "sell": -1, "unknown": 0, "1": 1, "-1": -1, "0": 0}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ImportOptions:
    """How to read a file; see the module docstring for what each assumption means."""

    symbol: str | None = None
    default_displayed_size: float = 1_000_000.0
    bar_spread_bps: float = 2.0
    bar_displayed_size: float | None = None
    bar_volume_in_quote_currency: bool = False
    on_bad: OnBad = "reject"

    def __post_init__(self) -> None:
        if self.symbol is not None and not self.symbol.strip():
            raise ValueError("ImportOptions.symbol must not be blank")
        if not (math.isfinite(self.default_displayed_size) and self.default_displayed_size > 0):
            raise ValueError("ImportOptions.default_displayed_size must be a positive finite number")
        if not (math.isfinite(self.bar_spread_bps) and self.bar_spread_bps >= 0):
            raise ValueError("ImportOptions.bar_spread_bps must be a finite number >= 0")
        if self.bar_displayed_size is not None and not (
            math.isfinite(self.bar_displayed_size) and self.bar_displayed_size > 0
        ):
            raise ValueError("ImportOptions.bar_displayed_size must be a positive finite number")
        if self.on_bad not in ("reject", "quarantine"):
            raise ValueError(f"ImportOptions.on_bad must be 'reject' or 'quarantine', not {self.on_bad!r}")


@dataclass
class ImportResult:
    """Batches per symbol (first-appearance order), rows in file order."""

    batches: dict[str, Batch]
    rows_read: int
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    kind: str = ""
    source: str = ""

    @property
    def rows_kept(self) -> int:
        return sum(len(b) for b in self.batches.values())

    def batch(self, symbol: str | None = None) -> Batch:
        """The batch of ``symbol``; without one, the only batch (error if there are several)."""
        if symbol is not None:
            return self.batches[symbol]
        if len(self.batches) != 1:
            raise KeyError(f"{self.source}: {len(self.batches)} symbols, name one: {sorted(self.batches)}")
        return next(iter(self.batches.values()))


# --------------------------------------------------------------------------- column specs


@dataclass(frozen=True)
class _Spec:
    kind: str
    columns: tuple[str, ...]
    required: frozenset[str]
    numeric: tuple[str, ...]
    aliases: Mapping[str, str]
    dropped: frozenset[str]
    time_reason: str
    time_op: str  # how the row relates to the previous kept one when it is bad

    def expected(self) -> str:
        text = ", ".join(self.columns)
        extra = [f"{alias} for {canon}" for alias, canon in self.aliases.items()]
        extra += [f"{name} (dropped)" for name in sorted(self.dropped)]
        return f"{text}; also accepted: {', '.join(extra)}" if extra else text


_SPECS: dict[str, _Spec] = {
    "quotes": _Spec(
        "quotes", QUOTE_COLUMNS, frozenset({"ts", "bid", "ask"}), ("bid", "ask", "bid_size", "ask_size"),
        {"timestamp": "ts"}, frozenset(), "time goes backwards", "<",
    ),
    "trades": _Spec(
        "trades", TRADE_COLUMNS, frozenset({"ts", "price", "size"}), ("price", "size"),
        {"timestamp": "ts", "quantity": "size"}, frozenset({"trade_id"}), "time goes backwards", "<",
    ),
    "bars": _Spec(
        "bars", BAR_COLUMNS, frozenset({"ts", "open", "high", "low", "close", "volume"}),
        ("open", "high", "low", "close", "volume"), {"timestamp": "ts"}, frozenset(),
        "time does not increase", "<=",
    ),
}


def _file_format(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise MarketDataError(str(path), None, f"unsupported file type {path.suffix!r} (expected .csv or .parquet)")
    return fmt


def _header(path: Path) -> list[str]:
    """The column names exactly as written in the file."""
    source = str(path)
    if _file_format(path) == "parquet":
        try:
            names = list(pq.read_schema(path).names)
        except (ValueError, pa.ArrowException) as exc:  # corrupt or not Parquet at all
            raise MarketDataError(source, None, f"cannot read Parquet file: {exc}") from exc
        return [n for n in names if not (n.startswith("__index_level_") and n.endswith("__"))]
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            first = next(csv.reader(fh), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MarketDataError(source, 1, f"cannot read the header line: {exc}") from exc
    if not first:
        raise MarketDataError(source, None, "empty file: no header line")
    return first


def _resolve_columns(source: str, names: list[str], spec: _Spec) -> dict[str, str]:
    """Map the file's column names to canonical ones (dropped columns left out)."""
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    seen: dict[str, list[str]] = {}
    for raw in names:
        key = str(raw).strip().lower()
        canon = spec.aliases.get(key, key)
        if canon in spec.dropped:
            seen.setdefault(canon, []).append(raw)
            continue
        if canon not in spec.columns:
            unknown.append(str(raw))
            continue
        seen.setdefault(canon, []).append(raw)
        mapping[raw] = canon
    if unknown:
        raise MarketDataError(source, None, f"unknown column(s): {', '.join(unknown)} (expected: {spec.expected()})")
    dups = {c: raws for c, raws in seen.items() if len(raws) > 1}
    if dups:
        text = "; ".join(f"{c} ({', '.join(map(str, raws))})" for c, raws in dups.items())
        raise MarketDataError(source, None, f"duplicate column(s): {text}")
    present = set(mapping.values())
    missing = [c for c in spec.columns if c in spec.required and c not in present]
    if spec.kind == "quotes" and ("bid_size" in present) != ("ask_size" in present):
        missing.append("ask_size" if "bid_size" in present else "bid_size")
    if missing:
        raise MarketDataError(
            source, None, f"missing required column(s): {', '.join(missing)} (expected: {spec.expected()})"
        )
    return mapping


def _file_symbol(path: Path, options: ImportOptions) -> str | None:
    if options.symbol is not None:
        return options.symbol.strip()
    name = path.name
    if "_" not in name:
        return None
    token = name.split("_", 1)[0].strip().upper()
    return token or None


def detect_kind(path: str | Path) -> Kind:
    """``quotes``, ``trades`` or ``bars``, from the header's column names."""
    path = Path(path)
    keys = {str(n).strip().lower() for n in _header(path)}
    keys = {{"timestamp": "ts", "quantity": "size"}.get(k, k) for k in keys}
    found: list[Kind] = []
    if {"bid", "ask"} <= keys:
        found.append("quotes")
    if "price" in keys:
        found.append("trades")
    if {"open", "high", "low", "close"} <= keys:
        found.append("bars")
    if len(found) != 1:
        why = "columns of several kinds" if found else "no quote (bid, ask), trade (price) or bar (open, high, low, close) columns"
        raise MarketDataError(str(path), None, f"cannot tell the kind of data: {why}")
    return found[0]


# --------------------------------------------------------------------------- reading frames


def _csv_kwargs(names: list[str], mapping: dict[str, str], spec: _Spec) -> dict[str, Any]:
    # Every column is read (no ``usecols``): with it pandas silently cuts rows that have too
    # many fields, which can hide shifted values. ``index_col=False`` makes such rows an error.
    text_cols = {"ts", "symbol", "aggressor"}
    dtype = {raw: str for raw in names if raw not in mapping or mapping[raw] in text_cols}
    na_values = {raw: (_NUMBER_NA if mapping.get(raw) in spec.numeric else [""]) for raw in names}
    return {
        "dtype": dtype,
        "keep_default_na": False,
        "na_values": na_values,
        "skip_blank_lines": False,
        "index_col": False,
        "encoding": "utf-8-sig",
    }


def _csv_error(source: str, exc: Exception) -> MarketDataError:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if found:
        expected, line, saw = found.groups()
        return MarketDataError(source, int(line), f"malformed CSV line: expected {expected} fields, saw {saw}")
    return MarketDataError(source, None, f"cannot parse file: {exc}")


def _canonical(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    return frame[list(mapping)].rename(columns=mapping)


def _read_frame(path: Path, names: list[str], mapping: dict[str, str], spec: _Spec) -> pd.DataFrame:
    source = str(path)
    if _file_format(path) == "parquet":
        try:
            frame = pd.read_parquet(path, columns=list(mapping))
        except (ValueError, pa.ArrowException) as exc:
            raise MarketDataError(source, None, f"cannot read Parquet file: {exc}") from exc
        return _canonical(frame, mapping)
    try:
        frame = pd.read_csv(path, **_csv_kwargs(names, mapping, spec))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise _csv_error(source, exc) from exc
    return _canonical(frame, mapping)


def _iter_frames(
    path: Path, names: list[str], mapping: dict[str, str], spec: _Spec, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    source = str(path)
    if _file_format(path) == "parquet":
        try:
            pf = pq.ParquetFile(path)
            for record_batch in pf.iter_batches(batch_size=chunk_rows, columns=list(mapping)):
                yield _canonical(record_batch.to_pandas(), mapping)
        except (ValueError, pa.ArrowException) as exc:
            raise MarketDataError(source, None, f"cannot read Parquet file: {exc}") from exc
        return
    try:
        with pd.read_csv(path, chunksize=chunk_rows, **_csv_kwargs(names, mapping, spec)) as reader:
            for chunk in reader:
                yield _canonical(chunk, mapping)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise _csv_error(source, exc) from exc


# --------------------------------------------------------------------------- column conversion


class _Reasons:
    """First reason per row wins."""

    def __init__(self, n: int) -> None:
        self.r = np.full(n, "", dtype=object)

    def mark(self, mask: np.ndarray, reason: str | np.ndarray) -> None:
        hit = mask & (self.r == "")
        if hit.any():
            self.r[hit] = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[hit]

    def ok(self) -> np.ndarray:
        return self.r == ""


def _text(col: pd.Series) -> pd.Series:
    """Stripped nullable strings; empty text is missing."""
    text = col.astype("string").str.strip()
    return text.mask(text == "")


def _bool(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=bool, na_value=False)


def _quoted(prefix: str, text: pd.Series, suffix: str = "") -> np.ndarray:
    return (prefix + "'" + text.fillna("") + "'" + suffix).to_numpy(dtype=object)


def _datetimes_to_ns(parsed: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(ns, usable) of a datetime Series; naive = UTC; NaT and values outside int64 ns are unusable."""
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    usable = (parsed.notna() & (parsed >= pd.Timestamp.min) & (parsed <= pd.Timestamp.max)).to_numpy()
    ns = parsed.where(usable).to_numpy(dtype="datetime64[ns]").view(np.int64)
    return ns, usable


def _timestamps(col: pd.Series, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(ns int64, reason per row: '' when fine)."""
    n = len(col)
    reasons = np.full(n, "", dtype=object)
    if ptypes.is_datetime64_any_dtype(col.dtype):
        ns, usable = _datetimes_to_ns(col)
        missing = col.isna().to_numpy()
        reasons[missing] = "missing timestamp"
        reasons[~usable & ~missing] = "timestamp out of range"
        return ns, reasons
    if ptypes.is_integer_dtype(col.dtype) and not ptypes.is_bool_dtype(col.dtype):
        missing = col.isna().to_numpy()
        too_big = np.zeros(n, dtype=bool)
        if ptypes.is_unsigned_integer_dtype(col.dtype):
            too_big = _bool(col > np.iinfo(np.int64).max)
        reasons[missing] = "missing timestamp"
        reasons[too_big] = "timestamp out of range"
        ns = col.where(~(missing | too_big), 0).to_numpy(dtype=np.int64, na_value=0)
        return ns, reasons
    if ptypes.is_float_dtype(col.dtype):
        raise MarketDataError(
            source, None, "column ts holds floating-point numbers: epoch nanoseconds must be integers"
        )
    text = _text(col)
    missing = text.isna().to_numpy()
    digits = _bool(text.str.fullmatch(r"-?\d{1,19}"))
    magnitude = text.str.lstrip("-")
    digits &= ~_bool((magnitude.str.len() == 19) & (magnitude > _INT64_MAX_TEXT))
    ns = np.zeros(n, dtype=np.int64)
    if digits.any():
        ns[digits] = text[digits].astype("int64").to_numpy(dtype=np.int64)
    iso = ~missing & ~digits
    if iso.any():
        parsed = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce")
        iso_ns, usable = _datetimes_to_ns(parsed)
        ns[iso] = iso_ns
        bad = np.zeros(n, dtype=bool)
        bad[np.flatnonzero(iso)[~usable]] = True
        if bad.any():
            reasons[bad] = _quoted("unparsable timestamp ", text[bad])
    reasons[missing] = "missing timestamp"
    return ns, reasons


def _floats(col: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, reason per row for text that is not a number)."""
    reasons = np.full(len(col), "", dtype=object)
    if ptypes.is_numeric_dtype(col.dtype) and not ptypes.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan), reasons
    text = _text(col)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    not_number = np.isnan(values) & text.notna().to_numpy() & ~_bool(text.str.lower().isin(_NUMBER_NA_LOWER))
    if not_number.any():
        reasons[not_number] = _quoted(f"not a number in column {name}: ", text[not_number])
    return values, reasons


def _aggressors(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(+1 buy / -1 sell / 0 unknown as int8, reason per row)."""
    reasons = np.full(len(col), "", dtype=object)
    if ptypes.is_numeric_dtype(col.dtype) and not ptypes.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        known = np.isnan(values) | np.isin(values, (1.0, -1.0, 0.0))
        codes = np.where(known & ~np.isnan(values), values, 0).astype(np.int8)
        if not known.all():
            reasons[~known] = _quoted("bad aggressor value ", col.astype("string")[~known],
                                      " (expected buy, sell, unknown or empty)")
        return codes, reasons
    text = _text(col).str.lower()
    mapped = text.map(_AGGRESSOR_CODES)
    known = (text.isna() | mapped.notna()).to_numpy()
    codes = mapped.to_numpy(dtype=np.float64, na_value=0.0).astype(np.int8)
    if not known.all():
        reasons[~known] = _quoted("bad aggressor value ", _text(col)[~known],
                                  " (expected buy, sell, unknown or empty)")
    return codes, reasons


def _check_batch(kind: str, cols: dict[str, np.ndarray], n: int) -> Batch:
    """A batch for the engine's value checks only: ``ts`` strictly increasing so no time reason fires."""
    ts = np.arange(n, dtype=np.int64)
    if kind == "quotes":
        return QuoteBatch.from_arrays("", ts, cols["bid"], cols["ask"], cols["bid_size"], cols["ask_size"])
    if kind == "trades":
        return TradeBatch.from_arrays("", ts, cols["price"], cols["size"], cols["aggressor"])
    return BarBatch.from_arrays("", ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"])


def _fmt_ns(values: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC with all nine fraction digits, e.g. 2021-01-08T00:00:01.500000000Z."""
    return np.char.add(np.datetime_as_string(values.astype("datetime64[ns]"), unit="ns"), "Z")


# --------------------------------------------------------------------------- analysis


@dataclass
class _Chunk:
    rows_read: int
    quarantined: list[tuple[int, str]]
    batches: list[Batch]


def _analyse(
    frame: pd.DataFrame,
    spec: _Spec,
    options: ImportOptions,
    source: str,
    first_line: int,
    file_symbol: str | None,
    last_kept: dict[str, int],
    skip_blank: bool,
) -> _Chunk:
    """Convert, validate and split one frame; ``last_kept`` (symbol -> ns) carries time across chunks."""
    lines = first_line + np.arange(len(frame), dtype=np.int64)
    blank = frame.isna().all(axis=1).to_numpy() if skip_blank else np.zeros(len(frame), dtype=bool)
    if blank.any():
        frame, lines = frame.loc[~blank], lines[~blank]
    n = len(frame)
    reasons = _Reasons(n)

    ts, why = _timestamps(frame["ts"], source)
    reasons.mark(why != "", why)

    if "symbol" in frame.columns:
        sym = _text(frame["symbol"])
        missing = sym.isna().to_numpy()
        reasons.mark(missing, "missing symbol")
        symbols: np.ndarray | None = sym.to_numpy(dtype=object, na_value="")
        if options.symbol is not None:
            wanted = options.symbol.strip()
            other = ~missing & (symbols != wanted)
            reasons.mark(other, _quoted("symbol ", sym, f" differs from ImportOptions.symbol '{wanted}'"))
    else:
        if file_symbol is None:
            raise MarketDataError(
                source, None,
                "no symbol column and none derivable from the file name (SYMBOL_...): set ImportOptions.symbol",
            )
        symbols = None

    cols: dict[str, np.ndarray] = {}
    for name in spec.numeric:
        if name in frame.columns:
            cols[name], why = _floats(frame[name], name)
            reasons.mark(why != "", why)
    if spec.kind == "quotes" and "bid_size" not in cols:
        cols["bid_size"] = np.full(n, options.default_displayed_size)
        cols["ask_size"] = np.full(n, options.default_displayed_size)
    if spec.kind == "trades":
        if "aggressor" in frame.columns:
            cols["aggressor"], why = _aggressors(frame["aggressor"])
            reasons.mark(why != "", why)
        else:
            cols["aggressor"] = np.zeros(n, dtype=np.int8)

    bad, why_list = _check_batch(spec.kind, cols, n).problems()
    if bad.any():
        full = np.full(n, "", dtype=object)
        full[bad] = why_list
        reasons.mark(bad, full)

    # Time, per symbol, against the last kept row. A valid row that is dropped for time
    # is earlier than some kept row before it, so the running max over all valid rows
    # equals the running max over kept rows: no row-by-row loop needed.
    ok = np.flatnonzero(reasons.ok())
    if len(ok):
        ts_ok = ts[ok]
        if symbols is None:
            keys = np.zeros(len(ok), dtype=np.int64)
            uniques = [file_symbol]
        else:
            keys, uniques = pd.factorize(symbols[ok])
        seeds = np.array([last_kept.get(u, _INT64_MIN) for u in uniques], dtype=np.int64)
        if len(uniques) == 1:
            running = np.maximum.accumulate(ts_ok)
            prev = np.empty_like(ts_ok)
            prev[0] = _INT64_MIN
            prev[1:] = running[:-1]
        else:
            s = pd.Series(ts_ok)
            running = s.groupby(keys, sort=False).cummax()
            prev = running.groupby(keys, sort=False).shift(1, fill_value=_INT64_MIN).to_numpy(dtype=np.int64)
        prev = np.maximum(prev, seeds[keys])
        back = ts_ok <= prev if spec.time_op == "<=" else ts_ok < prev
        if back.any():
            where = np.zeros(n, dtype=bool)
            where[ok[back]] = True
            text = np.full(n, "", dtype=object)
            detail = np.char.add(np.char.add(_fmt_ns(ts_ok[back]), f" {spec.time_op} previous "), _fmt_ns(prev[back]))
            text[where] = np.char.add(f"{spec.time_reason}: ", detail).astype(object)
            reasons.mark(where, text)

    kept = reasons.ok()
    bad_rows = np.flatnonzero(~kept)
    if len(bad_rows) and options.on_bad == "reject":
        first = bad_rows[0]
        raise MarketDataError(source, int(lines[first]), str(reasons.r[first]))
    quarantined = list(zip(lines[bad_rows].tolist(), reasons.r[bad_rows].tolist(), strict=True))

    batches = _build_batches(spec, options, ts[kept], {k: v[kept] for k, v in cols.items()},
                             None if symbols is None else symbols[kept], file_symbol, last_kept)
    return _Chunk(n, quarantined, batches)


def _build_batches(
    spec: _Spec,
    options: ImportOptions,
    ts: np.ndarray,
    cols: dict[str, np.ndarray],
    symbols: np.ndarray | None,
    file_symbol: str | None,
    last_kept: dict[str, int],
) -> list[Batch]:
    if not len(ts):
        return []
    if symbols is None:
        groups: list[tuple[str, np.ndarray | slice]] = [(str(file_symbol), slice(None))]
    else:
        codes, uniques = pd.factorize(symbols)
        if len(uniques) == 1:
            groups = [(str(uniques[0]), slice(None))]
        else:
            order = np.argsort(codes, kind="stable")
            bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
            groups = list(zip((str(u) for u in uniques), np.split(order, bounds), strict=True))
    out: list[Batch] = []
    for symbol, idx in groups:
        t = ts[idx]
        last_kept[symbol] = max(last_kept.get(symbol, _INT64_MIN), int(t.max()))
        c = {k: v[idx] for k, v in cols.items()}
        if spec.kind == "quotes":
            out.append(QuoteBatch.from_arrays(symbol, t, c["bid"], c["ask"], c["bid_size"], c["ask_size"]))
        elif spec.kind == "trades":
            out.append(TradeBatch.from_arrays(symbol, t, c["price"], c["size"], c["aggressor"]))
        else:
            volume = c["volume"] / c["close"] if options.bar_volume_in_quote_currency else c["volume"]
            out.append(BarBatch.from_arrays(symbol, t, c["open"], c["high"], c["low"], c["close"], volume))
    return out


def _check_options(options: ImportOptions | None) -> ImportOptions:
    if options is None:
        return ImportOptions()
    if not isinstance(options, ImportOptions):
        raise TypeError(f"options must be ImportOptions, not {type(options).__name__}")
    return options


def _read(path: str | Path, options: ImportOptions | None, kind: str) -> ImportResult:
    path = Path(path)
    options = _check_options(options)
    spec = _SPECS[kind]
    source = str(path)
    names = _header(path)
    mapping = _resolve_columns(source, names, spec)
    frame = _read_frame(path, names, mapping, spec)
    chunk = _analyse(frame, spec, options, source, 2, _file_symbol(path, options), {},
                     skip_blank=_file_format(path) == "csv")
    return ImportResult({b.symbol: b for b in chunk.batches}, chunk.rows_read, chunk.quarantined, kind, source)


def read_quotes(path: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Quotes file (.csv/.parquet) -> ``QuoteBatch`` per symbol."""
    return _read(path, options, "quotes")


def read_trades(path: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Trades file (.csv/.parquet) -> ``TradeBatch`` per symbol."""
    return _read(path, options, "trades")


def read_bars(path: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Bars file (.csv/.parquet) -> ``BarBatch`` per symbol (volume in base units)."""
    return _read(path, options, "bars")


def read_any(path: str | Path, options: ImportOptions | None = None) -> ImportResult:
    """Read a file of whatever kind ``detect_kind`` finds."""
    return _read(path, options, detect_kind(path))


def bars_to_l1(bars: BarBatch, options: ImportOptions | None = None) -> tuple[QuoteBatch, TradeBatch]:
    """Synthesized quotes and trades for bars, with the options' spread and displayed size."""
    options = _check_options(options)
    size = options.bar_displayed_size if options.bar_displayed_size is not None else options.default_displayed_size
    return bars_to_quotes_and_trades(bars, spread_bps=options.bar_spread_bps, displayed_size=size)


class QuoteChunks(Iterator[QuoteBatch]):
    """Iterator of ``QuoteBatch`` chunks (one per symbol per chunk) with constant memory.

    Time is checked across chunk boundaries too. ``rows_read`` and
    ``quarantined`` grow as the iteration proceeds.
    """

    def __init__(self, path: str | Path, options: ImportOptions | None, chunk_rows: int) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.path = Path(path)
        self.source = str(self.path)
        self.options = _check_options(options)
        self.chunk_rows = chunk_rows
        self.rows_read = 0
        self.quarantined: list[tuple[int, str]] = []
        self._spec = _SPECS["quotes"]
        self._names = _header(self.path)
        self._mapping = _resolve_columns(self.source, self._names, self._spec)
        self._gen = self._generate()

    def _generate(self) -> Iterator[QuoteBatch]:
        last_kept: dict[str, int] = {}
        file_symbol = _file_symbol(self.path, self.options)
        line = 2
        skip_blank = _file_format(self.path) == "csv"
        for frame in _iter_frames(self.path, self._names, self._mapping, self._spec, self.chunk_rows):
            chunk = _analyse(frame, self._spec, self.options, self.source, line, file_symbol, last_kept,
                             skip_blank=skip_blank)
            line += len(frame)
            self.rows_read += chunk.rows_read
            self.quarantined.extend(chunk.quarantined)
            yield from chunk.batches

    def __iter__(self) -> QuoteChunks:
        return self

    def __next__(self) -> QuoteBatch:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()


def iter_quote_chunks(path: str | Path, options: ImportOptions | None = None, chunk_rows: int = 100_000) -> QuoteChunks:
    """Quotes in chunks of at most ``chunk_rows`` file rows (see ``QuoteChunks``)."""
    return QuoteChunks(path, options, chunk_rows)
