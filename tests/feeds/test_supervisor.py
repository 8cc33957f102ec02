"""Supervision: a crashing feed is logged, reported and restarted with capped exponential
backoff (injected sleep and clocks, no real waiting); stop ends everything cleanly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ifns_paper.feeds.runners import FeedRunner, FeedStatus, Link, inline_io
from ifns_paper.feeds.supervisor import Backoff, Supervisor


class Flaky(FeedRunner):
    """Crashes ``failures`` times, then publishes (pretend) until stopped."""

    kind = "test"

    def __init__(self, name: str, failures: int, clock: dict) -> None:
        super().__init__(name, bus=None, stale_after_s=1.0, wall_ns=lambda: clock["ns"])
        self.failures, self.runs, self.clock = failures, 0, clock

    async def run(self, stop, io) -> None:
        self.runs += 1
        self.started_ns = self.wall_ns()
        self.set_link(Link.UP, "")
        if self.runs <= self.failures:
            raise ConnectionError(f"boom {self.runs}")
        self.rows_total += 10
        self.last_tick_ns = self.wall_ns()
        await stop.wait()


QUICK = Backoff(base_s=0.5, cap_s=2.0)


def supervise(runners, *, stop_when, backoff=QUICK, monotonic=None):
    reports, delays = [], []
    clock = {"mono": 0.0}

    async def fake_sleep(seconds, stop):
        delays.append(seconds)
        clock["mono"] += seconds
        await asyncio.sleep(0)

    async def main():
        sup = Supervisor(runners, on_health=reports.append, io=inline_io, backoff=backoff, sleep=fake_sleep,
                         monotonic=monotonic or (lambda: clock["mono"]), report_every_s=5.0, check_every_s=0.01,
                         wall_ns=lambda: runners[0].clock["ns"])
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        async with asyncio.timeout(5):
            while not stop_when(sup, reports):
                await asyncio.sleep(0.005)
        stop.set()
        await task
        return sup

    sup = asyncio.run(main())
    return sup, reports, delays


def test_backoff_doubles_up_to_the_cap():
    assert [Backoff(base_s=0.5, cap_s=3.0).delay(i) for i in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        Backoff(base_s=0, cap_s=1)


def test_a_crashing_feed_restarts_with_backoff_and_is_reported(caplog):
    # given a feed that crashes four times before it works
    clock = {"ns": 10**18}
    flaky = Flaky("flaky", failures=4, clock=clock)

    # when supervised until it has published
    with caplog.at_level(logging.WARNING, logger="ifns_paper.feeds.supervisor"):
        sup, reports, delays = supervise([flaky], stop_when=lambda sup, reports: flaky.rows_total > 0)

    # then it was restarted four times after 0.5, 1, 2, 2 s (capped) and works
    assert delays == [0.5, 1.0, 2.0, 2.0] and flaky.runs == 5
    assert sup.states["flaky"].restarts == 4
    assert "feed flaky failed" in caplog.text and "ConnectionError: boom 1" in caplog.text
    # the crash was reported as a disconnection naming the error; the last report says stopped
    down = [r for r in reports if r.status == FeedStatus.DISCONNECTED]
    assert down and "ConnectionError: boom" in down[0].detail and "restart" in down[0].detail
    assert reports[-1].status == FeedStatus.STOPPED and reports[-1].rows_total == 10
    assert reports[-1].restarts == 4 and reports[-1].feed == "flaky" and reports[-1].kind == "test"


def test_a_long_healthy_run_resets_the_backoff():
    clock = {"ns": 10**18}
    mono = {"t": 0.0}

    class LongThenCrash(Flaky):
        async def run(self, stop, io):
            self.runs += 1
            mono["t"] += 100.0 if self.runs == 3 else 0.0  # the third run lasts 100 s
            if self.runs <= 4:
                raise RuntimeError(f"crash {self.runs}")
            await stop.wait()

    runner = LongThenCrash("long", failures=0, clock=clock)
    sup, _, delays = supervise([runner], stop_when=lambda sup, r: runner.runs >= 5,
                               backoff=Backoff(base_s=1.0, cap_s=8.0, reset_after_s=60.0),
                               monotonic=lambda: mono["t"])
    assert delays == [1.0, 2.0, 1.0, 2.0]  # reset after the long third run


def test_feeds_are_independent_and_status_changes_are_reported():
    clock = {"ns": 10**18}
    good = Flaky("good", failures=0, clock=clock)
    bad = Flaky("bad", failures=10**6, clock=clock)  # never works

    sup, reports, delays = supervise([good, bad], stop_when=lambda sup, r: len(delays_seen(sup)) >= 6)

    assert good.runs == 1 and good.rows_total == 10  # the other feed's crashes do not touch it
    by_feed = {}
    for r in reports:
        by_feed.setdefault(r.feed, []).append(r.status)
    assert by_feed["good"][0] == FeedStatus.OK and by_feed["good"][-1] == FeedStatus.STOPPED
    assert FeedStatus.DISCONNECTED in by_feed["bad"] and by_feed["bad"][-1] == FeedStatus.STOPPED
    assert delays[:6] == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def delays_seen(sup) -> list[float]:
    return sup.states["bad"].delays


def test_staleness_counts_a_gap():
    clock = {"ns": 10**18}
    feed = Flaky("quiet", failures=0, clock=clock)

    def advance(sup, reports):
        if feed.rows_total and clock["ns"] < 10**18 + 5 * 10**9:
            clock["ns"] += 5 * 10**9  # five seconds without a row: stale (after 1 s)
        return any(r.status == FeedStatus.STALE for r in reports)

    sup, reports, _ = supervise([feed], stop_when=advance)
    stale = next(r for r in reports if r.status == FeedStatus.STALE)
    assert stale.gaps == 1 and stale.last_tick_age_ms == 5000
