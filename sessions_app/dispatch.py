"""Queueing steps: a session's shard, the Redis flags that coalesce a shard's steps, and the
backoff that holds back a shard whose steps fail.

Sessions step in *shards*: the running sessions of one feed whose id hashes (crc32) to one
of ``IFNS_STEP_SHARDS`` queues ``steps.<n>``, each consumed by one solo worker that keeps
its engines in memory. A Redis flag per (feed, shard) (``SET NX`` with an expiry) makes
whoever sets it the one who enqueues the step; the step clears it when it starts, so data
that arrives during a step queues exactly one more.

When a step fails (a database or Redis outage, or an error outside any one session), the
next attempt waits ``backoff_s(n)`` — 0.5, 1, 2, … capped at 30 s — and the shard's flag is
held for that long, so neither feeds nor beat can queue it sooner: a failing step is never
retried in a hot loop.

This module imports no services and no tasks (the step task is sent by name).
"""

from __future__ import annotations

import time
import zlib
from functools import lru_cache

import redis
from django.conf import settings

from ifns_paper.engine.lifecycle import SessionStatus
from sessions_app.models import PaperSession

STEP_TASK = "sessions_app.tasks.shard_step_task"
SUMMARY_TASK = "sessions_app.tasks.summary_refresh"
FLAG_TTL_S = 5  # a flag outliving a lost task (worker killed) delays that shard's steps by at most this
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MEMBERS_TTL_S = 1.0


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def shard_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % settings.IFNS_STEP_SHARDS


def step_queue(shard: int) -> str:
    return f"steps.{shard}"


def step_queues() -> list[str]:
    return [step_queue(n) for n in range(settings.IFNS_STEP_SHARDS)]


def _flag(feed: str, shard: int) -> str:
    return f"ifns:step:queued:{feed}:{shard}"


def _failures(feed: str, shard: int) -> str:
    return f"ifns:step:failures:{feed}:{shard}"


def _send(feed: str, shard: int, countdown: float | None = None) -> None:
    from ifns_paper.celery import app  # the Celery app, not the tasks: nothing here imports tasks

    app.send_task(STEP_TASK, args=(feed, shard), queue=step_queue(shard), countdown=countdown)


def shard_enqueue(feed: str, shard: int) -> bool:
    """Queue one step of a shard unless one is already queued (or the shard is backing off);
    True when this call queued it."""
    if not redis_client().set(_flag(feed, shard), "1", nx=True, ex=FLAG_TTL_S):
        return False
    _send(feed, shard)
    return True


def step_started(feed: str, shard: int) -> None:
    redis_client().delete(_flag(feed, shard))


def backoff_s(failures: int) -> float:
    """Seconds before attempt ``failures + 1`` of a failing step: 0.5, 1, 2, 4, … up to 30."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(failures - 1, 0))


_failing: set[tuple[str, int]] = set()  # shards whose last step failed in this process


def step_failed(feed: str, shard: int) -> float:
    """Count a failed step and queue the next attempt after the backoff, holding the shard's
    flag until then. Returns the delay in seconds."""
    client = redis_client()
    failures = int(client.incr(_failures(feed, shard)))
    client.expire(_failures(feed, shard), int(BACKOFF_CAP_S * 10))
    delay = backoff_s(failures)
    client.set(_flag(feed, shard), "1", px=int((delay + FLAG_TTL_S) * 1000))
    _send(feed, shard, countdown=delay)
    _failing.add((feed, shard))
    return delay


def step_succeeded(feed: str, shard: int) -> None:
    """Reset the backoff after a step that went through (a no-op unless it was failing)."""
    if (feed, shard) in _failing:
        redis_client().delete(_failures(feed, shard))
        _failing.discard((feed, shard))


_members: dict[tuple[str, int], tuple[float, list[str]]] = {}  # (feed, shard) -> (expires, ids)
_feed_shards: dict[str, tuple[float, list[int]]] = {}  # feed -> (expires, shards with running sessions)


def _running(feed: str) -> list[str]:
    return list(PaperSession.objects.filter(status=SessionStatus.RUNNING, feed=feed)
                .values_list("session_id", flat=True))


def shard_sessions(feed: str, shard: int, *, max_age_s: float = MEMBERS_TTL_S) -> list[str]:
    """The running sessions of ``feed`` that step on ``shard``, looked up at most every
    ``max_age_s`` (a step task runs dozens of times a second; a session started meanwhile
    joins within that time, and one that stopped is skipped by the step itself)."""
    now = time.monotonic()
    cached = _members.get((feed, shard))
    if cached is None or cached[0] <= now:
        cached = _members[(feed, shard)] = (now + max_age_s, [s for s in _running(feed) if shard_of(s) == shard])
    return cached[1]


def forget_members() -> None:
    """Drop the cached shard memberships (a session left its steps: a fault)."""
    _members.clear()
    _feed_shards.clear()


def steps_for_feed(feed: str) -> int:
    """Queue a step for every shard with running sessions on ``feed`` (called by feed processes
    after each publish; the shards are looked up at most once a second)."""
    now = time.monotonic()
    cached = _feed_shards.get(feed)
    if cached is None or cached[0] <= now:
        cached = _feed_shards[feed] = (now + MEMBERS_TTL_S, sorted({shard_of(s) for s in _running(feed)}))
    return sum(shard_enqueue(feed, shard) for shard in cached[1])


def step_enqueue(session_id: str) -> bool:
    """Queue a step of the shard ``session_id`` belongs to (after an operator's action)."""
    feed = PaperSession.objects.filter(session_id=session_id).values_list("feed", flat=True).first()
    return feed is not None and shard_enqueue(feed, shard_of(session_id))


def summary_enqueue(session_id: str) -> None:
    """Queue a refresh of the session's summary (after a state change; final once it ended).
    Best effort: beat refreshes live sessions every minute anyway."""
    from ifns_paper.celery import app

    try:
        app.send_task(SUMMARY_TASK, args=(session_id,))
    except Exception:  # noqa: BLE001 - the broker is down: the state change stands
        import logging

        logging.getLogger(__name__).warning("could not queue the summary of %s", session_id, exc_info=True)


def workers_status(*, timeout: float = 1.0) -> dict:
    """The Celery workers that answer a ping within ``timeout`` seconds, and the tasks waiting
    in each queue (the general one and every step shard's)."""
    from ifns_paper.celery import app

    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # noqa: BLE001 - the broker is down: say so
        return {"workers": [], "queues": {}, "error": f"{type(exc).__name__}: {exc}"}
    client = redis_client()
    queues = ["celery", *(step_queue(i) for i in range(settings.IFNS_STEP_SHARDS))]
    return {"workers": sorted(name for reply in replies for name in reply),
            "queues": {q: client.llen(q) for q in queues}}


SHADOW_TASK = "sessions_app.tasks.shadow_backtest_run"


def shadow_enqueue(backtest_id: str) -> None:
    """Queue a registered one-shot shadow backtest for the general worker."""
    from ifns_paper.celery import app

    app.send_task(SHADOW_TASK, args=(backtest_id,))
