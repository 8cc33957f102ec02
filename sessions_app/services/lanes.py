"""Lane policies and risk envelopes (Django admin, API): validated like ``paper.yaml``,
every change logged."""

from __future__ import annotations

from types import SimpleNamespace

from django.db import transaction
from pydantic import ValidationError

from ifns_paper.config.loader import lane_policy_problems
from ifns_paper.config.schema import LanePolicySpec
from ifns_paper.config.schema import RiskEnvelope as RiskEnvelopeSpec
from ifns_paper.exceptions import NotFound, ValidationFailed
from sessions_app.models import Lane, LanePolicy, RegistryEntry, RiskEnvelope
from sessions_app.services.changelog import changelog_record, plain
from sessions_app.services.config import policy_values

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
        before = {k: plain(getattr(envelope, k)) for k in new}
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
    errors: dict[str, list[str]] = {}
    try:
        spec = LanePolicySpec.model_validate(data)
    except ValidationError as exc:
        errors = _errors_of(exc)
        # the references are checked too, so every bad field is named at once
        spec = SimpleNamespace(**{key: [v for v in data[key] if isinstance(v, str)] if isinstance(data[key], list)
                                  else [] for key in ("allowed_strategies", "allowed_models")},
                               promotion=SimpleNamespace(promotes_to=str(data["promotion"]["promotes_to"] or "")))
        valid = False
    else:
        valid = True
    kinds = dict(RegistryEntry.objects.values_list("registry_id", "kind"))
    lanes = set(Lane.objects.values_list("name", flat=True))
    for loc, message in lane_policy_problems(lane, spec, kinds=kinds, lanes=lanes):
        key = ".".join(str(p) for p in loc)
        if key not in errors:
            errors.setdefault(key, []).append(message)
    if errors:
        raise ValidationFailed("invalid lane policy", errors)
    assert valid
    return spec


def lane_policy_update(*, lane: str, values: dict, actor: str, reason: str) -> LanePolicy:
    spec = lane_policy_validate(lane=lane, values=values)
    with transaction.atomic():
        policy = LanePolicy.objects.select_for_update().filter(lane__name=lane).first()
        if policy is None:
            raise NotFound(f"lane {lane!r} has no policy")
        new = policy_values(spec)
        before = {k: plain(getattr(policy, k)) for k in new}
        for key, value in new.items():
            setattr(policy, key, value)
        policy.save()
        changelog_record(actor=actor, action="lane_policy_update", target_type="lane_policy",
                         target_id=lane, reason=reason, before=before, after=new)
    return policy


ENVELOPE_FIELDS = ("max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
                   "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute", "price_collar_bps")
POLICY_FIELDS = ("allowed_strategies", "allowed_models", "promotes_to", "min_days", "min_trades", "max_breaches",
                 "thresholds", "cooldown_max_breaches", "cooldown_window_s", "cooldown_duration_s", "cooldown_max_loss")


def _changed(current: dict, changes: dict, fields: tuple[str, ...], what: str) -> dict:
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise ValidationFailed(f"invalid {what}", {k: [f"not a {what} field ({', '.join(fields)})"] for k in unknown})
    if not changes:
        raise ValidationFailed(f"invalid {what}", {"values": ["give at least one field to change"]})
    return {**current, **changes}


def risk_envelope_patch(*, lane: str, changes: dict, actor: str, reason: str) -> RiskEnvelope:
    """Change some fields of a lane's envelope: the whole envelope after the change is
    validated like ``paper.yaml``'s, then written (``risk_envelope_update``)."""
    envelope = RiskEnvelope.objects.filter(lane__name=lane).first()
    if envelope is None:
        raise NotFound(f"no lane {lane!r}")
    current = {f: getattr(envelope, f) for f in ENVELOPE_FIELDS}
    return risk_envelope_update(lane=lane, values=_changed(current, changes, ENVELOPE_FIELDS, "risk envelope"),
                                actor=actor, reason=reason)


def lane_policy_patch(*, lane: str, changes: dict, actor: str, reason: str) -> LanePolicy:
    """Change some fields of a lane's policy, validated whole like ``paper.yaml``'s."""
    policy = LanePolicy.objects.filter(lane__name=lane).first()
    if policy is None:
        raise NotFound(f"no lane {lane!r}")
    current = {f: getattr(policy, f) for f in POLICY_FIELDS}
    return lane_policy_update(lane=lane, values=_changed(current, changes, POLICY_FIELDS, "lane policy"),
                              actor=actor, reason=reason)
