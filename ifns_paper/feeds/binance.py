"""Binance combined-stream adapter: frame parsing and an asyncio WebSocket client.

Binance's public combined stream (``wss://stream.binance.com:9443/stream?streams=
btcusdt@bookTicker/btcusdt@trade``) sends one JSON text frame per event,
``{"stream": "<name>", "data": {...}}``. Numbers are JSON strings.

Mapping to the canonical records (``ifns_paper.engine.marketdata``):

* ``<symbol>@bookTicker`` -> ``Quote``: ``s`` symbol, ``b``/``B`` best bid
  price/qty, ``a``/``A`` best ask price/qty. **Spot bookTicker payloads carry
  no timestamp** (only ``u``, the order-book update id), so ``Quote.ts`` is the
  *receive* time given by the caller (``recv_ns``, the client's wall clock):
  it includes network latency and clock error, and two quotes of one frame
  burst may share it.
* ``<symbol>@trade`` -> ``Trade``: ``ts`` = ``T`` (trade time, ms) in ns — not
  ``E`` (event time) nor the receive time; ``p`` price, ``q`` size; ``m`` true
  means the *buyer* was the maker, i.e. the taker sold: aggressor ``sell``,
  else ``buy``. ``t`` (trade id, contiguous per symbol) is used by the client
  to count missed trades.
* Anything else (other streams, subscription replies ``{"result":..,"id":..}``)
  -> ``None``. A frame without the ``stream`` wrapper is read as a raw payload
  (``e == "trade"``, or ``u``/``b``/``a`` keys for bookTicker).

Values are not judged here (a crossed or zero-price quote parses fine and is
rejected downstream by ``QuoteBatch.problems()``); only malformed frames raise
``MarketDataError`` naming the field: bad JSON, a missing field, a price or
size that is not a finite number, a non-integer ``T``/``t``, a non-boolean ``m``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from ifns_paper.engine.marketdata import NS_PER_MS, Aggressor, MarketDataError, Quote, Trade

SOURCE = "binance"
BINANCE_SPOT_STREAM_URL = "wss://stream.binance.com:9443/stream"

_QUOTE_FIELDS = (("b", "best bid price"), ("B", "best bid quantity"),
                 ("a", "best ask price"), ("A", "best ask quantity"))


# -- parsing ---------------------------------------------------------------------------------


def _err(source: str, row: int | None, reason: str) -> MarketDataError:
    return MarketDataError(source, row, reason)


def _field(payload: dict, key: str, what: str, source: str, row: int | None) -> Any:
    if key not in payload:
        raise _err(source, row, f"missing field '{key}' ({what})")
    return payload[key]


def _number(payload: dict, key: str, what: str, source: str, row: int | None) -> float:
    raw = _field(payload, key, what, source, row)
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _err(source, row, f"field '{key}' ({what}) is not a number: {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise _err(source, row, f"field '{key}' ({what}) is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise _err(source, row, f"field '{key}' ({what}) is not a finite number: {raw!r}")
    return value


def _integer(payload: dict, key: str, what: str, source: str, row: int | None) -> int:
    raw = _field(payload, key, what, source, row)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _err(source, row, f"field '{key}' ({what}) is not an integer: {raw!r}")
    return raw


def _symbol(payload: dict, source: str, row: int | None) -> str:
    raw = _field(payload, "s", "symbol", source, row)
    if not isinstance(raw, str) or not raw:
        raise _err(source, row, f"field 's' (symbol) is not a non-empty string: {raw!r}")
    return raw


def _kind(obj: dict, source: str, row: int | None) -> tuple[str | None, dict | None]:
    """('quote' | 'trade' | None, payload)."""
    if "stream" in obj:
        stream = obj["stream"]
        if not isinstance(stream, str):
            raise _err(source, row, f"field 'stream' is not a string: {stream!r}")
        payload = _field(obj, "data", "stream payload", source, row)
        if not isinstance(payload, dict):
            raise _err(source, row, f"field 'data' is not a JSON object: {type(payload).__name__}")
        channel = stream.rpartition("@")[2]
        if channel == "bookTicker":
            return "quote", payload
        if channel == "trade":
            return "trade", payload
        return None, payload
    event = obj.get("e")
    if event == "trade":
        return "trade", obj
    if event == "bookTicker" or (event is None and {"u", "b", "a"} <= obj.keys()):
        return "quote", obj
    return None, obj


def parse_frame_with_id(text: str | bytes, recv_ns: int, *, source: str = SOURCE,
                        row: int | None = None) -> tuple[Quote | Trade | None, int | None]:
    """``parse_frame`` plus the trade id ``t`` (None for quotes and ignored frames)."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _err(source, row, f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _err(source, row, f"frame is not a JSON object: {type(obj).__name__}")
    kind, p = _kind(obj, source, row)
    if kind == "quote":
        symbol = _symbol(p, source, row)
        bid, bid_size, ask, ask_size = (_number(p, k, what, source, row) for k, what in _QUOTE_FIELDS)
        return Quote(int(recv_ns), symbol, bid, ask, bid_size, ask_size), None
    if kind == "trade":
        symbol = _symbol(p, source, row)
        price = _number(p, "p", "price", source, row)
        size = _number(p, "q", "quantity", source, row)
        trade_ms = _integer(p, "T", "trade time", source, row)
        trade_id = _integer(p, "t", "trade id", source, row)
        maker = _field(p, "m", "buyer is maker", source, row)
        if not isinstance(maker, bool):
            raise _err(source, row, f"field 'm' (buyer is maker) is not a boolean: {maker!r}")
        aggressor = Aggressor.SELL if maker else Aggressor.BUY
        return Trade(trade_ms * NS_PER_MS, symbol, price, size, aggressor), trade_id
    return None, None


def parse_frame(text: str | bytes, recv_ns: int, *, source: str = SOURCE,
                row: int | None = None) -> Quote | Trade | None:
    """One combined-stream frame -> ``Quote`` (ts = ``recv_ns``), ``Trade`` (ts = ``T``) or None.

    Raises ``MarketDataError(source, row, reason)`` for a malformed frame, the
    reason naming the field (e.g. ``field 'p' (price) is not a number: 'abc'``).
    """
    return parse_frame_with_id(text, recv_ns, source=source, row=row)[0]


def stream_names(symbols: Iterable[str]) -> list[str]:
    """``btcusdt@bookTicker``, ``btcusdt@trade`` per symbol (Binance wants lower case)."""
    names: list[str] = []
    for symbol in symbols:
        s = symbol.strip().lower()
        if not s:
            raise ValueError("empty symbol")
        names += [f"{s}@bookTicker", f"{s}@trade"]
    return names


def stream_url(url: str, symbols: Iterable[str]) -> str:
    """``{url}?streams=a@bookTicker/a@trade/...``"""
    names = stream_names(symbols)
    if not names:
        raise ValueError("at least one symbol is needed")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}streams={'/'.join(names)}"


# -- client ----------------------------------------------------------------------------------


class FeedState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STALE = "stale"  # connected, but nothing received for stale_after_s: about to reconnect
    DISCONNECTED = "disconnected"  # the connection dropped or could not be opened; backing off
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A snapshot of the client's counters.

    messages: frames received (all kinds); quotes/trades: records dispatched;
    ignored: frames that are neither (other streams, replies); parse_errors:
    malformed frames (skipped); reconnects: successful connections after the
    first one; connect_failures: attempts that failed to open; stale_events:
    times the stream went silent for stale_after_s; trades_missed: trade ids
    skipped (``t`` is contiguous per symbol, so a jump after a reconnect means
    trades lost while away); last_message_age_s: seconds since the last frame
    (None before the first); last_error: the last connection or parse problem.
    """

    state: FeedState
    messages: int
    quotes: int
    trades: int
    ignored: int
    parse_errors: int
    reconnects: int
    connect_failures: int
    stale_events: int
    trades_missed: int
    last_message_age_s: float | None
    last_error: str | None


Callback = Callable[[Any], Awaitable[None] | None]


def backoff_delay(attempt: int, backoff: Sequence[float], jitter: float = 0.0,
                  rng: random.Random | None = None) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): ``backoff[attempt]``, the last
    value repeating (the cap), times ``1 + jitter * U(-1, 1)`` when a ``rng`` is given."""
    base = float(backoff[min(attempt, len(backoff) - 1)])
    if jitter and rng is not None:
        base *= 1.0 + jitter * (2.0 * rng.random() - 1.0)
    return max(0.0, base)


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


class BinanceStream:
    """Binance combined-stream client: bookTicker + trade of ``symbols``.

    url: base of the combined stream (``BINANCE_SPOT_STREAM_URL``; a test server).
    on_quote(Quote) / on_trade(Trade): called in arrival order; may be coroutine
        functions. Their exceptions propagate out of ``run``.
    on_health(FeedHealth): called on every state change (connected, stale,
        disconnected, stopped); ``health()`` gives a snapshot at any time.
    stale_after_s: no frame for this long [s] -> reported STALE, the connection
        is closed and reopened (Binance sends bookTicker many times a second;
        for an illiquid symbol raise it).
    backoff: delays [s] before successive reconnect attempts; the last one
        repeats. Reset after a connection that delivered at least one frame.
    jitter, seed: each delay is scaled by ``1 + jitter * U(-1, 1)`` drawn from
        ``random.Random(seed)``; jitter 0 (default) = exact delays.
    open_timeout, close_timeout: WebSocket handshake limits [s].
    proxy: passed to ``websockets.connect`` (True = from the environment, None = direct).
    wall_clock_ns: source of receive timestamps (``time.time_ns``); staleness
        uses ``time.monotonic``.

    Binance does not replay missed events: after a reconnect data resume at
    the live point, and ``trades_missed`` counts the trade ids skipped.
    """

    def __init__(self, url: str, symbols: Sequence[str], on_quote: Callback, on_trade: Callback,
                 on_health: Callback | None = None, *, stale_after_s: float = 10.0,
                 backoff: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0), jitter: float = 0.0,
                 seed: int | None = None, open_timeout: float = 10.0, close_timeout: float = 2.0,
                 proxy: str | bool | None = True,
                 wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0")
        if not backoff or min(backoff) < 0:
            raise ValueError("backoff needs at least one delay, none negative")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be within [0, 1)")
        self.symbols = tuple(symbols)
        self.url = stream_url(url, self.symbols)
        self.on_quote, self.on_trade, self.on_health = on_quote, on_trade, on_health
        self.stale_after_s = float(stale_after_s)
        self.backoff = tuple(float(b) for b in backoff)
        self.jitter = float(jitter)
        self._rng = random.Random(seed)
        self.open_timeout, self.close_timeout = open_timeout, close_timeout
        self.proxy = proxy
        self._wall_ns = wall_clock_ns
        self._state = FeedState.DISCONNECTED
        self._messages = self._quotes = self._trades = self._ignored = 0
        self._parse_errors = self._reconnects = self._connect_failures = 0
        self._stale_events = self._trades_missed = 0
        self._last_msg_mono: float | None = None
        self._last_error: str | None = None
        self._last_trade_id: dict[str, int] = {}
        self._connected_once = False

    # -- health --------------------------------------------------------------------------------

    def health(self) -> FeedHealth:
        age = None if self._last_msg_mono is None else time.monotonic() - self._last_msg_mono
        return FeedHealth(self._state, self._messages, self._quotes, self._trades, self._ignored,
                          self._parse_errors, self._reconnects, self._connect_failures,
                          self._stale_events, self._trades_missed, age, self._last_error)

    async def _report(self, state: FeedState) -> None:
        self._state = state
        if self.on_health is not None:
            await _maybe_await(self.on_health(self.health()))

    # -- main loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, dispatch, reconnect on drops and staleness; return once ``stop`` is set."""
        attempt = 0
        try:
            while not stop.is_set():
                self._state = FeedState.CONNECTING
                ws = await self._until_stop(self._open(), stop)
                if ws is None:
                    break  # stopped while connecting
                if isinstance(ws, BaseException):
                    self._connect_failures += 1
                    self._last_error = f"connect failed: {type(ws).__name__}: {ws}"
                    await self._report(FeedState.DISCONNECTED)
                else:
                    if self._connected_once:
                        self._reconnects += 1
                    self._connected_once = True
                    await self._report(FeedState.CONNECTED)
                    before = self._messages
                    try:
                        outcome = await self._until_stop(self._session(ws), stop)
                    finally:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(ws.close(), self.close_timeout + 1.0)
                    if outcome is None:
                        break
                    if self._messages > before:
                        attempt = 0
                    if outcome == "stale":
                        self._stale_events += 1
                        self._last_error = f"no message for {self.stale_after_s:g} s"
                        await self._report(FeedState.STALE)
                    else:
                        await self._report(FeedState.DISCONNECTED)
                if stop.is_set():
                    break
                delay = backoff_delay(attempt, self.backoff, self.jitter, self._rng)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            await self._report(FeedState.STOPPED)

    async def _until_stop(self, coro, stop: asyncio.Event):
        """Result of ``coro``, or None if ``stop`` is set first (``coro`` is then cancelled)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return None
        return task.result()

    async def _open(self) -> ClientConnection | BaseException:
        try:
            return await connect(self.url, open_timeout=self.open_timeout, close_timeout=self.close_timeout,
                                 proxy=self.proxy, max_queue=1024)
        except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake,
                websockets.exceptions.InvalidMessage) as exc:
            return exc

    async def _session(self, ws: ClientConnection) -> str:
        """Receive until the connection drops ('closed') or goes silent ('stale')."""
        opened = time.monotonic()
        while True:
            last = opened if self._last_msg_mono is None else max(opened, self._last_msg_mono)
            remaining = self.stale_after_s - (time.monotonic() - last)
            if remaining <= 0:
                return "stale"
            try:
                async with asyncio.timeout(remaining):
                    frame = await ws.recv()
            except TimeoutError:
                continue
            except websockets.exceptions.ConnectionClosed as exc:
                self._last_error = f"connection closed: {exc}"
                return "closed"
            self._last_msg_mono = time.monotonic()
            await self._dispatch(frame, self._wall_ns())

    async def _dispatch(self, frame: str | bytes, recv_ns: int) -> None:
        self._messages += 1
        try:
            record, trade_id = parse_frame_with_id(frame, recv_ns)
        except MarketDataError as exc:
            self._parse_errors += 1
            self._last_error = str(exc)
            return
        if record is None:
            self._ignored += 1
        elif isinstance(record, Quote):
            self._quotes += 1
            await _maybe_await(self.on_quote(record))
        else:
            self._trades += 1
            last = self._last_trade_id.get(record.symbol)
            if last is not None and trade_id is not None and trade_id > last + 1:
                self._trades_missed += trade_id - last - 1
            if trade_id is not None and (last is None or trade_id > last):
                self._last_trade_id[record.symbol] = trade_id
            await _maybe_await(self.on_trade(record))
