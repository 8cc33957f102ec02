"""Celery tasks of sessions_app: thin wrappers that call one service each."""

from __future__ import annotations

from celery import shared_task

from sessions_app.registry import registry_export, registry_in_sync


@shared_task(ignore_result=True)
def registry_sync() -> bool:
    """Periodic (beat): rewrite the registry file if it drifted from the database.

    Heals an export lost after a commit (disk full, process killed between
    commit and write) or a file edited by hand. Returns True when it rewrote.
    """
    if registry_in_sync():
        return False
    registry_export()
    return True
