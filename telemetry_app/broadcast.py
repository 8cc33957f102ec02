"""Live pushes of committed telemetry to Channels groups.

Channels delivery is at-most-once: clients use the per-session sequence
numbers to notice a gap and backfill over the REST API. A push that fails
(Redis unreachable) is logged and dropped; the database keeps the event.
"""

from __future__ import annotations

import asyncio
import logging
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


def push_events(records: list[dict]) -> None:
    """Send committed event records (of one or several sessions, each in sequence order) to
    their session, lane and all-sessions groups: one message per group, all sent in one go."""
    if not records:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    by_group: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for group in (session_group(record["session_id"]), lane_group(record["lane"]), ALL_SESSIONS_GROUP):
            by_group[group].append(record)

    async def send_all() -> None:
        await asyncio.gather(*(layer.group_send(group, {"type": "telemetry.batch", "events": events})
                               for group, events in by_group.items()))

    try:
        async_to_sync(send_all)()
    except Exception:  # noqa: BLE001 - the events are committed; a lost push is backfilled
        log.warning("telemetry push failed for %d events of %s", len(records),
                    sorted({r["session_id"] for r in records}), exc_info=True)


def push_feed_health(record: dict) -> None:
    """Send one committed feed health record to the ``paper.feeds`` group."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(FEEDS_GROUP, {"type": "feed.health", "record": record})
    except Exception:  # noqa: BLE001 - the report is committed; the next one comes within seconds
        log.warning("feed health push failed for %s", record["feed"], exc_info=True)
