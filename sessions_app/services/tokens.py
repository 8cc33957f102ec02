"""API tokens (``ApiToken``): created with a random key shown once, stored as its SHA-256
digest, revoked (never deleted), checked on every token-authenticated request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from sessions_app.models import ApiToken
from sessions_app.services.changelog import changelog_record

KEY_BYTES = 32
PREFIX_LENGTH = 8
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, username: str, name: str, actor: str) -> tuple[ApiToken, str]:
    """A new token for ``username``; returns it with its key (the only time the key exists
    outside the caller: it is not stored)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    if not user.is_active:
        raise Conflict(f"user {username!r} is inactive")
    name = name.strip()
    if not name or len(name) > 100:
        raise ApplicationError("name: give what the token is for, 1 to 100 characters", extra={
            "fields": {"name": ["1 to 100 characters"]}})
    key = secrets.token_urlsafe(KEY_BYTES)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=key[:PREFIX_LENGTH], digest=_digest(key),
                                        created_by=actor)
        changelog_record(actor=actor, action="api_token_create", target_type="api_token", target_id=str(token.pk),
                         reason=name, after={"user": username, "prefix": token.prefix})
    return token, key


def token_revoke(*, token_id: int, actor: str, reason: str = "") -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").filter(pk=token_id).first()
        if token is None:
            raise NotFound(f"no API token #{token_id}")
        if token.revoked_at is not None:
            raise Conflict(f"API token #{token_id} was revoked already ({token.revoked_at:%Y-%m-%d %H:%M} UTC)")
        token.revoked_at, token.revoked_by = timezone.now(), actor
        token.save(update_fields=["revoked_at", "revoked_by"])
        changelog_record(actor=actor, action="api_token_revoke", target_type="api_token", target_id=str(token.pk),
                         reason=reason, after={"user": token.user.username, "prefix": token.prefix})
    return token


def token_user(key: str):
    """The active user of an active token with this key, or None."""
    token = ApiToken.objects.select_related("user").filter(digest=_digest(key), revoked_at__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
