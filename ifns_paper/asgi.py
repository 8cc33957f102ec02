"""ASGI entry point: HTTP through Django, WebSockets through Channels routing: the origin
must be an allowed host, the user comes from the session cookie or ``?token=``."""

import gc
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

# Everything allocated so far (Django, the apps, numpy, pandas...) leaves the cyclic garbage
# collector's reach: its full collections then scan only what requests allocate, instead of
# pausing a request for a tenth of a second now and then (the session list's p99 in
# bench.api_bench). The Celery workers do the same (sessions_app/tasks.py).
gc.collect()
gc.freeze()
