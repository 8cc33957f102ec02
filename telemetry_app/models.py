"""Append-only telemetry events (spec §6.1).

Every event carries ``env="paper"``, its lane, its session and a sequence
number that increases by one per event of that session, so a consumer that
missed a push can backfill exactly what it lacks.
"""

from __future__ import annotations

from django.db import models

from telemetry_app.choices import EventType, FeedStatus


class TelemetryEvent(models.Model):
    env = models.CharField(max_length=16, default="paper", editable=False)
    lane = models.SlugField(max_length=64)
    session = models.ForeignKey(
        "sessions_app.PaperSession", on_delete=models.PROTECT, related_name="events"
    )
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    sequence = models.PositiveBigIntegerField()
    event_time = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["session_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence"], name="telemetry_session_seq_unique"),
            models.CheckConstraint(condition=models.Q(env="paper"), name="telemetry_env_is_paper"),
        ]
        indexes = [
            models.Index(fields=["event_type", "event_time"], name="telemetry_type_time_idx"),
            models.Index(fields=["lane", "event_time"], name="telemetry_lane_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.sequence} {self.event_type}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("telemetry events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("telemetry events are append-only")

    def as_record(self, session_id: str) -> dict:
        """The event as written to sinks and pushed to clients."""
        return {
            "env": self.env,
            "lane": self.lane,
            "session_id": session_id,
            "sequence": self.sequence,
            "type": self.event_type,
            "event_time": self.event_time.isoformat(),
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            "payload": self.payload,
        }


class FeedHealthEvent(models.Model):
    """Append-only health reports of market-data feeds (``paper_feed`` writes one per feed
    every 5 s and on each status change).

    last_tick_age_ms: milliseconds since the feed last published rows (None before the
    first); rows_total: rows published since the feed process started; gaps: times the
    feed went from ok to stale or disconnected; glitches: counts by kind (synthetic:
    injected glitch kinds; Binance: trades_missed, parse_errors, reconnects, ...);
    restarts: supervised restarts after a crash; detail: the last error or state note."""

    env = models.CharField(max_length=16, default="paper", editable=False)
    feed = models.SlugField(max_length=64)
    kind = models.CharField(max_length=32)
    event_time = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=FeedStatus.choices)
    last_tick_age_ms = models.PositiveBigIntegerField(null=True, blank=True)
    rows_total = models.PositiveBigIntegerField(default=0)
    gaps = models.PositiveIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    glitches = models.JSONField(default=dict)
    detail = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["feed", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(env="paper"), name="feedhealth_env_is_paper"),
            models.CheckConstraint(condition=models.Q(status__in=FeedStatus.values), name="feedhealth_status_valid"),
        ]
        indexes = [models.Index(fields=["feed", "event_time"], name="feedhealth_feed_time_idx")]

    def __str__(self) -> str:
        return f"{self.feed} {self.status} @ {self.event_time:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("feed health events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("feed health events are append-only")

    def as_record(self) -> dict:
        """The report as written to the NDJSON sink, pushed to clients and served by the API."""
        return {
            "type": "feed_health",
            "env": self.env,
            "feed": self.feed,
            "kind": self.kind,
            "event_time": self.event_time.isoformat(),
            "status": self.status,
            "last_tick_age_ms": self.last_tick_age_ms,
            "rows_total": self.rows_total,
            "gaps": self.gaps,
            "restarts": self.restarts,
            "glitches": self.glitches,
            "detail": self.detail,
        }


class EquitySample(models.Model):
    """A running session's state on its equity grid (the engine's 1 s samples, a point at
    every whole minute at least), account currency; ``drawdown`` is a fraction of the running
    peak equity, ``positions`` maps symbol -> signed quantity. Written by the steps (unique per
    session and time: a replayed step writes nothing twice); points older than an hour are
    thinned to one a minute (``telemetry_app.services.series_downsample``)."""

    session = models.ForeignKey("sessions_app.PaperSession", on_delete=models.CASCADE,
                                related_name="equity_samples")
    ts_ns = models.BigIntegerField(help_text="market-data time, epoch ns")
    equity = models.FloatField()
    cash = models.FloatField()
    realized = models.FloatField()
    unrealized = models.FloatField()
    fees = models.FloatField()
    gross = models.FloatField(help_text="gross exposure, account currency")
    net = models.FloatField(help_text="net exposure, account currency")
    drawdown = models.FloatField(help_text="fraction below the running peak equity")
    positions = models.JSONField(default=dict)
    marks = models.JSONField(default=dict, help_text="symbol -> last mid")

    class Meta:
        ordering = ["session_id", "ts_ns"]
        constraints = [models.UniqueConstraint(fields=["session", "ts_ns"], name="equity_sample_unique")]

    def __str__(self) -> str:
        return f"{self.session_id}@{self.ts_ns}: {self.equity:.2f}"

    def as_record(self) -> dict:
        return {"ts_ns": self.ts_ns, "equity": self.equity, "cash": self.cash, "realized": self.realized,
                "unrealized": self.unrealized, "fees": self.fees, "gross": self.gross, "net": self.net,
                "drawdown": self.drawdown, "positions": self.positions, "marks": self.marks}


class SessionSummary(models.Model):
    """A session's metrics summary as of a time (``ifns_paper.metrics.summary``): refreshed
    while it runs and final when it ends; each one also a line of
    ``data/registry/paper_summary.ndjson``. Unique per session and as-of time."""

    session = models.ForeignKey("sessions_app.PaperSession", on_delete=models.CASCADE, related_name="summaries")
    as_of_ns = models.BigIntegerField(help_text="market-data time the summary covers up to, epoch ns")
    final = models.BooleanField(default=False)
    data = models.JSONField()
    spark = models.JSONField(default=list, blank=True,
                             help_text="equity (account currency) at the last 60 whole minutes up to as_of, oldest "
                                       "first: the overview's sparkline, computed with the summary")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session_id", "as_of_ns"]
        constraints = [models.UniqueConstraint(fields=["session", "as_of_ns", "final"], name="session_summary_unique")]

    def __str__(self) -> str:
        return f"summary of {self.session_id} as of {self.as_of_ns}{' (final)' if self.final else ''}"
