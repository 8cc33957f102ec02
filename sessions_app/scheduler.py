"""Moving sessions in time: start at their start time, end at their end
condition, and keep the running ones stepping.

Steps run per *shard*: the running sessions of one feed whose id hashes
(crc32) to one of ``IFNS_STEP_SHARDS`` queues ``steps.<n>``. One step task
advances all of them (one stream read, one transaction, see ``steps``), and
each queue is consumed by one solo worker that keeps its engines in memory.
Steps are coalesced with a Redis flag per (feed, shard) (``SET NX`` with an
expiry): whoever sets it enqueues the step; the step clears it when it
starts, so data that arrives during a step queues exactly one more.
"""

from __future__ import annotations

import logging
import time
import zlib
from datetime import datetime, timedelta
from functools import lru_cache

import redis
from django.conf import settings

from ifns_paper.engine.controls import SwitchState
from ifns_paper.exceptions import ApplicationError
from sessions_app.models import KillSwitch, PaperSession
from sessions_app.services import session_transition

log = logging.getLogger(__name__)
FLAG_TTL_S = 5  # a flag outliving a lost task (worker killed) delays that shard's steps by at most this
FEED_SHARDS_TTL_S = 1.0
_feed_shards: dict[str, tuple[float, list[int]]] = {}  # feed -> (expires, shards with running sessions)


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


def shard_enqueue(feed: str, shard: int) -> bool:
    """Queue one step of a shard unless one is already queued; True when this call queued it."""
    from sessions_app.tasks import shard_step_task

    if not redis_client().set(_flag(feed, shard), "1", nx=True, ex=FLAG_TTL_S):
        return False
    shard_step_task.apply_async((feed, shard), queue=step_queue(shard))
    return True


def step_started(feed: str, shard: int) -> None:
    redis_client().delete(_flag(feed, shard))


_shard_members: dict[tuple[str, int], tuple[float, list[str]]] = {}  # (feed, shard) -> (expires, ids)


def shard_sessions(feed: str, shard: int, *, max_age_s: float = FEED_SHARDS_TTL_S) -> list[str]:
    """The running sessions of ``feed`` that step on ``shard``, looked up at most every
    ``max_age_s`` (a step task runs dozens of times a second; a session started meanwhile
    joins within that time, and one that stopped is skipped by the step itself)."""
    now = time.monotonic()
    cached = _shard_members.get((feed, shard))
    if cached is None or cached[0] <= now:
        ids = PaperSession.objects.filter(status="running", feed=feed).values_list("session_id", flat=True)
        cached = _shard_members[(feed, shard)] = (now + max_age_s, [sid for sid in ids if shard_of(sid) == shard])
    return cached[1]


def step_enqueue(session_id: str) -> bool:
    """Queue a step of the shard ``session_id`` belongs to (after an operator's action)."""
    feed = PaperSession.objects.filter(session_id=session_id).values_list("feed", flat=True).first()
    return feed is not None and shard_enqueue(feed, shard_of(session_id))


def steps_for_feed(feed: str) -> int:
    """Queue a step for every shard with running sessions on ``feed`` (called by feed processes
    after each publish; the shards are looked up at most once a second)."""
    now = time.monotonic()
    cached = _feed_shards.get(feed)
    if cached is None or cached[0] <= now:
        ids = PaperSession.objects.filter(status="running", feed=feed).values_list("session_id", flat=True)
        cached = _feed_shards[feed] = (now + FEED_SHARDS_TTL_S, sorted({shard_of(sid) for sid in ids}))
    return sum(shard_enqueue(feed, shard) for shard in cached[1])


def end_reason(session: PaperSession, now: datetime) -> str | None:
    """Why a running session should complete now (duration or target reached), or None."""
    ends_at = session.started_at + timedelta(seconds=session.end_duration_s) if (
        session.end_duration_s and session.started_at) else None
    if ends_at is not None and ends_at <= now:
        return "duration reached"
    target = session.end_target or {}
    if target.get("trades") is not None and session.fills.count() >= int(target["trades"]):
        return f"target reached: {target['trades']} trades"
    checkpoint = getattr(session, "checkpoint", None)
    if target.get("pnl") is not None and checkpoint is not None:
        start = float(session.lane.capital_amount) if session.initial_portfolio.get("kind") != "from_backtest" \
            else float(session.initial_portfolio["cash"]) + sum(
                float(p["quantity"]) * float(p["avg_price"]) for p in session.initial_portfolio["positions"])
        if checkpoint.equity - start >= float(target["pnl"]):
            return f"target reached: P&L {checkpoint.equity - start:.2f} >= {target['pnl']}"
    return None


def halted_switches() -> dict[str, str]:
    """The kill switches that are halted now: scope -> reason."""
    return dict(KillSwitch.objects.filter(state=SwitchState.HALTED.value).values_list("scope", "reason"))


def abort_reason(session: PaperSession, halted: dict[str, str]) -> str | None:
    """Why a running session should abort now, or None.

    Only sessions whose definition sets ``end.abort_on_kill_switch`` abort, when
    their effective switch (global, their lane's or their own) is halted;
    ``halted`` is :func:`halted_switches`. Others stay running: the engine
    already denies them any new order while halted.
    """
    if not session.abort_on_kill_switch:
        return None
    for scope in ("global", f"lane:{session.lane.name}", f"session:{session.session_id}"):
        if scope in halted:
            return f"kill switch {scope} halted" + (f": {halted[scope]}" if halted[scope] else "")
    return None


def sessions_tick(*, now: datetime) -> dict:
    started, completed, aborted, stepped = [], [], [], 0
    for session in PaperSession.objects.filter(status="scheduled", start_at__lte=now):
        try:
            session_transition(session_id=session.session_id, action="start", actor="scheduler",
                               reason="start time reached", now=now)
            started.append(session.session_id)
        except ApplicationError as exc:  # someone else moved it meanwhile
            log.info("scheduler could not start %s: %s", session.session_id, exc.message)
    halted = halted_switches()
    for session in PaperSession.objects.filter(status="running").select_related("checkpoint", "lane"):
        # A halt wins over a natural end reached in the same tick: the session did not end cleanly.
        action, why = "abort", abort_reason(session, halted)
        if why is None:
            action, why = "stop", end_reason(session, now)
        if why is None:
            continue
        try:
            session_transition(session_id=session.session_id, action=action, actor="scheduler", reason=why,
                               now=now)
            (aborted if action == "abort" else completed).append(session.session_id)
        except ApplicationError as exc:
            log.info("scheduler could not %s %s: %s", action, session.session_id, exc.message)
    shards = {(feed, shard_of(sid)) for sid, feed in
              PaperSession.objects.filter(status="running").values_list("session_id", "feed")}
    for feed, shard in sorted(shards):  # a safety net: feeds queue steps as they publish
        stepped += shard_enqueue(feed, shard)
    return {"started": started, "completed": completed, "aborted": aborted, "steps_queued": stepped}
