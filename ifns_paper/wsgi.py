"""WSGI entry point (HTTP only; the ASGI app also serves WebSockets)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ifns_paper.settings.local")

application = get_wsgi_application()
