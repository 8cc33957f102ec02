"""Drive a broker and a ledger through recorded data and scripted orders.

The driver keeps the no-look-ahead rule: an order scheduled at time ``T``
is submitted after every data row with ``ts <= T`` has been delivered and
before any row with ``ts > T``. Batches are split at order times only, so
the work per quote stays vectorized.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ifns_paper.engine.determinism import FillsHasher
from ifns_paper.engine.ledger import Ledger
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.orders import BrokerAdapter, BrokerEvent, Fill, Order, OrderStatus

Batch = QuoteBatch | TradeBatch


@dataclass(frozen=True, slots=True)
class ScheduledOrder:
    ts: int
    order: Order


@dataclass(frozen=True, slots=True)
class ScheduledCancel:
    ts: int
    client_order_id: str


@dataclass
class ReplayStats:
    quotes: int = 0
    trades: int = 0
    orders: int = 0
    fills: int = 0
    last_ts: int = 0
    slippage_bps: list[float] = field(default_factory=list)
    #: every fill as a dict, only when the driver was asked to keep them (tests, small runs)
    fill_records: list[dict] = field(default_factory=list)
    hasher: FillsHasher = field(default_factory=FillsHasher)

    def slippage_summary(self) -> dict:
        if not self.slippage_bps:
            return {"count": 0}
        values = np.asarray(self.slippage_bps)
        return {
            "count": int(values.size),
            "mean_bps": float(values.mean()),
            "median_bps": float(np.median(values)),
            "p95_bps": float(np.percentile(values, 95)),
            "max_bps": float(values.max()),
        }

    @property
    def fills_hash(self) -> str:
        return self.hasher.hexdigest()


def interleave(batches: Iterable[Batch]) -> Iterator[Batch]:
    """Cut any set of batches (quotes/trades, any symbols) into runs in global time order.

    At equal timestamps quotes come before trades, then by input order.
    """
    batches = [b for b in batches if len(b)]
    if not batches:
        return
    keys_ts = np.concatenate([b.ts for b in batches])
    kind = np.concatenate([np.full(len(b), 0 if isinstance(b, QuoteBatch) else 1, np.int8) for b in batches])
    source = np.concatenate([np.full(len(b), i, np.int32) for i, b in enumerate(batches)])
    row = np.concatenate([np.arange(len(b)) for b in batches])
    order = np.lexsort((row, source, kind, keys_ts))
    src_sorted = source[order]
    cuts = np.flatnonzero(np.diff(src_sorted)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(order)]))
    for s, e in zip(starts, ends, strict=True):
        b = batches[int(src_sorted[s])]
        first, last = int(row[order[s]]), int(row[order[e - 1]])
        yield b.slice(first, last + 1)


class ReplayDriver:
    """Feeds data and scheduled orders to a broker and books fills in a ledger."""

    def __init__(self, broker: BrokerAdapter, ledger: Ledger, *, check_invariant: bool = True,
                 keep_fills: bool = False, keep_slippage: bool = True, on_event: Callable[[BrokerEvent], None] | None = None,
                 on_send: Callable[[Order, int], None] | None = None) -> None:
        """``on_event`` sees every broker event; ``on_send(order, ts)`` is called as each
        scheduled order is handed to the broker (e.g. DRA's order-rate count)."""
        self.broker = broker
        self.ledger = ledger
        self.check_invariant = check_invariant
        self.keep_fills = keep_fills
        self.keep_slippage = keep_slippage  # off for long-lived engines: the list grows with every fill
        self.on_event = on_event
        self.on_send = on_send
        self.stats = ReplayStats()
        self._actions: list[tuple[int, int, ScheduledOrder | ScheduledCancel]] = []
        self._n = 0

    def __setstate__(self, state: dict) -> None:
        """Drivers pickled by older versions get the attributes added since."""
        self.__dict__.update(state)
        self.__dict__.setdefault("on_send", None)
        self.__dict__.setdefault("keep_slippage", True)

    def schedule(self, items: Iterable[ScheduledOrder | ScheduledCancel]) -> None:
        for item in items:
            heapq.heappush(self._actions, (item.ts, self._n, item))
            self._n += 1

    def scheduled_orders(self) -> list[ScheduledOrder]:
        """Orders scheduled and not sent yet (e.g. a TWAP's later slices), in send order."""
        return [item for _, _, item in sorted(self._actions) if isinstance(item, ScheduledOrder)]

    def pending(self) -> bool:
        """Whether scheduled actions are waiting."""
        return bool(self._actions)

    def drop_scheduled(self) -> list[ScheduledOrder | ScheduledCancel]:
        """Forget every scheduled action not yet run (e.g. TWAP slices after a halt)."""
        dropped = [item for _, _, item in sorted(self._actions)]
        self._actions.clear()
        return dropped

    def feed(self, batch: Batch) -> None:
        """Deliver one batch, submitting scheduled actions at their times inside it."""
        ts = batch.ts
        n = len(batch)
        if n == 0:
            return
        last = int(ts[-1])
        start = 0
        while True:
            next_at = self._actions[0][0] if self._actions else None
            if next_at is None or next_at >= last:
                if start < n:
                    self._deliver(batch if start == 0 else batch.slice(start, n))
                self.run_actions(until=last, inclusive=True)
                break
            cut = int(ts.searchsorted(next_at, "right"))  # rows at or before the action
            if cut > start:
                self._deliver(batch.slice(start, cut))
                start = cut
            self.run_actions(until=int(ts[cut]), inclusive=False)  # nothing else happens before row `cut`
        self.stats.last_ts = max(self.stats.last_ts, last)

    def advance_to(self, ts: int) -> None:
        """No data older than ``ts`` will come (a clock/watermark): send the actions due by
        ``ts`` at their own times, the broker's time moving up to each first, then move the
        broker to ``ts``. An action is never left behind the broker's time (look-ahead)."""
        while self._actions and self._actions[0][0] <= ts:
            at = self._actions[0][0]
            self.handle(self.broker.advance_to(at))
            self.run_actions(until=at, inclusive=True)
        self.handle(self.broker.advance_to(ts))
        self.stats.last_ts = max(self.stats.last_ts, ts)

    def finish(self, end_ts: int | None = None, *, cancel_working: bool = True) -> None:
        """Run the remaining scheduled actions, then close the replay at ``end_ts`` (by
        default the last data or action, whichever is later: an order sent after the last
        data row still goes out, and meets the data there is — a stale quote, or none)."""
        end = self.stats.last_ts if end_ts is None else end_ts
        if end_ts is None and self._actions:
            end = max(end, max(at for at, *_ in self._actions))
        self.advance_to(end)
        if cancel_working:
            if any(v.status is OrderStatus.NEW for v in self.broker.working_orders()):
                # orders still on their way reach the venue before the close
                routes = getattr(self.broker, "routes", {}).values()
                end += max((r.insert_latency_ns for r in routes), default=0)
                self.handle(self.broker.advance_to(end))
            working = [v.order.client_order_id for v in self.broker.working_orders()]
            for coid in working:
                self.handle(self.broker.cancel(coid, end))
            self.handle(self.broker.advance_to(end + 3_600 * 1_000_000_000))

    # --- internals -------------------------------------------------------------------

    def run_actions(self, *, until: int, inclusive: bool) -> None:
        while self._actions and (self._actions[0][0] <= until if inclusive else self._actions[0][0] < until):
            _, _, action = heapq.heappop(self._actions)
            if isinstance(action, ScheduledOrder):
                self.stats.orders += 1
                if self.on_send is not None:
                    self.on_send(action.order, action.ts)
                self.handle(self.broker.submit(action.order, action.ts))
            else:
                self.handle(self.broker.cancel(action.client_order_id, action.ts))
            self.stats.last_ts = max(self.stats.last_ts, action.ts)

    def _deliver(self, batch: Batch) -> None:
        if isinstance(batch, QuoteBatch):
            self.stats.quotes += len(batch)
            events = self.broker.on_quotes(batch)
            self.handle(events)
            i = len(batch) - 1
            self.ledger.mark(batch.symbol, (float(batch.bid[i]) + float(batch.ask[i])) / 2.0)
        else:
            self.stats.trades += len(batch)
            self.handle(self.broker.on_trades(batch))

    def handle(self, events: list[BrokerEvent]) -> None:
        for event in events:
            if isinstance(event, Fill):
                self.ledger.apply_fill(event)
                self.stats.fills += 1
                if self.keep_slippage and not math.isnan(event.slippage_bps):
                    self.stats.slippage_bps.append(event.slippage_bps)
                self.stats.hasher.add(event.values())
                if self.keep_fills:
                    self.stats.fill_records.append(event.as_dict())
                if self.check_invariant:
                    self.ledger.check_invariant()
            if self.on_event is not None:
                self.on_event(event)
