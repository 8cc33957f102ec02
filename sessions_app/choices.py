"""Choice sets for sessions_app models (values mirror the engine enums)."""

from django.db import models

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import SessionStatus


class SessionStatusChoices(models.TextChoices):
    SCHEDULED = SessionStatus.SCHEDULED, "Scheduled"
    RUNNING = SessionStatus.RUNNING, "Running"
    PAUSED = SessionStatus.PAUSED, "Paused"
    COMPLETED = SessionStatus.COMPLETED, "Completed"
    ABORTED = SessionStatus.ABORTED, "Aborted"
    FAULTED = SessionStatus.FAULTED, "Faulted"


class RegistryKind(models.TextChoices):
    STRATEGY = "strategy", "Strategy"
    MODEL = "model", "Model"


class RegistryStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    RESEARCH = "research", "Research"
    GATECHECK = "gatecheck", "Gatecheck"
    LIVE_CANARY = "live_canary", "Live canary"
    LIVE = "live", "Live"
    RETIRED = "retired", "Retired"


class KillSwitchState(models.TextChoices):
    ACTIVE = SwitchState.ACTIVE, "Active"
    REDUCING = SwitchState.REDUCING, "Reducing (risk-reducing orders only)"
    HALTED = SwitchState.HALTED, "Halted (nothing but cancels)"
