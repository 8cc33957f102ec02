"""WebSocket consumers: live telemetry for Mirror pages.

Delivery is at-most-once (Channels); each message carries the session's
sequence number so a page can backfill a gap from the REST API.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from telemetry_app.broadcast import ALL_SESSIONS_GROUP, FEEDS_GROUP, session_group


class PaperEventsConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/paper/`` (all sessions) or ``/ws/paper/sessions/<id>/`` (one)."""

    async def connect(self) -> None:
        session_id = self.scope["url_route"]["kwargs"].get("session_id")
        self.group = session_group(session_id) if session_id else ALL_SESSIONS_GROUP
        # the overview (all sessions) also shows feed health
        self.groups_joined = [self.group] if session_id else [self.group, FEEDS_GROUP]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def telemetry_batch(self, message) -> None:
        """One group message carries a step's events; the browser gets one frame per event."""
        for event in message["events"]:
            await self.send_json(event)

    async def feed_health(self, message) -> None:
        """A feed health report (``type: feed_health``), as stored."""
        await self.send_json(message["record"])

    async def session_health(self, message) -> None:
        """Session health records (``type: session_health``), one frame each."""
        for record in message["records"]:
            await self.send_json(record)
