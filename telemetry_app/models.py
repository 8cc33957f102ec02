"""Append-only telemetry events (spec §6.1).

Every event carries ``env="paper"``, its lane, its session and a sequence
number that increases by one per event of that session, so a consumer that
missed a push can backfill exactly what it lacks.
"""

from __future__ import annotations

from django.db import models

from telemetry_app.choices import EventType


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
            "payload": self.payload,
        }
