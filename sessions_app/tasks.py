"""Celery tasks of sessions_app: thin wrappers that call one service each.

Periodic tasks (beat) are listed in ``CELERY_BEAT_SCHEDULE`` (settings/base.py),
each with an expiry so a backlog never replays stale ticks.
"""

from __future__ import annotations

import gc

from celery import shared_task
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.utils import timezone

from sessions_app import scheduler
from sessions_app.registry import registry_export, registry_in_sync
from sessions_app.steps import step_sessions
from telemetry_app.broadcast import flush_pushes


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


@shared_task(ignore_result=True, acks_late=True)
def shard_step_task(feed: str, shard: int) -> dict:
    """One step of the running sessions of ``feed`` on ``shard`` (queue ``steps.<shard>``)."""
    scheduler.step_started(feed, shard)
    result = step_sessions(scheduler.shard_sessions(feed, shard), client=scheduler.redis_client())
    if result.more:
        scheduler.shard_enqueue(feed, shard)  # the read was capped: go on right away
    return {"sessions": len(result.sessions), "rows": result.rows, "events": result.events,
            "fills": result.fills, "loaded": result.engines_loaded, "ms": result.timings_ms}


@shared_task(ignore_result=True)
def sessions_tick() -> dict:
    """Periodic (beat, every second): start due sessions, end finished ones, step running ones."""
    return scheduler.sessions_tick(now=timezone.now())


@worker_shutdown.connect
@worker_process_shutdown.connect
def _flush_telemetry_pushes(**_kwargs) -> None:
    """Telemetry pushes leave in the background: let the last ones go before the worker exits."""
    flush_pushes(timeout=2.0)


@worker_ready.connect
@worker_process_init.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """Move everything allocated at start-up (Django, Celery, modules) out of the cyclic
    garbage collector's reach: its full collections then scan only what the steps allocate,
    instead of pausing a step for milliseconds now and then."""
    gc.collect()
    gc.freeze()
