"""WebSocket consumers: live telemetry for Mirror pages and scripts.

Routes (``routing.py``): ``/ws/paper/overview/`` (every session, and feed health),
``/ws/paper/lanes/<lane>/`` (the lane's sessions), ``/ws/paper/sessions/<id>/`` (one
session). A client signs in with its Django session cookie or, for scripts, ``?token=<API
token>``; its origin must be an allowed host (``asgi.py``). Without a signed-in user with a
role the socket is accepted and closed at once with code 4401 (not signed in) or 4403 (no
role); an unknown lane or session closes with 4404.

Besides telemetry events: ``session_health`` (every second), ``session_summary`` (each new
summary: P&L, fills, as-of; the whole one at ``/api/v1/sessions/<id>/summary/``) and, on the
overview, ``feed_health``.

Delivery is at-most-once (Channels); each telemetry message carries its session's
sequence number, so a client that sees a gap, or reconnects, backfills from
``/api/v1/sessions/<id>/events/?after=<last sequence seen>``. Clients only read: the one
message they may send is ``{"type": "ping"}`` (answered ``{"type": "pong"}``); anything
else, malformed or over ``MAX_CLIENT_MESSAGE`` bytes is answered with an error frame and
the socket stays open.
"""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ifns_paper.roles import Capability, user_can
from sessions_app import selectors
from telemetry_app.broadcast import ALL_SESSIONS_GROUP, FEEDS_GROUP, lane_group, session_group

MAX_CLIENT_MESSAGE = 4096
CLOSE_NOT_SIGNED_IN, CLOSE_NO_ROLE, CLOSE_NOT_FOUND = 4401, 4403, 4404


@database_sync_to_async
def _can_read(user) -> bool:
    return user_can(user, Capability.READ)


@database_sync_to_async
def _exists(*, session_id: str | None, lane: str | None) -> bool:
    if session_id is not None:
        return selectors.session_get(session_id=session_id) is not None
    if lane is not None:
        return lane in selectors.lane_names()
    return True


class PaperEventsConsumer(AsyncJsonWebsocketConsumer):
    """See the module docstring."""

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        session_id, lane = kwargs.get("session_id"), kwargs.get("lane")
        if user is None or not user.is_authenticated:
            await self._refuse_connection(CLOSE_NOT_SIGNED_IN)
            return
        if not await _can_read(user):
            await self._refuse_connection(CLOSE_NO_ROLE)
            return
        if not await _exists(session_id=session_id, lane=lane):
            await self._refuse_connection(CLOSE_NOT_FOUND)
            return
        if session_id is not None:
            self.groups_joined = [session_group(session_id)]
        elif lane is not None:
            self.groups_joined = [lane_group(lane)]
        else:  # the overview: every session, and feed health
            self.groups_joined = [ALL_SESSIONS_GROUP, FEEDS_GROUP]
        for group in self.groups_joined:  # before the accept: nothing pushed after it is missed
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def _refuse_connection(self, code: int) -> None:
        """Accepted, then closed with ``code``: a client sees why (a refused handshake says nothing)."""
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Clients only read: a ping is answered, anything else refused (the socket stays)."""
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE:
            await self._refuse(f"send text frames of at most {MAX_CLIENT_MESSAGE} bytes")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._refuse("not JSON")
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
            return
        await self._refuse('read-only: the one message a client may send is {"type": "ping"}')

    async def _refuse(self, message: str) -> None:
        await self.send_json({"type": "error", "error": {"code": "message_refused", "message": message}})

    async def telemetry_batch(self, message) -> None:
        """One group message carries a step's events; the client gets one frame per event."""
        for event in message["events"]:
            await self.send_json(event)

    async def feed_health(self, message) -> None:
        """A feed health report (``type: feed_health``), as stored."""
        await self.send_json(message["record"])

    async def session_summary(self, message) -> None:
        """A session's new summary headline (``type: session_summary``): P&L, fills, as-of."""
        await self.send_json(message["record"])

    async def session_health(self, message) -> None:
        """Session health records (``type: session_health``), one frame each."""
        for record in message["records"]:
            await self.send_json(record)
