"""Celery tasks of sessions_app: thin wrappers that call one service each.

Periodic tasks (beat) are listed in ``CELERY_BEAT_SCHEDULE`` (settings/base.py),
each with an expiry so a backlog never replays stale ticks.
"""

from __future__ import annotations

import gc
import logging

from celery import shared_task
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.db import close_old_connections
from django.utils import timezone

from sessions_app import dispatch
from sessions_app.registry import registry_export, registry_in_sync
from sessions_app.services import sessions_tick as tick
from sessions_app.services import summaries
from sessions_app.services.health import health_broadcast
from sessions_app.steps import is_transient, step_sessions
from telemetry_app.broadcast import flush_pushes

log = logging.getLogger(__name__)


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
    """One step of the running sessions of ``feed`` on ``shard`` (queue ``steps.<shard>``).

    A session's own fault is handled inside the step (the session is faulted, the others
    go on). If the step as a whole fails (database or Redis unavailable, or a bug outside
    any session), the next attempt is queued after a capped exponential backoff
    (``dispatch.step_failed``) and nothing can queue it sooner."""
    try:
        dispatch.step_started(feed, shard)
        result = step_sessions(dispatch.shard_sessions(feed, shard), client=dispatch.redis_client())
    except Exception as exc:  # noqa: BLE001 - every failure backs off; never a hot loop
        close_old_connections()  # a connection that errored is dropped, the retry opens a new one
        try:
            delay = dispatch.step_failed(feed, shard)
        except Exception:  # noqa: BLE001 - Redis itself is down: the beat tick queues it later
            log.error("step of %s shard %d failed (%s) and could not be requeued", feed, shard, exc)
            return {"failed": str(exc)}
        if is_transient(exc):  # the database or Redis went away: expected now and then
            log.warning("step of %s shard %d failed, retrying in %.1f s: %s: %s", feed, shard, delay,
                        type(exc).__name__, exc)
        else:  # a defect outside any one session: keep the traceback
            log.exception("step of %s shard %d failed, retrying in %.1f s", feed, shard, delay)
        return {"failed": str(exc), "retry_in_s": delay}
    dispatch.step_succeeded(feed, shard)
    if result.faulted:
        dispatch.forget_members()  # the faulted sessions leave the shard now, not in a second
    if result.more:
        dispatch.shard_enqueue(feed, shard)  # the read was capped: go on right away
    return {"sessions": len(result.sessions), "rows": result.rows, "events": result.events,
            "fills": result.fills, "faulted": result.faulted, "loaded": result.engines_loaded,
            "ms": result.timings_ms}


@shared_task(ignore_result=True)
def summaries_refresh() -> int:
    """Periodic (beat, every minute): refresh the summary of every live session."""
    return summaries.summaries_refresh_running()


@shared_task(ignore_result=True)
def comparisons_roll() -> int:
    """Periodic (beat, every minute): roll the rolling shadow backtests and store their
    sessions' comparisons afresh."""
    from sessions_app.services.comparisons import comparisons_roll as roll

    return roll()


@shared_task(ignore_result=True)
def shadow_backtest_run(backtest_id: str) -> str:
    """A one-shot shadow backtest queued by the API: run it; its row says how it ended."""
    from ifns_paper.exceptions import ApplicationError
    from sessions_app.services.backtests import shadow_run

    try:
        return shadow_run(backtest_id=backtest_id).status
    except ApplicationError as exc:  # recorded on the row as failed, with this message
        log.warning("shadow backtest %s failed: %s", backtest_id, exc.message)
        return "failed"


@shared_task(ignore_result=True)
def summary_refresh(session_id: str) -> bool:
    """After a session's state change: its summary (final once it ended, then its SEL
    evaluation when it completed)."""
    from sessions_app.services.sel import summary_refresh_evaluated

    return summary_refresh_evaluated(session_id=session_id) is not None


@shared_task(ignore_result=True)
def sessions_tick() -> dict:
    """Periodic (beat, every second): start due sessions, end finished ones, step running ones,
    push every live session's health to the pages."""
    report = tick(now=timezone.now()).as_dict()
    health_broadcast()
    return report


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
