"""Token authentication for the API: ``Authorization: Token <key>`` (or ``Bearer <key>``),
checked by ``services.tokens``. Listed first in DRF's authentication classes so that an
anonymous request to a protected endpoint gets 401 with ``WWW-Authenticate: Token``."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from sessions_app.services.tokens import token_user

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization: expected 'Token <key>'")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Authorization: the key is not ASCII") from None
        user = token_user(key)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        return user, key

    def authenticate_header(self, request) -> str:
        return 'Token realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token (drf-spectacular finds it by its target class)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>`; a key comes from `manage.py paper_token create USER`"}
