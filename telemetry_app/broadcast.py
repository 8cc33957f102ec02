"""Live pushes of committed telemetry to Channels groups.

Channels delivery is at-most-once: clients use the per-session sequence
numbers to notice a gap and backfill over the REST API. A push that fails
(Redis unreachable) is logged and dropped; the database keeps the event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

ALL_SESSIONS_GROUP = "paper.sessions"
FEEDS_GROUP = "paper.feeds"  # feed health reports


def session_group(session_id: str) -> str:
    return f"paper.session.{session_id}"


def lane_group(lane: str) -> str:
    return f"paper.lane.{lane}"


class _Pusher:
    """Sends group messages from one event loop thread per process, in submission order.

    One long-lived loop keeps the channel layer's Redis connections (its pools are per
    event loop): a push of a step's events to a dozen groups takes about 1 ms instead of
    about 10 ms through ``async_to_sync``, which starts a new loop, hence new connections,
    every time. ``push_events`` waits for it (bounded by ``PUSH_WAIT_S``): a push left
    running in the background would compete for the GIL with the next step and arrive late.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._order: asyncio.Lock | None = None
        self._pid = 0
        self._pending: set[concurrent.futures.Future] = set()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None or self._pid != os.getpid():  # first use, or a forked child
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="ifns-telemetry-push", daemon=True).start()
                self._loop, self._pid, self._pending = loop, os.getpid(), set()
                self._order = None
            return self._loop

    def submit(self, layer, messages: list[tuple[str, dict]], what: str) -> concurrent.futures.Future:
        future = asyncio.run_coroutine_threadsafe(self._send(layer, messages, what), self._running_loop())
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    async def _send(self, layer, messages: list[tuple[str, dict]], what: str) -> None:
        if self._order is None:
            self._order = asyncio.Lock()  # FIFO: pushes leave in the order they were submitted
        async with self._order:
            try:
                await asyncio.gather(*(layer.group_send(group, message) for group, message in messages))
            except Exception:  # noqa: BLE001 - the events are committed; a lost push is backfilled
                log.warning("telemetry push failed for %s", what, exc_info=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for the pushes submitted so far; False if some did not finish in ``timeout``."""
        pending = list(self._pending)
        done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done


_pusher = _Pusher()
PUSH_WAIT_S = 2.0


def flush_pushes(timeout: float = 5.0) -> bool:
    """Wait for the telemetry pushes submitted by this process (tests, worker shutdown)."""
    return _pusher.flush(timeout)


def push_events(records: list[dict]) -> None:
    """Send committed event records (of one or several sessions, each in sequence order) to
    their session, lane and all-sessions groups: one message per group, sent in the
    background (see ``_Pusher``) in the order of the calls."""
    if not records:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    by_group: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for group in (session_group(record["session_id"]), lane_group(record["lane"]), ALL_SESSIONS_GROUP):
            by_group[group].append(record)
    messages = [(group, {"type": "telemetry.batch", "events": events}) for group, events in by_group.items()]
    sessions = sorted({r["session_id"] for r in records})
    future = _pusher.submit(layer, messages, f"{len(records)} events of {', '.join(sessions)}")
    try:
        future.result(timeout=PUSH_WAIT_S)
    except concurrent.futures.TimeoutError:
        log.warning("telemetry push of %d events still running after %.1f s; not waiting", len(records),
                    PUSH_WAIT_S)


def push_feed_health(record: dict) -> None:
    """Send one committed feed health record to the ``paper.feeds`` group."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(FEEDS_GROUP, {"type": "feed.health", "record": record})
    except Exception:  # noqa: BLE001 - the report is committed; the next one comes within seconds
        log.warning("feed health push failed for %s", record["feed"], exc_info=True)


def push_session_health(records: list[dict]) -> None:
    """Send session health records (``type: session_health``) to the all-sessions group and to
    each session's group: one message per group. Best effort, like every push."""
    if not records:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    messages = [(ALL_SESSIONS_GROUP, {"type": "session.health", "records": records})]
    messages += [(session_group(r["session_id"]), {"type": "session.health", "records": [r]}) for r in records]
    future = _pusher.submit(layer, messages, f"health of {len(records)} sessions")
    try:  # waited for, like events: a short-lived process (a command) must not exit before it leaves
        future.result(timeout=PUSH_WAIT_S)
    except concurrent.futures.TimeoutError:
        log.warning("health push of %d sessions still running after %.1f s; not waiting", len(records), PUSH_WAIT_S)


def push_session_summary(record: dict) -> None:
    """Send a session's new summary headline (``type: session_summary``) to its group, its
    lane's and the all-sessions group. Best effort, like every push."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "session.summary", "record": record}
    groups = (session_group(record["session_id"]), lane_group(record["lane"]), ALL_SESSIONS_GROUP)
    future = _pusher.submit(layer, [(g, message) for g in groups], f"summary of {record['session_id']}")
    try:
        future.result(timeout=PUSH_WAIT_S)
    except concurrent.futures.TimeoutError:
        log.warning("summary push of %s still running after %.1f s; not waiting", record["session_id"], PUSH_WAIT_S)
