"""Session registry, lanes and their policies (spec §3, §5).

The database is the source of truth; ``data/registry/paper_sessions.json`` is
an export rewritten after every change (see :mod:`sessions_app.registry`).
Writes go through :mod:`sessions_app.services`, never through ``save()`` in
views or admin classes.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ifns_paper.governance import RequestKind, RequestStatus
from sessions_app.choices import KillSwitchState, RegistryKind, RegistryStatus, SessionStatusChoices

MONEY = {"max_digits": 20, "decimal_places": 2}


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Lane(TimeStamped):
    """A logical sub-environment of ``paper`` with its own simulated capital."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    capital_amount = models.DecimalField(**MONEY, help_text="simulated capital budget")
    currency = models.CharField(max_length=5)
    telemetry_tags = models.JSONField(default=dict)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def env(self) -> str:
        return "paper"


class RiskEnvelope(TimeStamped):
    """Hard risk limits of a lane; amounts in the lane currency."""

    lane = models.OneToOneField(Lane, on_delete=models.CASCADE, related_name="risk_envelope")
    max_order_notional = models.DecimalField(**MONEY)
    max_position_notional_per_symbol = models.DecimalField(**MONEY)
    max_gross_exposure = models.DecimalField(**MONEY)
    max_net_exposure = models.DecimalField(**MONEY)
    max_daily_loss = models.DecimalField(**MONEY)
    max_drawdown_pct = models.FloatField(help_text="percent of capital")
    max_orders_per_minute = models.PositiveIntegerField()
    price_collar_bps = models.FloatField(help_text="basis points from mid")

    class Meta:
        ordering = ["lane__name"]

    def __str__(self) -> str:
        return f"risk envelope of {self.lane.name}"


class LanePolicy(TimeStamped):
    """What may run in a lane, what it takes to be promoted out of it, and when its
    sessions cool down (the ``cooldown`` section of the lane in ``paper.yaml``)."""

    lane = models.OneToOneField(Lane, on_delete=models.CASCADE, related_name="policy")
    allowed_strategies = models.JSONField(default=list, help_text="registry ids")
    allowed_models = models.JSONField(default=list, help_text="registry ids")
    promotes_to = models.SlugField(max_length=64)
    min_days = models.PositiveIntegerField()
    min_trades = models.PositiveIntegerField()
    max_breaches = models.PositiveIntegerField()
    thresholds = models.JSONField(default=dict, blank=True, help_text="metric thresholds for promotion")
    # Defaults as documented for a lane without a cooldown section (schema.CooldownRules).
    cooldown_max_breaches = models.PositiveIntegerField(
        default=3, help_text="cooldown after this many risk breaches within the window")
    cooldown_window_s = models.PositiveIntegerField(default=60, help_text="seconds")
    cooldown_duration_s = models.PositiveIntegerField(default=300, help_text="seconds without new risk")
    cooldown_max_loss = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="cooldown after losing this much (lane currency) within the window; empty: no loss rule")

    class Meta:
        ordering = ["lane__name"]
        verbose_name_plural = "lane policies"

    def __str__(self) -> str:
        return f"policy of {self.lane.name}"


class RegistryEntry(TimeStamped):
    """A reference to a Model Registry (Stage 03) strategy or model version."""

    registry_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=RegistryKind.choices)
    version = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=RegistryStatus.choices)
    description = models.TextField(blank=True)
    implementation = models.CharField(
        max_length=200, blank=True, help_text="a model's code, 'package.module:function'; empty: built in")

    class Meta:
        ordering = ["registry_id", "version"]
        verbose_name_plural = "registry entries"
        constraints = [
            models.UniqueConstraint(fields=["registry_id", "version"], name="registry_entry_unique")
        ]

    def __str__(self) -> str:
        return f"{self.registry_id}@{self.version}"


class PaperSession(TimeStamped):
    """One paper run: its definition (spec §5.1) and lifecycle state (spec §5.3)."""

    session_id = models.SlugField(max_length=64, unique=True)
    lane = models.ForeignKey(Lane, on_delete=models.PROTECT, related_name="sessions")
    owner = models.CharField(max_length=100)
    objective = models.TextField()
    strategy = models.ForeignKey(
        RegistryEntry, on_delete=models.PROTECT, related_name="strategy_sessions"
    )
    model_entries = models.ManyToManyField(
        RegistryEntry, through="SessionModel", related_name="model_sessions"
    )
    portfolio_id = models.SlugField(max_length=64)
    execution_policy = models.ForeignKey(
        "broker_app.ExecutionPolicy", on_delete=models.PROTECT, related_name="sessions"
    )
    feed = models.SlugField(max_length=64)
    symbols = models.JSONField(default=list)
    start_at = models.DateTimeField(null=True, blank=True, help_text="empty: operator start")
    initial_portfolio = models.JSONField(
        default=dict, help_text='{"kind": "flat"} or {"kind": "from_backtest", ...}'
    )
    end_duration_s = models.PositiveIntegerField(null=True, blank=True)
    end_target = models.JSONField(null=True, blank=True)
    abort_on_kill_switch = models.BooleanField(
        default=False, help_text="the scheduler aborts the running session while its effective kill switch is halted")
    benchmark = models.CharField(max_length=100)
    tags = models.JSONField(default=list)
    sizing = models.JSONField(default=dict, help_text="MSI sizing: vol target, budget fraction, lot sizes")
    config_file = models.CharField(max_length=500, blank=True)
    config_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the definition")
    provenance = models.JSONField(
        default=dict, blank=True,
        help_text="where a cloned session comes from: source session or backtest, promotion request, evidence")

    status = models.CharField(
        max_length=16, choices=SessionStatusChoices.choices, default=SessionStatusChoices.SCHEDULED
    )
    started_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    resumed_at = models.DateTimeField(
        null=True, blank=True, help_text="last resume: market data published while paused is not traded on")
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_seq = models.PositiveBigIntegerField(
        default=0, help_text="sequence number of the last telemetry event of this session"
    )
    last_fault = models.TextField(blank=True, help_text="the last fault that took the session out of its steps")
    last_fault_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["lane__name", "session_id"]
        indexes = [models.Index(fields=["status"], name="paper_session_status_idx")]
        permissions = [
            ("operate_papersession", "Can start, pause, resume, stop and abort paper sessions"),
        ]

    def __str__(self) -> str:
        return self.session_id

    @property
    def env(self) -> str:
        return "paper"


class SessionModel(models.Model):
    """A model in a session's MSI blend, with its weight."""

    session = models.ForeignKey(PaperSession, on_delete=models.CASCADE, related_name="model_links")
    entry = models.ForeignKey(RegistryEntry, on_delete=models.PROTECT, related_name="session_links")
    weight = models.FloatField()

    class Meta:
        ordering = ["session_id", "-weight", "entry_id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "entry"], name="session_model_unique")
        ]

    def __str__(self) -> str:
        return f"{self.session} uses {self.entry} ({self.weight:g})"


class ChangeLogEntry(models.Model):
    """Append-only record of an operator or system action: who, what, why, before, after."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "change log entries"
        indexes = [models.Index(fields=["target_type", "target_id"], name="changelog_target_idx")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("change log entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("change log entries are append-only")


class SessionCheckpoint(models.Model):
    """Where a running session's steps stand: stream offsets and the engine state.

    Written in the same transaction as the step's orders, fills and events,
    so a step redelivered after a crash starts from the last committed point.
    ``engine_state`` is a zlib-compressed pickle of the session engine
    (``steps.engine_dump``), written and read only by this application.
    """

    session = models.OneToOneField(PaperSession, on_delete=models.CASCADE, related_name="checkpoint")
    offsets = models.JSONField(default=dict, help_text="stream key -> last consumed entry id")
    engine_state = models.BinaryField()
    steps = models.PositiveBigIntegerField(default=0)
    data_ts = models.BigIntegerField(default=0, help_text="exchange time of the newest data consumed, epoch ns")
    cash = models.FloatField(default=0.0)
    equity = models.FloatField(default=0.0)
    pnl = models.FloatField(default=0.0, help_text="equity minus starting capital, lane currency")
    fills = models.PositiveBigIntegerField(default=0, help_text="fills booked so far")
    trades = models.PositiveBigIntegerField(default=0, help_text="closed round trips so far (engine.trades)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session_id"]

    def __str__(self) -> str:
        return f"checkpoint of {self.session_id} after {self.steps} steps"


class KillSwitch(models.Model):
    """A kill switch at global, lane or session scope (``global``, ``lane:<name>``, ``session:<id>``).

    A scope without a row is ``active``. Changed only through
    ``sessions_app.services.controls`` (operators and the DRA alike), which logs each change."""

    scope = models.CharField(max_length=120, unique=True)
    state = models.CharField(max_length=16, choices=KillSwitchState.choices, default=KillSwitchState.ACTIVE)
    actor = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope"]
        verbose_name_plural = "kill switches"

    def __str__(self) -> str:
        return f"{self.scope}: {self.state}"


class SessionCooldown(models.Model):
    """A session's cooldown as its engine last reported it (lane cooldown rules: N risk
    breaches or a loss within a window → no new risk until ``until``).

    Written by the step through ``sessions_app.services.controls`` when the engine starts
    or ends a cooldown, with a change-log entry each time; read by health views. An
    operator's set or clear waits in ``requested`` until the session's next step hands it
    to the engine (whose state is the cooldown's truth)."""

    session = models.OneToOneField(PaperSession, on_delete=models.CASCADE, related_name="cooldown")
    active = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True, help_text="market-data time it started")
    until = models.DateTimeField(null=True, blank=True, help_text="market-data time it ends")
    reason = models.TextField(blank=True)
    requested = models.JSONField(
        null=True, blank=True,
        help_text="an operator's start or end of the cooldown, applied by the session's next step: "
                  '{"active", "duration_s", "actor", "reason", "at"}')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session_id"]

    def __str__(self) -> str:
        return f"cooldown of {self.session_id}: {'active until ' + str(self.until) if self.active else 'off'}"


class Backtest(TimeStamped):
    """A backtest registered beside the paper sessions: a **shadow** run of a session's
    definition over the market data it saw (the feed recordings of its live window), or an
    **imported** Stage 04 backtest / Stage 07 live run. Its summary comes from the same metric
    functions as a session's; its files (events, fills, series, orders, summary) are under
    ``IFNS_DATA_DIR/<out_dir>``."""

    class Kind(models.TextChoices):
        SHADOW = "shadow", "shadow backtest"
        IMPORTED = "imported", "imported backtest"
        LIVE = "live", "imported live run"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        COMPLETED = "completed", "completed"
        FAILED = "failed", "failed"

    backtest_id = models.SlugField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    session = models.ForeignKey(PaperSession, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="backtests", help_text="the session a shadow backtest shadows")
    strategy = models.ForeignKey(RegistryEntry, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="backtests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    params = models.JSONField(default=dict, help_text="latency mode, window, feed, data read")
    summary = models.JSONField(null=True, blank=True, help_text="the summary object (metrics.summary)")
    out_dir = models.CharField(max_length=500, blank=True, help_text="under IFNS_DATA_DIR")
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=150)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["session", "kind"], name="backtest_session_kind_idx")]

    def __str__(self) -> str:
        return self.backtest_id


class SessionComparison(models.Model):
    """The stored comparison (``services.comparisons``) of a session with one backtest or
    imported live run: recomputed as a rolling shadow backtest follows the session, so the
    newest figures are there to read without recomputing them."""

    session = models.ForeignKey(PaperSession, on_delete=models.CASCADE, related_name="comparisons")
    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="comparisons")
    result = models.JSONField(help_text="the comparison object, as served by the API")
    flags = models.JSONField(default=list)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-computed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["session", "backtest"], name="comparison_session_backtest")]

    def __str__(self) -> str:
        return f"{self.session_id} vs {self.backtest_id}"


class SelEvaluation(models.Model):
    """One SEL evaluation (spec §9): a lane's promotion criteria applied to a session's
    evidence, with each criterion's value, threshold and pass/fail, the recommendation, the
    evidence set and its hash. Append-only."""

    class Recommendation(models.TextChoices):
        PROMOTE = "promote"
        HOLD = "hold"
        EXTEND = "extend"
        DOWNGRADE = "downgrade"

    session = models.ForeignKey(PaperSession, on_delete=models.PROTECT, related_name="sel_evaluations")
    lane = models.CharField(max_length=64)
    recommendation = models.CharField(max_length=16, choices=Recommendation.choices)
    criteria = models.JSONField(default=list)
    evidence = models.JSONField(default=list, help_text="the summaries evaluated: session id, as-of, final")
    conventions = models.JSONField(default=dict)
    comparison = models.JSONField(null=True, blank=True, help_text="the backtest reconciled against, its scores")
    rules = models.JSONField(default=dict, help_text="the lane's promotion rules as applied")
    evidence_hash = models.CharField(max_length=64)
    trigger = models.CharField(max_length=32, help_text="completion or on_demand")
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.recommendation}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("SEL evaluations are append-only")
        super().save(*args, **kwargs)

    def as_record(self) -> dict:
        return {"id": self.pk, "session_id": self.session.session_id, "lane": self.lane,
                "recommendation": self.recommendation, "criteria": self.criteria, "evidence": self.evidence,
                "conventions": self.conventions, "comparison": self.comparison, "rules": self.rules,
                "evidence_hash": self.evidence_hash, "trigger": self.trigger, "created_by": self.created_by,
                "created_at": self.created_at.isoformat()}


class PromotionRequest(models.Model):
    """A request to move a strategy between lanes or change a registry status (spec §8.2,
    §9): request → SEL evaluation attached → approval (four eyes) or rejection → applied and
    logged. The transition table is ``ifns_paper.governance``. Rows are never deleted."""

    kind = models.CharField(max_length=32, choices=[(k.value, k.value) for k in RequestKind])
    status = models.CharField(max_length=16, choices=[(s.value, s.value) for s in RequestStatus],
                              default=RequestStatus.PENDING.value)
    session = models.ForeignKey(PaperSession, on_delete=models.PROTECT, related_name="promotion_requests",
                                help_text="the evidence session")
    target = models.JSONField(help_text='lane_transition: {"to_lane"}; model_status: {"registry_id", "version", '
                                        '"to_status"}')
    direction = models.CharField(max_length=16, blank=True, help_text="promote or downgrade (lane transitions)")
    evaluation = models.ForeignKey(SelEvaluation, on_delete=models.PROTECT, related_name="promotion_requests")
    requested_by = models.CharField(max_length=150)
    reason = models.TextField()
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    override_reason = models.TextField(blank=True, help_text="why it was approved against failing evidence")
    result = models.JSONField(null=True, blank=True, help_text="what applying it changed")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_promotionrequest", "Can approve or reject promotion requests (not their own)")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.status}"

    def as_record(self) -> dict:
        return {"id": self.pk, "kind": self.kind, "status": self.status, "session_id": self.session.session_id,
                "target": self.target, "direction": self.direction, "evaluation_id": self.evaluation_id,
                "recommendation": self.evaluation.recommendation, "evidence_hash": self.evaluation.evidence_hash,
                "requested_by": self.requested_by, "reason": self.reason, "decided_by": self.decided_by or None,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
                "decision_reason": self.decision_reason or None, "override_reason": self.override_reason or None,
                "result": self.result, "created_at": self.created_at.isoformat()}


class ApiToken(models.Model):
    """An API token for automation (``Authorization: Token <key>``). Only a SHA-256 digest of
    the key is stored: the key is shown once, when it is created (``paper_token create``
    or the admin), and cannot be read back. Revoked tokens stay, for the record."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="what it is for, e.g. 'nightly promotion script'")
    prefix = models.CharField(max_length=12, db_index=True, help_text="the key's first characters, to tell keys apart")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key (hex)")
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}: {self.name})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The response to a write sent with an ``Idempotency-Key`` header, kept 24 h: the same
    key from the same user with the same request gets this response again (nothing is done
    twice); with a different request, a 409. ``status_code`` 0: the first request is still
    being handled."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    status_code = models.PositiveSmallIntegerField(default=0)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
