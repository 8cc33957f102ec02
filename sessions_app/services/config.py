"""Applying the shipped configuration and registering session definitions (spec §4.1, §5.1).

``config_apply`` is idempotent: applying the same bundle twice changes nothing the
second time and writes no change-log entries. Routes and policies are broker_app's
rows (written by its service); lanes, envelopes, policies, registry references and
sessions are ours. Every creation or change is logged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from broker_app.selectors import policy_get
from broker_app.services import execution_config_apply
from ifns_paper.config import ConfigBundle
from ifns_paper.config.schema import FromBacktest, LanePolicySpec, SessionDefinition
from ifns_paper.engine.lifecycle import SessionStatus
from ifns_paper.exceptions import Conflict, NotFound, ValidationFailed
from sessions_app.models import (
    Lane,
    LanePolicy,
    PaperSession,
    RegistryEntry,
    RiskEnvelope,
    SessionModel,
)
from sessions_app.registry import registry_export_after_commit
from sessions_app.services.changelog import changelog_record, plain
from sessions_app.services.events import session_events_append
from sessions_app.services.snapshots import session_snapshot
from telemetry_app.choices import EventType

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

    def __call__(self, model, lookup: dict, values: dict, *, target_type: str, target_id: str,
                 create_only: dict | None = None):
        """``create_only``: fields the files set when the object is created and never after
        (a registry entry's status: promotions own it from then on)."""
        obj = model.objects.filter(**lookup).first()
        if obj is None:
            obj = model.objects.create(**lookup, **values, **(create_only or {}))
            changelog_record(actor=self.actor, action="config_create", target_type=target_type,
                             target_id=target_id, reason=self.reason, after={**lookup, **values, **(create_only or {})})
            self.report.created.append(f"{target_type}:{target_id}")
            return obj
        before = {k: plain(getattr(obj, k)) for k in values}
        after = {k: plain(v) for k, v in values.items()}
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
    ``scheduled`` keep their definition (they are reported as skipped). A registry
    entry's status comes from the files when it is created; promotions change it after.
    Nothing is deleted: objects missing from the files stay as they are.
    """
    report = ApplyReport()
    upsert = _Upserter(actor, reason, report)
    with transaction.atomic():
        for entry in bundle.registry.entries:
            upsert(RegistryEntry, {"registry_id": entry.registry_id, "version": entry.version},
                   {"kind": entry.kind, "description": entry.description, "implementation": entry.implementation},
                   target_type="registry_entry", target_id=f"{entry.registry_id}@{entry.version}",
                   create_only={"status": entry.status})
        changes, unchanged = execution_config_apply(routes=bundle.routes.routes,
                                                    policies=bundle.policies.policies, plain=plain)
        report.unchanged += unchanged
        for change in changes:  # broker_app wrote its rows; the log is ours
            changelog_record(actor=actor, action="config_create" if change.created else "config_update",
                             target_type=change.kind, target_id=change.key, reason=reason,
                             before=change.before, after=change.after)
            (report.created if change.created else report.updated).append(f"{change.kind}:{change.key}")
        for name, spec in bundle.environment.lanes.items():
            lane = upsert(Lane, {"name": name},
                          {"description": spec.description, "capital_amount": spec.capital.amount,
                           "currency": spec.capital.currency, "telemetry_tags": spec.telemetry_tags},
                          target_type="lane", target_id=name)
            upsert(RiskEnvelope, {"lane": lane}, spec.risk_envelope.model_dump(),
                   target_type="risk_envelope", target_id=name)
            upsert(LanePolicy, {"lane": lane}, policy_values(spec),
                   target_type="lane_policy", target_id=name)
        for session_id, (config_file, definition) in sorted(bundle.sessions.items()):
            existing = PaperSession.objects.filter(session_id=session_id).first()
            if existing is None:
                _session_create(definition, bundle=bundle, config_file=config_file, actor=actor, reason=reason)
                report.created.append(f"paper_session:{session_id}")
            elif existing.config_hash == definition_hash(definition):
                report.unchanged += 1
            elif existing.status != SessionStatus.SCHEDULED:
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


def policy_values(spec: LanePolicySpec) -> dict:
    promotion = spec.promotion
    return {
        "allowed_strategies": list(spec.allowed_strategies),
        "allowed_models": list(spec.allowed_models),
        "promotes_to": promotion.promotes_to,
        "min_days": promotion.min_days,
        "min_trades": promotion.min_trades,
        "max_breaches": promotion.max_breaches,
        "thresholds": promotion.thresholds.model_dump(mode="json", exclude_defaults=True),
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
    policy = policy_get(policy_id=definition.execution_policy)
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


def _session_create(definition, *, bundle, config_file, actor, reason, provenance=None) -> PaperSession:
    values = _definition_values(definition, bundle=bundle, config_file=config_file)
    values["provenance"] = provenance or {}
    session = PaperSession.objects.create(session_id=definition.session_id, status=SessionStatus.SCHEDULED,
                                          **values)
    _set_models(session, definition)
    session = PaperSession.objects.select_for_update().select_related("lane").get(pk=session.pk)
    session_events_append(session=session, events=[(
        EventType.PAPER_SESSION_STATE_CHANGE, timezone.now(),
        {"from": None, "to": SessionStatus.SCHEDULED.value, "action": "register", "actor": actor,
         "reason": reason})])
    changelog_record(actor=actor, action="session_register", target_type="paper_session",
                     target_id=session.session_id, reason=reason, after=session_snapshot(session))
    return session


def _session_redefine(session, definition, *, bundle, config_file, actor, reason) -> None:
    session = PaperSession.objects.select_for_update().select_related("lane", "strategy", "execution_policy").get(pk=session.pk)
    before = session_snapshot(session)
    for key, value in _definition_values(definition, bundle=bundle, config_file=config_file).items():
        setattr(session, key, value)
    session.save()
    _set_models(session, definition)
    changelog_record(actor=actor, action="session_redefine", target_type="paper_session",
                     target_id=session.session_id, reason=reason, before=before,
                     after=session_snapshot(session))


def session_register(*, bundle: ConfigBundle, session_id: str, actor: str, reason: str = "",
                     provenance: dict | None = None) -> PaperSession:
    """Register one session of a validated bundle; it starts ``scheduled``. ``provenance``
    says where its definition came from (e.g. the backtest it was cloned from)."""
    if session_id not in bundle.sessions:
        raise NotFound(f"no session definition with session_id {session_id!r}")
    config_file, definition = bundle.sessions[session_id]
    with transaction.atomic():
        if PaperSession.objects.filter(session_id=session_id).exists():
            raise Conflict(f"session {session_id!r} is already registered")
        session = _session_create(definition, bundle=bundle, config_file=config_file,
                                  actor=actor, reason=reason or "register session", provenance=provenance)
        transaction.on_commit(registry_export_after_commit)
    return session


BODY_LABEL = "request body"


def session_register_text(*, text: str, actor: str, reason: str = "", provenance: dict | None = None) -> PaperSession:
    """Register a session from a definition given as text (YAML, or JSON — YAML reads it),
    validated exactly like a ``paper_session register`` file against the configuration
    directory. Every problem comes back as ``request body:LINE: path: message`` (in
    ``problems``) and by field path (in ``fields``); nothing is written then."""
    import tempfile
    from pathlib import Path

    from django.conf import settings

    from ifns_paper.config import ConfigError, load_config_dir

    with tempfile.TemporaryDirectory(prefix="ifns-session-") as tmp:
        path = Path(tmp) / "session_request.yaml"
        path.write_text(text)
        try:
            bundle = load_config_dir(Path(settings.IFNS_CONFIG_DIR), extra_session_files=[path])
        except ConfigError as exc:
            ours = [p for p in exc.problems if Path(p.file).resolve() == path.resolve()] or exc.problems
            fields: dict[str, list[str]] = {}
            for p in ours:
                fields.setdefault(p.path or "definition", []).append(p.message)
            shown = [str(p).replace(str(path), BODY_LABEL) for p in ours]
            error = ValidationFailed("the session definition is invalid: " + "; ".join(shown), fields)
            error.extra["problems"] = shown
            raise error from None
        session_id = next(sid for sid, (label, _) in bundle.sessions.items()
                          if Path(label).resolve() == path.resolve() or label == str(path))
        if PaperSession.objects.filter(session_id=session_id).exists():
            raise Conflict(f"session_id: a session {session_id!r} exists already")
        return session_register(bundle=bundle, session_id=session_id, actor=actor, reason=reason,
                                provenance=provenance)


def session_definition(session: PaperSession) -> dict:
    """A registered session as a definition document (``session_<name>.yaml``'s shape):
    what a clone starts from. The start is left to an operator; an initial portfolio taken
    from a backtest end state keeps its file."""
    portfolio = session.initial_portfolio or {}
    end: dict = {}
    if session.end_duration_s:
        end["duration"] = session.end_duration_s
    if session.end_target:
        end["target"] = session.end_target
    if session.abort_on_kill_switch:
        end["abort_on_kill_switch"] = True
    return {
        "session_id": session.session_id, "lane": session.lane.name, "owner": session.owner,
        "objective": session.objective,
        "strategy": {"registry_id": session.strategy.registry_id, "version": session.strategy.version},
        "models": [{"registry_id": link.entry.registry_id, "version": link.entry.version, "weight": link.weight}
                   for link in session.model_links.select_related("entry").order_by("entry__registry_id")],
        "portfolio_id": session.portfolio_id, "execution_policy": session.execution_policy.policy_id,
        "feed": session.feed, "symbols": list(session.symbols),
        "start": {"at": None, "portfolio": ({"from_backtest": portfolio["path"]}
                                            if portfolio.get("kind") == "from_backtest" else "flat")},
        "end": end, "benchmark": session.benchmark, "tags": list(session.tags or []), "sizing": dict(session.sizing),
    }
