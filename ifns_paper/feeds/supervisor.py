"""Supervision of the feeds of one process: restart with capped backoff, health reports.

Every runner (``ifns_paper.feeds.runners``) runs in its own asyncio task:

1. ``runner.run(stop, io)``; when it raises (or returns while not stopped and
   not finished) the error is logged, the feed is reported ``disconnected``
   with the error, and after ``Backoff.delay(attempt)`` seconds -
   ``min(cap_s, base_s * 2 ** attempt)`` - it is started again. A run that
   lasted ``reset_after_s`` or more resets the attempt count.
2. A reporter checks every feed's status every ``check_every_s`` and calls
   ``on_health(snapshot)`` (a blocking call, through ``io``) on every status
   change and at least every ``report_every_s``; a ``stopped`` snapshot is
   the last one of each feed. ``gaps`` counts the times a feed went from ok
   to stale or disconnected.
3. ``stop`` (SIGINT/SIGTERM in ``run_feeds``) ends the runners at their next
   await; backoff waits are interrupted too.

``sleep(seconds, stop)``, ``monotonic`` and ``wall_ns`` are injectable so tests
control time. Plain Python, no Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ifns_paper.feeds.runners import FeedRunner, FeedStatus, Io, Link, wait_or_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delays [s] between restarts: base_s, 2*base_s, 4*base_s, ... capped at cap_s."""

    base_s: float = 0.5
    cap_s: float = 30.0
    reset_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** min(attempt, 62))


@dataclass(frozen=True)
class HealthSnapshot:
    """One feed's health at ``event_time_ns`` (wall clock, ns since the epoch)."""

    feed: str
    kind: str
    status: FeedStatus
    event_time_ns: int
    last_tick_age_ms: int | None
    rows_total: int
    gaps: int
    glitches: dict[str, int]
    restarts: int
    detail: str


@dataclass
class _FeedState:
    runner: FeedRunner
    restarts: int = 0
    gaps: int = 0
    status: FeedStatus | None = None
    reported_at: float | None = None  # monotonic
    delays: list[float] = field(default_factory=list)  # backoff delays taken (tests, logs)


async def _default_sleep(seconds: float, stop: asyncio.Event) -> None:
    await wait_or_stop(stop, seconds)


class Supervisor:
    def __init__(self, runners: Sequence[FeedRunner], *, on_health: Callable[[HealthSnapshot], object],
                 io: Io, backoff: Backoff = Backoff(), report_every_s: float = 5.0,
                 check_every_s: float = 0.5,
                 sleep: Callable[[float, asyncio.Event], Awaitable[None]] = _default_sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        names = [r.name for r in runners]
        if len(set(names)) != len(names):
            raise ValueError(f"feed names must be unique: {names}")
        self.states = {r.name: _FeedState(r) for r in runners}
        self.on_health, self.io, self.backoff = on_health, io, backoff
        self.report_every_s, self.check_every_s = report_every_s, check_every_s
        self.sleep, self.monotonic, self.wall_ns = sleep, monotonic, wall_ns
        self._changed = asyncio.Event()
        for r in runners:
            r.on_change = self._changed.set

    async def run(self, stop: asyncio.Event) -> None:
        """Run every feed until ``stop`` is set; the last report of each says ``stopped``."""
        done = asyncio.Event()
        reporter = asyncio.create_task(self._report_loop(done))
        try:
            await asyncio.gather(*(self._supervise(s, stop) for s in self.states.values()))
        finally:
            done.set()
            self._changed.set()
            await reporter
            for state in self.states.values():
                state.runner.set_link(Link.STOPPED)
                if state.status != FeedStatus.STOPPED:
                    await self._report(state)

    async def _supervise(self, state: _FeedState, stop: asyncio.Event) -> None:
        runner = state.runner
        attempt = 0
        while not stop.is_set():
            started = self.monotonic()
            try:
                await runner.run(stop, self.io)
                if stop.is_set() or runner.finished:
                    break
                error = "the feed returned without being stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure restarts the feed
                error = f"{type(exc).__name__}: {exc}"
                log.exception("feed %s failed", runner.name)
            if self.monotonic() - started >= self.backoff.reset_after_s:
                attempt = 0
            delay = self.backoff.delay(attempt)
            attempt += 1
            state.restarts += 1
            state.delays.append(delay)
            runner.set_link(Link.DOWN, f"{error} (restart {state.restarts} in {delay:g} s)")
            log.warning("feed %s: %s; restarting in %g s", runner.name, error, delay)
            await self.sleep(delay, stop)
        if not runner.finished:
            runner.set_link(Link.STOPPED, "stopped")
        # a finished replay stays up in the process, reported stopped, until the process stops

    def snapshot(self, state: _FeedState) -> HealthSnapshot:
        r = state.runner
        now = self.wall_ns()
        return HealthSnapshot(feed=r.name, kind=r.kind, status=r.status(now), event_time_ns=now,
                              last_tick_age_ms=r.last_tick_age_ms(now), rows_total=r.rows_total,
                              gaps=state.gaps, glitches=dict(r.glitches), restarts=state.restarts,
                              detail=r.detail[:500])

    async def _report(self, state: _FeedState) -> None:
        snap = self.snapshot(state)
        if state.status == FeedStatus.OK and snap.status in (FeedStatus.STALE, FeedStatus.DISCONNECTED):
            state.gaps += 1
            snap = HealthSnapshot(**{**snap.__dict__, "gaps": state.gaps})
        state.status = snap.status
        state.reported_at = self.monotonic()
        try:
            await self.io(self.on_health, snap)
        except Exception:  # noqa: BLE001 - losing a health report must not stop the feeds
            log.warning("feed health report failed for %s", snap.feed, exc_info=True)

    async def _report_loop(self, done: asyncio.Event) -> None:
        while not done.is_set():
            self._changed.clear()
            now_ns, now = self.wall_ns(), self.monotonic()
            for state in self.states.values():
                if state.runner.link == Link.STARTING and state.reported_at is None:
                    continue  # not started yet: the first report says how the start went
                status = state.runner.status(now_ns)
                due = state.reported_at is None or now - state.reported_at >= self.report_every_s
                if status != state.status or due:
                    await self._report(state)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.check_every_s)


def run_feeds(supervisor_factory: Callable[[Io], Supervisor], *, duration_s: float = 0.0,
              install_signals: bool = True) -> None:
    """Run a supervisor on a fresh event loop until SIGINT/SIGTERM (or ``duration_s``).

    Blocking calls go to one worker thread, so Redis and database work stays off the
    loop and in order."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-io")

    async def io(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        if duration_s:
            loop.call_later(duration_s, stop.set)
        await supervisor_factory(io).run(stop)

    try:
        asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
