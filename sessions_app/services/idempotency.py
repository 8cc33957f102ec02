"""Idempotent writes (``IdempotencyRecord``): a key claimed by a first request, its response
stored, replayed for a repeat of the same request within ``KEEP``; a different request under
the same key is refused."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from ifns_paper.exceptions import ApplicationError, Conflict
from sessions_app.models import IdempotencyRecord

KEEP = timedelta(hours=24)
MAX_KEY = 200


@dataclass(frozen=True)
class Replay:
    status_code: int
    response: dict | list | None


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def idempotency_claim(*, user, key: str, digest: str) -> Replay | None:
    """Claim ``key`` for this request: None when it is new (the caller handles the request,
    then ``idempotency_store``), the stored response when the same request came before.
    ``Conflict`` when the key came with another request, or its first request is still
    being handled; ``ApplicationError`` for a malformed key."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ApplicationError(f"Idempotency-Key: 1 to {MAX_KEY} printable characters",
                               extra={"fields": {"Idempotency-Key": [f"1 to {MAX_KEY} printable characters"]}})
    now = timezone.now()
    IdempotencyRecord.objects.filter(user=user, created_at__lt=now - KEEP).delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(user=user, key=key, request_hash=digest)
        return None
    except IntegrityError:
        pass
    row = IdempotencyRecord.objects.get(user=user, key=key)
    if row.request_hash != digest:
        raise Conflict(f"Idempotency-Key {key!r} was used with a different request (within {KEEP})")
    if row.status_code == 0:
        raise Conflict(f"Idempotency-Key {key!r}: the first request with this key is still being handled")
    return Replay(row.status_code, row.response)


def idempotency_store(*, user, key: str, status_code: int, response) -> None:
    """Keep the response of the request that claimed ``key``; a server error releases the key
    instead (the request may be sent again)."""
    qs = IdempotencyRecord.objects.filter(user=user, key=key, status_code=0)
    if status_code >= 500:
        qs.delete()
        return
    try:
        with transaction.atomic():
            qs.update(status_code=status_code, response=response)
    except (DatabaseError, ValueError):  # a response the database cannot store: the key is released
        qs.delete()
