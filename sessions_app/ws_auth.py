"""WebSocket sign-in for scripts: ``?token=<API token>`` in the URL (browsers use their
session cookie through Channels' ``AuthMiddlewareStack``, which runs first)."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from sessions_app.services.tokens import token_user


class TokenQueryAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            key = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
            if key:
                found = await database_sync_to_async(token_user)(key)
                if found is not None:
                    scope = dict(scope, user=found)
        return await super().__call__(scope, receive, send)
