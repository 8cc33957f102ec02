"""Writes for lanes, policies, the registry references and paper sessions.

Each public function is one transaction that also records what it did: a
change-log entry for every operator or config action and, for session state
changes, a ``paper_session_state_change`` telemetry event. The registry file
is rewritten after the transaction commits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from pydantic import ValidationError

from broker_app.models import ExecutionPolicy, ExecutionRoute
from ifns_paper.config import ConfigBundle
from ifns_paper.config.loader import lane_policy_problems
from ifns_paper.config.schema import (
    FromBacktest,
    LanePolicySpec,
    SessionDefinition,
)
from ifns_paper.config.schema import (
    RiskEnvelope as RiskEnvelopeSpec,
)
from ifns_paper.engine.lifecycle import IllegalTransition, SessionAction, plan_transition
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from sessions_app.models import (
    ChangeLogEntry,
    Lane,
    LanePolicy,
    PaperSession,
    RegistryEntry,
    RiskEnvelope,
    SessionModel,
)
from sessions_app.registry import registry_export_after_commit
from telemetry_app.choices import EventType
from telemetry_app.services import event_append


class ValidationFailed(ApplicationError):
    """Input that breaks the configuration rules; ``errors`` maps field → messages."""

    def __init__(self, message: str, errors: dict[str, list[str]]) -> None:
        super().__init__(message, extra={"errors": errors})
        self.errors = errors


def _plain(value: Any) -> Any:
    """A JSON-safe, comparison-stable form of a field value."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
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
    return ChangeLogEntry.objects.create(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
    )


# --- applying the shipped configuration ------------------------------------------------


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


@dataclass
class _Upserter:
    actor: str
    reason: str
    report: ApplyReport

    def __call__(self, model, lookup: dict, values: dict, *, target_type: str, target_id: str):
        obj = model.objects.filter(**lookup).first()
        if obj is None:
            obj = model.objects.create(**lookup, **values)
            changelog_record(actor=self.actor, action="config_create", target_type=target_type,
                             target_id=target_id, reason=self.reason, after={**lookup, **values})
            self.report.created.append(f"{target_type}:{target_id}")
            return obj
        before = {k: _plain(getattr(obj, k)) for k in values}
        after = {k: _plain(v) for k, v in values.items()}
        if before == after:
            self.report.unchanged += 1
            return obj
        for key, value in values.items():
            setattr(obj, key, value)
        obj.save()
        changed = [k for k in values if before[k] != after[k]]
        changelog_record(actor=self.actor, action="config_update", target_type=target_type,
                         target_id=target_id, reason=self.reason,
                         before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
        self.report.updated.append(f"{target_type}:{target_id}")
        return obj


def config_apply(*, bundle: ConfigBundle, actor: str, reason: str = "load shipped configuration") -> ApplyReport:
    """Bring the database in line with a validated configuration bundle.

    Idempotent: applying the same bundle twice changes nothing the second
    time and writes no change-log entries. Sessions that are no longer
    ``scheduled`` keep their definition (they are reported as skipped).
    Nothing is deleted: objects missing from the files stay as they are.
    """
    report = ApplyReport()
    upsert = _Upserter(actor, reason, report)
    with transaction.atomic():
        for entry in bundle.registry.entries:
            upsert(RegistryEntry, {"registry_id": entry.registry_id, "version": entry.version},
                   {"kind": entry.kind, "status": entry.status, "description": entry.description},
                   target_type="registry_entry", target_id=f"{entry.registry_id}@{entry.version}")
        routes = {}
        for route_id, route in bundle.routes.routes.items():
            dumped = route.model_dump(mode="json")
            routes[route_id] = upsert(
                ExecutionRoute, {"route_id": route_id},
                {"description": route.description, "fill_model": route.simulation.model,
                 "simulation": dumped["simulation"], "latency": dumped["latency"],
                 "fees": dumped["fees"], "stale_quote_ms": route.stale_quote_ms,
                 "failures": dumped["failures"], "trading_hours": dumped["trading_hours"]},
                target_type="execution_route", target_id=route_id)
        for policy_id, policy in bundle.policies.policies.items():
            upsert(ExecutionPolicy, {"policy_id": policy_id},
                   {"description": policy.description, "urgency": policy.urgency,
                    "order_type": policy.order_type, "time_in_force": policy.time_in_force,
                    "route": routes[policy.route], "limit_offset_bps": policy.limit_offset_bps,
                    "slicing": policy.slicing.model_dump(mode="json")},
                   target_type="execution_policy", target_id=policy_id)
        for name, spec in bundle.environment.lanes.items():
            lane = upsert(Lane, {"name": name},
                          {"description": spec.description, "capital_amount": spec.capital.amount,
                           "currency": spec.capital.currency, "telemetry_tags": spec.telemetry_tags},
                          target_type="lane", target_id=name)
            upsert(RiskEnvelope, {"lane": lane}, spec.risk_envelope.model_dump(),
                   target_type="risk_envelope", target_id=name)
            upsert(LanePolicy, {"lane": lane}, _policy_values(spec),
                   target_type="lane_policy", target_id=name)
        for session_id, (config_file, definition) in sorted(bundle.sessions.items()):
            existing = PaperSession.objects.filter(session_id=session_id).first()
            if existing is None:
                _session_create(definition, bundle=bundle, config_file=config_file, actor=actor, reason=reason)
                report.created.append(f"paper_session:{session_id}")
            elif existing.config_hash == definition_hash(definition):
                report.unchanged += 1
            elif existing.status != "scheduled":
                report.skipped.append(
                    f"paper_session:{session_id}: definition changed but the session is "
                    f"{existing.status}; register the new definition under a new session_id"
                )
            else:
                _session_redefine(existing, definition, bundle=bundle, config_file=config_file,
                                  actor=actor, reason=reason)
                report.updated.append(f"paper_session:{session_id}")
        if report.changed:
            transaction.on_commit(registry_export_after_commit)
    return report


def _policy_values(spec: LanePolicySpec) -> dict:
    promotion = spec.promotion
    return {
        "allowed_strategies": list(spec.allowed_strategies),
        "allowed_models": list(spec.allowed_models),
        "promotes_to": promotion.promotes_to,
        "min_days": promotion.min_days,
        "min_trades": promotion.min_trades,
        "max_breaches": promotion.max_breaches,
        "thresholds": promotion.thresholds.model_dump(mode="json", exclude_none=True),
        "cooldown_max_breaches": spec.cooldown.max_breaches,
        "cooldown_window_s": spec.cooldown.window_s,
        "cooldown_duration_s": spec.cooldown.duration_s,
        "cooldown_max_loss": spec.cooldown.max_loss,
    }


# --- sessions ---------------------------------------------------------------------------


def definition_hash(definition: SessionDefinition) -> str:
    data = definition.model_dump(mode="json")
    # Settings added after sessions were registered count only when set, so an
    # unchanged file keeps the hash it was registered with.
    if not data["end"]["abort_on_kill_switch"]:
        del data["end"]["abort_on_kill_switch"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _definition_values(definition: SessionDefinition, *, bundle: ConfigBundle, config_file: str) -> dict:
    """Column values of a session definition; references must already be in the database."""
    strategy = RegistryEntry.objects.filter(
        registry_id=definition.strategy.registry_id, version=definition.strategy.version
    ).first()
    lane = Lane.objects.filter(name=definition.lane).first()
    policy = ExecutionPolicy.objects.filter(policy_id=definition.execution_policy).first()
    missing = [what for what, obj in (("lane", lane), ("strategy", strategy), ("execution policy", policy)) if obj is None]
    if missing:
        raise Conflict(
            f"session {definition.session_id!r}: {', '.join(missing)} not in the database; "
            "run 'python manage.py paper_config load' first"
        )
    portfolio = definition.start.portfolio
    if isinstance(portfolio, FromBacktest):
        state = bundle.backtest_states[portfolio.from_backtest]
        initial = {"kind": "from_backtest", "path": portfolio.from_backtest, **state.model_dump(mode="json")}
    else:
        initial = {"kind": "flat"}
    return {
        "lane": lane,
        "owner": definition.owner,
        "objective": definition.objective.strip(),
        "strategy": strategy,
        "portfolio_id": definition.portfolio_id,
        "execution_policy": policy,
        "feed": definition.feed,
        "symbols": list(definition.symbols),
        "start_at": definition.start.at,
        "initial_portfolio": initial,
        "end_duration_s": definition.end.duration_seconds,
        "end_target": definition.end.target.model_dump(mode="json", exclude_none=True) if definition.end.target else None,
        "abort_on_kill_switch": definition.end.abort_on_kill_switch,
        "benchmark": definition.benchmark,
        "tags": list(definition.tags),
        "sizing": definition.sizing.model_dump(mode="json"),
        "config_file": config_file,
        "config_hash": definition_hash(definition),
    }


def _set_models(session: PaperSession, definition: SessionDefinition) -> None:
    session.model_links.all().delete()
    for ref in definition.models:
        entry = RegistryEntry.objects.get(registry_id=ref.registry_id, version=ref.version)
        SessionModel.objects.create(session=session, entry=entry, weight=ref.weight)


def _session_snapshot(session: PaperSession) -> dict:
    return {
        "status": session.status,
        "lane": session.lane.name,
        "strategy": str(session.strategy),
        "execution_policy": session.execution_policy.policy_id,
        "symbols": session.symbols,
        "start_at": session.start_at,
        "started_at": session.started_at,
        "paused_at": session.paused_at,
        "ended_at": session.ended_at,
        "config_hash": session.config_hash,
    }


def _session_create(definition, *, bundle, config_file, actor, reason) -> PaperSession:
    values = _definition_values(definition, bundle=bundle, config_file=config_file)
    session = PaperSession.objects.create(session_id=definition.session_id, status="scheduled", **values)
    _set_models(session, definition)
    session = PaperSession.objects.select_for_update().select_related("lane").get(pk=session.pk)
    now = timezone.now()
    event_append(session=session, event_type=EventType.PAPER_SESSION_STATE_CHANGE, event_time=now,
                 payload={"from": None, "to": "scheduled", "action": "register", "actor": actor,
                          "reason": reason})
    changelog_record(actor=actor, action="session_register", target_type="paper_session",
                     target_id=session.session_id, reason=reason, after=_session_snapshot(session))
    return session


def _session_redefine(session, definition, *, bundle, config_file, actor, reason) -> None:
    session = PaperSession.objects.select_for_update().select_related("lane", "strategy", "execution_policy").get(pk=session.pk)
    before = _session_snapshot(session)
    for key, value in _definition_values(definition, bundle=bundle, config_file=config_file).items():
        setattr(session, key, value)
    session.save()
    _set_models(session, definition)
    changelog_record(actor=actor, action="session_redefine", target_type="paper_session",
                     target_id=session.session_id, reason=reason, before=before,
                     after=_session_snapshot(session))


def session_register(*, bundle: ConfigBundle, session_id: str, actor: str, reason: str = "") -> PaperSession:
    """Register one session of a validated bundle; it starts ``scheduled``."""
    if session_id not in bundle.sessions:
        raise NotFound(f"no session definition with session_id {session_id!r}")
    config_file, definition = bundle.sessions[session_id]
    with transaction.atomic():
        if PaperSession.objects.filter(session_id=session_id).exists():
            raise Conflict(f"session {session_id!r} is already registered")
        session = _session_create(definition, bundle=bundle, config_file=config_file,
                                  actor=actor, reason=reason or "register session")
        transaction.on_commit(registry_export_after_commit)
    return session


def session_transition(
    *, session_id: str, action: str, actor: str, reason: str = "", now: datetime | None = None
) -> PaperSession:
    """Move a session along the lifecycle table (see ``engine.lifecycle``).

    In one transaction: locks the session, checks the move, updates status
    and timestamps, appends a ``paper_session_state_change`` event and a
    change-log entry. Raises ``Conflict`` for a move the table forbids (and
    writes nothing), ``NotFound`` for an unknown session.
    """
    now = now or timezone.now()
    with transaction.atomic():
        session = (
            PaperSession.objects.select_for_update()
            .select_related("lane", "strategy", "execution_policy")
            .filter(session_id=session_id)
            .first()
        )
        if session is None:
            raise NotFound(f"no paper session {session_id!r}")
        try:
            move = plan_transition(session.session_id, session.status, action)
        except IllegalTransition as exc:
            raise Conflict(str(exc), extra={"status": session.status, "action": action}) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc)) from exc
        before = _session_snapshot(session)
        session.status = move.to_status.value
        if move.action is SessionAction.START:
            session.started_at = now
        elif move.action is SessionAction.PAUSE:
            session.paused_at = now
        elif move.action is SessionAction.RESUME:
            session.paused_at = None
            session.resumed_at = now
        else:  # stop or abort: the session ends
            session.paused_at = None
            session.ended_at = now
        session.save(update_fields=["status", "started_at", "paused_at", "resumed_at", "ended_at", "updated_at"])
        event_append(
            session=session,
            event_type=EventType.PAPER_SESSION_STATE_CHANGE,
            event_time=now,
            payload={"from": move.from_status.value, "to": move.to_status.value,
                     "action": move.action.value, "actor": actor, "reason": reason},
        )
        changelog_record(actor=actor, action=f"session_{move.action.value}", target_type="paper_session",
                         target_id=session.session_id, reason=reason, before=before,
                         after=_session_snapshot(session))
        transaction.on_commit(registry_export_after_commit)
    return session


# --- lane policies and envelopes (Django admin) ----------------------------------------


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "__all__"
        errors.setdefault(key, []).append(err["msg"].removeprefix("Value error, "))
    return errors


def risk_envelope_validate(values: dict) -> RiskEnvelopeSpec:
    """Validate envelope values with the schema of ``paper.yaml``; raises ``ValidationFailed``."""
    try:
        return RiskEnvelopeSpec.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed("invalid risk envelope", _errors_of(exc)) from exc


def risk_envelope_update(*, lane: str, values: dict, actor: str, reason: str) -> RiskEnvelope:
    spec = risk_envelope_validate(values)
    with transaction.atomic():
        envelope = RiskEnvelope.objects.select_for_update().filter(lane__name=lane).first()
        if envelope is None:
            raise NotFound(f"lane {lane!r} has no risk envelope")
        new = spec.model_dump()
        before = {k: _plain(getattr(envelope, k)) for k in new}
        for key, value in new.items():
            setattr(envelope, key, value)
        envelope.save()
        changelog_record(actor=actor, action="risk_envelope_update", target_type="risk_envelope",
                         target_id=lane, reason=reason, before=before, after=new)
    return envelope


def lane_policy_validate(*, lane: str, values: dict) -> LanePolicySpec:
    """Validate a lane policy with the schema and cross-checks of ``paper.yaml``."""
    data = {
        "allowed_strategies": values.get("allowed_strategies"),
        "allowed_models": values.get("allowed_models"),
        "promotion": {
            "promotes_to": values.get("promotes_to"),
            "min_days": values.get("min_days"),
            "min_trades": values.get("min_trades"),
            "max_breaches": values.get("max_breaches"),
            "thresholds": values.get("thresholds") or {},
        },
        "cooldown": {
            "max_breaches": values.get("cooldown_max_breaches"),
            "window_s": values.get("cooldown_window_s"),
            "duration_s": values.get("cooldown_duration_s"),
            "max_loss": values.get("cooldown_max_loss"),
        },
    }
    try:
        spec = LanePolicySpec.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid lane policy", _errors_of(exc)) from exc
    kinds = dict(RegistryEntry.objects.values_list("registry_id", "kind"))
    lanes = set(Lane.objects.values_list("name", flat=True))
    problems = lane_policy_problems(lane, spec, kinds=kinds, lanes=lanes)
    if problems:
        errors: dict[str, list[str]] = {}
        for loc, message in problems:
            errors.setdefault(".".join(str(p) for p in loc), []).append(message)
        raise ValidationFailed("invalid lane policy", errors)
    return spec


def lane_policy_update(*, lane: str, values: dict, actor: str, reason: str) -> LanePolicy:
    spec = lane_policy_validate(lane=lane, values=values)
    with transaction.atomic():
        policy = LanePolicy.objects.select_for_update().filter(lane__name=lane).first()
        if policy is None:
            raise NotFound(f"lane {lane!r} has no policy")
        new = _policy_values(spec)
        before = {k: _plain(getattr(policy, k)) for k in new}
        for key, value in new.items():
            setattr(policy, key, value)
        policy.save()
        changelog_record(actor=actor, action="lane_policy_update", target_type="lane_policy",
                         target_id=lane, reason=reason, before=before, after=new)
    return policy


# --- kill switches ---------------------------------------------------------------------


def kill_switch_set(*, scope: str, state: str, actor: str, reason: str = "", now: datetime | None = None):
    """Set a kill switch (``global``, ``lane:<name>``, ``session:<id>``) to active, reducing or halted.

    In one transaction: the switch row, a change-log entry and a
    ``kill_switch_change`` event in every running or paused session it
    covers. Those sessions get a step right after commit, so HALTED cancels
    working orders and stops new risk within one step.
    """
    from ifns_paper.engine.controls import SwitchState
    from sessions_app.models import KillSwitch
    from sessions_app.scheduler import step_enqueue

    try:
        new_state = SwitchState(state)
    except ValueError:
        raise ValidationFailed(f"unknown kill switch state {state!r}",
                               {"state": [f"expected one of {', '.join(s.value for s in SwitchState)}"]}) from None
    kind, _, name = scope.partition(":")
    sessions = PaperSession.objects.filter(status__in=["running", "paused"])
    if scope == "global":
        pass
    elif kind == "lane" and Lane.objects.filter(name=name).exists():
        sessions = sessions.filter(lane__name=name)
    elif kind == "session" and PaperSession.objects.filter(session_id=name).exists():
        sessions = sessions.filter(session_id=name)
    else:
        raise ValidationFailed(f"unknown kill switch scope {scope!r}",
                               {"scope": ["expected 'global', 'lane:<lane name>' or 'session:<session id>' "
                                          "naming an existing lane or session"]})
    now = now or timezone.now()
    with transaction.atomic():
        switch, _ = KillSwitch.objects.select_for_update().get_or_create(
            scope=scope, defaults={"state": "active", "actor": actor, "reason": ""})
        before = switch.state
        if before == new_state:
            return switch
        switch.state, switch.actor, switch.reason = new_state.value, actor, reason
        switch.save()
        changelog_record(actor=actor, action="kill_switch_set", target_type="kill_switch", target_id=scope,
                         reason=reason, before={"state": before}, after={"state": new_state.value})
        affected = []
        for session in sessions.select_for_update().select_related("lane").order_by("session_id"):
            event_append(session=session, event_type=EventType.KILL_SWITCH_CHANGE, event_time=now,
                         payload={"scope": scope, "from": before, "to": new_state.value, "actor": actor,
                                  "reason": reason})
            if session.status == "running":
                affected.append(session.session_id)
        transaction.on_commit(lambda: [step_enqueue(sid) for sid in affected])
    return switch
