"""Reads for lanes, sessions, kill switches and session health."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet

from ifns_paper import marketbus
from ifns_paper.engine.controls import SEVERITY, SwitchState
from ifns_paper.engine.lifecycle import TERMINAL, SessionStatus
from sessions_app.models import (
    Backtest,
    ChangeLogEntry,
    KillSwitch,
    Lane,
    PaperSession,
    RegistryEntry,
    SessionCheckpoint,
    SessionCooldown,
    SessionModel,
)

log = logging.getLogger(__name__)
HEALTH_KEY = "ifns:step:health"  # written by the steps (``steps.HEALTH_KEY``)


def session_list(*, lane: str | None = None, status: str | None = None, owner: str | None = None,
                 tag: str | None = None, strategy: str | None = None, text: str | None = None,
                 ) -> QuerySet[PaperSession]:
    """Sessions, filtered: ``strategy`` is ``registry_id`` or ``registry_id@version``; ``text``
    is looked for (case-insensitive) in the id, the owner and the objective. Callers check
    that a lane or strategy they pass exists (``lane_names``, ``strategy_exists``)."""
    qs = PaperSession.objects.select_related("lane", "strategy", "execution_policy").prefetch_related(
        "model_links__entry"
    )
    if lane:
        qs = qs.filter(lane__name=lane)
    if status:
        qs = qs.filter(status=status)
    if owner:
        qs = qs.filter(owner=owner)
    if tag:
        if connection.features.supports_json_field_contains:
            qs = qs.filter(tags__contains=[tag])
        else:  # SQLite: the list's JSON text holds the tag as a quoted string (tags are identifiers)
            qs = qs.filter(tags__regex=rf'"{re.escape(tag)}"')
    if strategy:
        registry_id, _, version = strategy.partition("@")
        qs = qs.filter(strategy__registry_id=registry_id)
        if version:
            qs = qs.filter(strategy__version=version)
    if text:
        qs = qs.filter(Q(session_id__icontains=text) | Q(owner__icontains=text) | Q(objective__icontains=text))
    return qs.order_by("lane__name", "session_id")


def session_list_rows(**filters) -> QuerySet[PaperSession]:
    """``session_list`` without its models prefetched: for lists rendered with
    ``session_models`` (a value query instead of a model instance per link)."""
    return session_list(**filters).prefetch_related(None)


def session_models(session_pks: list[int]) -> dict[int, list[dict]]:
    """Each session's models and weights (the MSI blend), in the links' order."""
    out: dict[int, list[dict]] = {pk: [] for pk in session_pks}
    rows = (SessionModel.objects.filter(session_id__in=session_pks)
            .values_list("session_id", "entry__registry_id", "entry__version", "weight"))
    for session_pk, registry_id, version, weight in rows:
        out[session_pk].append({"model": f"{registry_id}@{version}", "weight": weight})
    return out


def lane_names() -> list[str]:
    return list(Lane.objects.order_by("name").values_list("name", flat=True))


def strategy_exists(strategy: str) -> bool:
    registry_id, _, version = strategy.partition("@")
    qs = RegistryEntry.objects.filter(registry_id=registry_id)
    return (qs.filter(version=version) if version else qs).exists()


def backtests_completed(limit: int = 200) -> QuerySet[Backtest]:
    """Completed backtests, newest first: what a session can be cloned from."""
    return (Backtest.objects.filter(status=Backtest.Status.COMPLETED).select_related("session", "strategy")
            .order_by("-created_at", "-id")[:limit])


def session_book(*, session_id: str) -> tuple[int, float] | None:
    """``(data time ns, equity)`` of the session's last recorded step (its checkpoint)."""
    return SessionCheckpoint.objects.filter(session__session_id=session_id).values_list("data_ts", "equity").first()


def session_get(*, session_id: str) -> PaperSession | None:
    return session_list().filter(session_id=session_id).first()


def lanes_overview() -> QuerySet[Lane]:
    """Lanes with their envelope, policy, sessions and per-status counts (a fixed number of queries)."""
    return (
        Lane.objects.select_related("risk_envelope", "policy")
        .prefetch_related(Prefetch("sessions", queryset=session_list()))
        .annotate(
            n_sessions=Count("sessions"),
            n_running=Count("sessions", filter=Q(sessions__status=SessionStatus.RUNNING)),
            n_scheduled=Count("sessions", filter=Q(sessions__status=SessionStatus.SCHEDULED)),
            n_faulted=Count("sessions", filter=Q(sessions__status=SessionStatus.FAULTED)),
        )
        .order_by("name")
    )


def changelog_entries(*, target_type: str | None = None, target_id: str | None = None, actor: str | None = None,
                      action: str | None = None) -> QuerySet[ChangeLogEntry]:
    """Change-log entries matching every filter given (all when none)."""
    given = {"target_type": target_type, "target_id": target_id, "actor": actor, "action": action}
    return ChangeLogEntry.objects.filter(**{k: v for k, v in given.items() if v is not None})


def changelog_actions() -> list[str]:
    """The actions the change log holds, for a filter's choices."""
    return list(ChangeLogEntry.objects.order_by("action").values_list("action", flat=True).distinct())


def changelog_for(*, target_type: str, target_id: str, limit: int = 50) -> QuerySet[ChangeLogEntry]:
    return ChangeLogEntry.objects.filter(target_type=target_type, target_id=target_id)[:limit]


def kill_switch_list() -> QuerySet[KillSwitch]:
    return KillSwitch.objects.order_by("scope")


# --- kill switches -----------------------------------------------------------------------


@dataclass(frozen=True)
class SwitchView:
    scope: str
    state: str  # this scope's own switch ("active" when never set)
    effective: str  # the strictest of global, the lane's and (for a session) its own
    effective_scope: str  # where the effective state comes from
    actor: str
    reason: str
    updated_at: datetime | None

    def as_dict(self) -> dict:
        return asdict(self)


def _strictest(candidates: list[tuple[str, str]]) -> tuple[str, str]:
    """(state, scope) of the most severe switch; the first listed wins a tie."""
    best = candidates[0]
    for state, scope in candidates[1:]:
        if SEVERITY[SwitchState(state)] > SEVERITY[SwitchState(best[0])]:
            best = (state, scope)
    return best


def kill_switches_in_force() -> list[KillSwitch]:
    """The switches set to anything but ``active`` (global first, then lanes, then sessions
    that are not finished), for the pages' header: one query, two when sessions have one."""
    rows = list(KillSwitch.objects.exclude(state=SwitchState.ACTIVE.value))
    named = [k.scope.removeprefix("session:") for k in rows if k.scope.startswith("session:")]
    finished = set(PaperSession.objects.filter(session_id__in=named, status__in=TERMINAL)
                   .values_list("session_id", flat=True)) if named else set()
    rows = [k for k in rows if k.scope.removeprefix("session:") not in finished]
    order = {"global": 0, "lane": 1, "session": 2}
    return sorted(rows, key=lambda k: (order.get(k.scope.partition(":")[0], 3), k.scope))


def kill_switch_states() -> list[SwitchView]:
    """Every scope and its effective state: global, each lane, each session that is not
    finished. Scopes never set are ``active`` (two queries)."""
    rows = {k.scope: k for k in KillSwitch.objects.all()}
    lanes = list(Lane.objects.order_by("name").values_list("name", flat=True))
    sessions = list(PaperSession.objects.exclude(status__in=TERMINAL).order_by("session_id")
                    .values_list("session_id", "lane__name"))
    out = []

    def own(scope: str) -> str:
        row = rows.get(scope)
        return row.state if row else SwitchState.ACTIVE.value

    def view(scope: str, chain: list[str]) -> SwitchView:
        state, where = _strictest([(own(s), s) for s in chain])
        row = rows.get(scope)
        return SwitchView(scope, own(scope), state, where, row.actor if row else "", row.reason if row else "",
                          row.updated_at if row else None)

    out.append(view("global", ["global"]))
    out += [view(f"lane:{lane}", ["global", f"lane:{lane}"]) for lane in lanes]
    out += [view(f"session:{sid}", ["global", f"lane:{lane}", f"session:{sid}"]) for sid, lane in sessions]
    for scope in sorted(set(rows) - {v.scope for v in out}):  # finished sessions' switches still set
        out.append(view(scope, [scope]))
    return out


# --- session health ------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def session_health(sessions: list[PaperSession], *, client: redis.Redis | None = None) -> dict[str, dict]:
    """Health of each session, JSON-safe: where its steps stand (step lag = the feed's newest
    entry time − the newest market-data time the session processed, ms; last step; steps in
    the last minute), its last fault, the kill switch in force (strictest of global, lane,
    own) and its cooldown. Two queries and two Redis round trips for any number of sessions;
    the step figures are None when Redis cannot be read or the session never stepped."""
    if not sessions:
        return {}
    switches = {k.scope: k for k in KillSwitch.objects.all()}
    cooldowns = {c.session_id: c for c in SessionCooldown.objects.filter(session__in=[s.pk for s in sessions])}
    steps: dict[str, dict] = {}
    heads: dict[str, int | None] = {}
    if client is not None:
        try:
            values = client.hmget(HEALTH_KEY, [s.session_id for s in sessions])
            steps = {s.session_id: json.loads(v) for s, v in zip(sessions, values, strict=True) if v}
            heads = marketbus.head_ts(client, sorted({s.feed for s in sessions}))
        except redis.RedisError:
            log.warning("session health: Redis unavailable, step figures left out", exc_info=True)
    # A session out of its steps stands where its checkpoint is: the steps' last figures may
    # include quiet steps after it that were never recorded (and are re-read on resume).
    idle = {s.pk: s.session_id for s in sessions if s.status != SessionStatus.RUNNING and s.session_id in steps}
    for session_pk, data_ts, equity, pnl, fills in SessionCheckpoint.objects.filter(session__in=list(idle)) \
            .values_list("session_id", "data_ts", "equity", "pnl", "fills"):
        steps[idle[session_pk]] |= {"data_ts": data_ts, "equity": equity, "pnl": pnl, "fills": fills}
    now = time.time()
    out = {}
    for s in sessions:
        chain = ["global", f"lane:{s.lane.name}", f"session:{s.session_id}"]
        state, scope = _strictest([(switches[c].state if c in switches else SwitchState.ACTIVE.value, c)
                                   for c in chain])
        switch_row = switches.get(scope)
        cooldown = cooldowns.get(s.pk)
        step = steps.get(s.session_id) or {}
        head, data_ts = heads.get(s.feed), step.get("data_ts")
        live = s.status == SessionStatus.RUNNING
        out[s.session_id] = {
            "type": "session_health",
            "session_id": s.session_id,
            "lane": s.lane.name,
            "status": s.status,
            "step_lag_ms": round((head - data_ts) / 1e6, 1) if live and head and data_ts else None,
            "data_time": _iso(datetime.fromtimestamp(data_ts / 1e9, tz=UTC)) if data_ts else None,
            "last_step_at": _iso(datetime.fromtimestamp(step["stepped_at"], tz=UTC)) if "stepped_at" in step else None,
            "last_step_age_s": round(now - step["stepped_at"], 1) if "stepped_at" in step else None,
            "steps_per_min": step.get("steps_per_min") if live else None,
            "last_fault": s.last_fault or None,
            "last_fault_at": _iso(s.last_fault_at),
            # the book as of the last step (account currency): live figures between summaries
            "equity": step.get("equity"), "pnl": step.get("pnl"), "fills": step.get("fills"),
            "data_ts_ns": data_ts,
            "kill_switch": {"state": state, "scope": scope if state != SwitchState.ACTIVE else None,
                            "reason": switch_row.reason if switch_row and state != SwitchState.ACTIVE else ""},
            "cooldown": {"active": bool(cooldown and cooldown.active), "until": _iso(cooldown.until) if cooldown and cooldown.active else None,
                         "reason": cooldown.reason if cooldown and cooldown.active else "",
                         # an operator's set/clear the session's next step has not applied yet
                         "requested": cooldown.requested if cooldown else None},
        }
    return out


# --- lane evidence and the promotion funnel ----------------------------------------------------


def lane_evidence(*, lane: str, since=None) -> dict | None:
    """The lane's sessions aggregated (``metrics.lane.lane_aggregate``) from each one's newest
    summary written since ``since`` (a datetime; None: ever); None for an unknown lane."""
    from ifns_paper.metrics.lane import lane_aggregate
    from telemetry_app.selectors import summaries_latest

    row = Lane.objects.filter(name=lane).first()
    if row is None:
        return None
    ids = list(PaperSession.objects.filter(lane=row).values_list("session_id", flat=True))
    summaries = summaries_latest(session_ids=ids, since=since)
    return {"lane": lane, "env": "paper", "currency": row.currency, "since": _iso(since),
            **lane_aggregate([summaries[sid] for sid in sorted(summaries)])}


def promotion_funnel() -> list[dict]:
    """Per lane: its promotion rules, the strategies and models it allows with their registry
    status, its sessions by status, and each live or ended session's progress against the
    rules from its newest summary (``metrics.lane.promotion_progress``)."""
    from ifns_paper.metrics.lane import promotion_progress
    from telemetry_app.selectors import summaries_latest

    lanes = list(Lane.objects.select_related("policy").order_by("name"))
    sessions = list(PaperSession.objects.select_related("lane", "strategy").order_by("session_id"))
    summaries = summaries_latest(session_ids=[s.session_id for s in sessions])
    registry = {(e.registry_id): [] for e in RegistryEntry.objects.all()}
    for e in RegistryEntry.objects.order_by("registry_id", "version"):
        registry[e.registry_id].append({"version": e.version, "status": e.status, "kind": e.kind})
    out = []
    for lane in lanes:
        p = lane.policy
        rules = {"promotes_to": p.promotes_to, "min_days": p.min_days, "min_trades": p.min_trades,
                 "max_breaches": p.max_breaches, "thresholds": p.thresholds}
        own = [s for s in sessions if s.lane_id == lane.pk]
        out.append({
            "lane": lane.name, "promotes_to": p.promotes_to, "rules": rules,
            "allowed": {"strategies": {rid: registry.get(rid, []) for rid in p.allowed_strategies},
                        "models": {rid: registry.get(rid, []) for rid in p.allowed_models}},
            "sessions_by_status": dict(sorted(Counter(s.status for s in own).items())),
            "candidates": [{"session_id": s.session_id, "strategy": str(s.strategy), "status": s.status,
                            "tags": s.tags, **promotion_progress(rules, summaries.get(s.session_id))}
                           for s in own if s.status != SessionStatus.SCHEDULED],
        })
    return out


# --- promotion requests ------------------------------------------------------------------------


def promotion_requests(*, status: str | None = None, session: str | None = None, lane: str | None = None):
    """Promotion requests, newest first, with their evidence session and SEL evaluation."""
    from sessions_app.models import PromotionRequest

    rows = PromotionRequest.objects.select_related("session__lane", "evaluation").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    if session:
        rows = rows.filter(session__session_id=session)
    if lane:
        rows = rows.filter(session__lane__name=lane)
    return rows


def promotion_history(request_id: int) -> list[dict]:
    """A request's change-log entries, oldest first: who asked, who decided, when, why."""
    entries = ChangeLogEntry.objects.filter(target_type="promotion_request", target_id=str(request_id)) \
        .order_by("created_at", "id")
    return [{"at": e.created_at, "actor": e.actor, "action": e.action, "reason": e.reason, "before": e.before,
             "after": e.after} for e in entries]
