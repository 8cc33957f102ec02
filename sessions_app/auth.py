"""Token authentication for the API: ``Authorization: Token <key>`` (or ``Bearer <key>``),
checked by ``services.tokens``. Listed first in DRF's authentication classes so that an
anonymous request to a protected endpoint gets 401 with ``WWW-Authenticate: Token``."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from sessions_app.services.tokens import token_user

KEYWORDS = (b"token", b"bearer")


def _failures_key(request) -> str:
    return f"ifns:token-failures:{request.META.get('REMOTE_ADDR', '?')}"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Also throttles guessing: after ``IFNS_TOKEN_FAILURES_PER_MIN`` failed token sign-ins
    from one address within a minute, its token requests get 429 until the minute is over."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        key = _failures_key(request)
        if (cache.get(key) or 0) >= settings.IFNS_TOKEN_FAILURES_PER_MIN:
            raise exceptions.Throttled(wait=60, detail="too many failed token sign-ins from this address")
        user = None
        if len(parts) == 2:
            try:
                user = token_user(parts[1].decode("ascii"))
            except UnicodeDecodeError:
                user = None
        if user is None:
            if not cache.add(key, 1, timeout=60):
                try:
                    cache.incr(key)
                except ValueError:  # expired in between
                    cache.add(key, 1, timeout=60)
            raise exceptions.AuthenticationFailed("invalid or revoked API token (Authorization: Token <key>)")
        return user, parts[1]

    def authenticate_header(self, request) -> str:
        return 'Token realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token (drf-spectacular finds it by its target class)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>`; a key comes from `manage.py paper_token create USER`"}
