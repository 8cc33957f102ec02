"""The change log: who did what, why, before and after (append-only)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models

from sessions_app.models import ChangeLogEntry


def plain(value: Any) -> Any:
    """A JSON-safe, comparison-stable form of a field value."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def changelog_record(
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> ChangeLogEntry:
    """One entry. ``actor`` is a user (``api:alice``, ``admin:bob``, ``cli:carol``) or a
    component (``system:dra``, ``system:steps``, ``scheduler``)."""
    return ChangeLogEntry.objects.create(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        before=plain(before) if before is not None else None,
        after=plain(after) if after is not None else None,
    )
