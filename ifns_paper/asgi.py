"""ASGI entry point: HTTP through Django, WebSockets through Channels routing: the origin
must be an allowed host, the user comes from the session cookie or ``?token=``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ifns_paper.settings.local")

# Django must be set up before the routing (and its consumers/models) imports.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from mirror_app.routing import websocket_urlpatterns  # noqa: E402
from sessions_app.ws_auth import TokenQueryAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenQueryAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
