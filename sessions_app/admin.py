"""Django admin for lanes, envelopes, policies, the registry and sessions.

Envelope and policy edits are validated with the same schema and
cross-checks as ``config/environments/paper.yaml`` and saved through the
services, which write the change log. The change log itself is read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from ifns_paper.admin_base import ReadOnlyModelAdmin
from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS, SessionAction
from ifns_paper.exceptions import ApplicationError
from sessions_app import services
from sessions_app.models import (
    ApiToken,
    ChangeLogEntry,
    KillSwitch,
    Lane,
    LanePolicy,
    PaperSession,
    RegistryEntry,
    RiskEnvelope,
    SessionCooldown,
    SessionModel,
)
from sessions_app.services.controls import kill_switch_validate
from sessions_app.services.tokens import token_create, token_revoke

ENVELOPE_FIELDS = [
    "max_order_notional",
    "max_position_notional_per_symbol",
    "max_gross_exposure",
    "max_net_exposure",
    "max_daily_loss",
    "max_drawdown_pct",
    "max_orders_per_minute",
    "price_collar_bps",
]
POLICY_FIELDS = [
    "allowed_strategies",
    "allowed_models",
    "promotes_to",
    "min_days",
    "min_trades",
    "max_breaches",
    "thresholds",
    "cooldown_max_breaches",
    "cooldown_window_s",
    "cooldown_duration_s",
    "cooldown_max_loss",
]


class _ReasonForm(forms.ModelForm):
    change_reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="Why: written to the change log."
    )

    def _raise_service_errors(self, exc: services.ValidationFailed) -> None:
        """Attach each service error to the form field its path names (or to the form).

        A path names a field by one part ("promotion.min_days" -> ``min_days``) or by two
        joined ("cooldown.max_breaches" -> ``cooldown_max_breaches``, not ``max_breaches``).
        """
        errors: dict[str, list[str]] = {}
        for key, msgs in exc.errors.items():
            parts = key.split(".")
            candidates = ["_".join(pair) for pair in zip(parts, parts[1:], strict=False)] + parts
            name = next((c for c in candidates if c in self.fields), None)
            errors.setdefault(name or "__all__", []).extend(
                msgs if name else [f"{key}: {m}" for m in msgs]
            )
        raise ValidationError(errors)


class RiskEnvelopeForm(_ReasonForm):
    class Meta:
        model = RiskEnvelope
        fields = ENVELOPE_FIELDS

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                services.risk_envelope_validate({k: data.get(k) for k in ENVELOPE_FIELDS})
            except services.ValidationFailed as exc:
                self._raise_service_errors(exc)
        return data


class LanePolicyForm(_ReasonForm):
    class Meta:
        model = LanePolicy
        fields = POLICY_FIELDS

    def clean(self):
        data = super().clean()
        if not self.errors:
            values = {k: data.get(k) for k in POLICY_FIELDS}
            try:
                services.lane_policy_validate(lane=self.instance.lane.name, values=values)
            except services.ValidationFailed as exc:
                # "promotion.min_days" belongs to the flat form field "min_days"
                self._raise_service_errors(exc)
        return data


class _NoAddDelete(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RiskEnvelope)
class RiskEnvelopeAdmin(_NoAddDelete):
    form = RiskEnvelopeForm
    list_display = ["lane", "max_order_notional", "max_gross_exposure", "max_daily_loss", "max_drawdown_pct", "updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        services.risk_envelope_update(
            lane=obj.lane.name,
            values={k: form.cleaned_data[k] for k in ENVELOPE_FIELDS},
            actor=f"admin:{request.user.username}",
            reason=form.cleaned_data["change_reason"],
        )


@admin.register(LanePolicy)
class LanePolicyAdmin(_NoAddDelete):
    form = LanePolicyForm
    list_display = ["lane", "promotes_to", "min_days", "min_trades", "max_breaches", "cooldown_max_breaches",
                    "cooldown_max_loss", "updated_at"]
    fieldsets = [
        (None, {"fields": ["allowed_strategies", "allowed_models"]}),
        ("Promotion", {"fields": ["promotes_to", "min_days", "min_trades", "max_breaches", "thresholds"]}),
        ("Cooldown", {"fields": ["cooldown_max_breaches", "cooldown_window_s", "cooldown_duration_s",
                                 "cooldown_max_loss"],
                      "description": "No new risk for the duration after this many risk breaches, or this "
                                     "loss, within the window."}),
        ("Why", {"fields": ["change_reason"]}),
    ]

    def save_model(self, request, obj, form, change) -> None:
        services.lane_policy_update(
            lane=obj.lane.name,
            values={k: form.cleaned_data[k] for k in POLICY_FIELDS},
            actor=f"admin:{request.user.username}",
            reason=form.cleaned_data["change_reason"],
        )


@admin.register(Lane)
class LaneAdmin(_NoAddDelete):
    list_display = ["name", "capital_amount", "currency", "updated_at"]
    readonly_fields = ["name", "capital_amount", "currency", "telemetry_tags", "description", "created_at", "updated_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # lanes come from config/environments/paper.yaml


@admin.register(RegistryEntry)
class RegistryEntryAdmin(_NoAddDelete):
    list_display = ["registry_id", "version", "kind", "status", "updated_at"]
    list_filter = ["kind", "status"]
    search_fields = ["registry_id"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # entries come from config/registry/models.yaml


class SessionModelInline(admin.TabularInline):
    model = SessionModel
    extra = 0
    can_delete = False
    readonly_fields = ["entry", "weight"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _transition_action(action: SessionAction):
    def run(modeladmin, request, queryset) -> None:
        for session in queryset:
            try:
                services.session_transition(
                    session_id=session.session_id, action=action.value,
                    actor=f"admin:{request.user.username}", reason="Django admin action",
                )
            except ApplicationError as exc:
                modeladmin.message_user(request, exc.message, level=messages.ERROR)
            else:
                modeladmin.message_user(request, f"{session.session_id}: {action.value} done")

    run.__name__ = f"session_{action.value}"
    run.short_description = f"{action.value.capitalize()} selected sessions"
    return run


@admin.register(PaperSession)
class PaperSessionAdmin(_NoAddDelete):
    list_display = ["session_id", "lane", "status", "owner", "strategy", "execution_policy", "started_at", "ended_at"]
    list_filter = ["lane", "status"]
    search_fields = ["session_id", "owner"]
    inlines = [SessionModelInline]
    actions = [_transition_action(a) for a in OPERATOR_ACTIONS]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # definitions come from files; status moves through the actions


class KillSwitchForm(_ReasonForm):
    """A switch is set through ``services.kill_switch_set`` (validated scope and state, a
    change-log entry, events in the sessions it covers), never saved directly."""

    class Meta:
        model = KillSwitch
        fields = ["scope", "state"]
        help_texts = {"scope": "global, lane:NAME (e.g. lane:paper_research) or session:ID"}

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            data["scope"] = self.instance.scope  # the scope of an existing switch does not change
        if not self.errors:
            try:
                kill_switch_validate(scope=data.get("scope", ""), state=data.get("state", ""))
            except services.ValidationFailed as exc:
                self._raise_service_errors(exc)
        return data

    def validate_unique(self) -> None:
        """An existing scope is changed through the service (not refused as a duplicate)."""


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    """Kill switches: every set scope with its state; add or change one with a reason.
    Scopes never set are active (``paper_killswitch list`` shows them all)."""

    form = KillSwitchForm
    list_display = ["scope", "state", "actor", "reason", "updated_at"]
    list_filter = ["state"]
    search_fields = ["scope", "reason"]

    def get_readonly_fields(self, request, obj=None):
        return ["scope", "actor", "reason", "updated_at"] if obj else ["actor", "reason", "updated_at"]

    def get_fields(self, request, obj=None):
        return (["scope"] if obj is None else ["scope", "actor", "reason", "updated_at"]) + ["state", "change_reason"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # set it back to active instead: the change is logged

    def save_model(self, request, obj, form, change) -> None:
        try:
            saved = services.kill_switch_set(scope=form.cleaned_data.get("scope") or obj.scope,
                                             state=form.cleaned_data["state"], actor=f"admin:{request.user.username}",
                                             reason=form.cleaned_data["change_reason"])
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        obj.pk = saved.pk  # the admin's redirect needs the row the service wrote


@admin.register(SessionCooldown)
class SessionCooldownAdmin(ReadOnlyModelAdmin):
    """Cooldowns as the engines last reported them (started and ended by the DRA's rules)."""

    list_display = ["session", "active", "started_at", "until", "reason", "updated_at"]
    list_filter = ["active"]
    readonly_fields = [f.name for f in SessionCooldown._meta.fields]


@admin.register(ChangeLogEntry)
class ChangeLogEntryAdmin(ReadOnlyModelAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id", "reason"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "target_id", "reason"]
    readonly_fields = [f.name for f in ChangeLogEntry._meta.fields]


class ApiTokenForm(forms.ModelForm):
    """A new token: whose and what for. The key is made by the service and shown once."""

    class Meta:
        model = ApiToken
        fields = ["user", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: created here (the key is shown once, in the message after saving) or with
    ``manage.py paper_token``; revoked with the list action, never deleted or edited."""

    form = ApiTokenForm
    list_display = ["prefix", "user", "name", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        token, key = token_create(username=form.cleaned_data["user"].username, name=form.cleaned_data["name"],
                                  actor=f"admin:{request.user.username}")
        obj.pk, obj.prefix, obj.digest, obj.created_by = token.pk, token.prefix, token.digest, token.created_by
        messages.warning(request, f"API token for {token.user.username} — copy the key now, it is not shown "
                                  f"again: {key}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        done = 0
        for token in queryset.filter(revoked_at__isnull=True):
            token_revoke(token_id=token.pk, actor=f"admin:{request.user.username}", reason="revoked in the admin")
            done += 1
        messages.success(request, f"{done} token(s) revoked")
