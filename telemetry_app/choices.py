from django.db import models


class EventType(models.TextChoices):
    """Telemetry event types of spec §6.1."""

    MSI_PROPOSAL = "msi_proposal"
    DRA_DECISION = "dra_decision"
    ORDER_SUBMITTED = "order_submitted"
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    RISK_BREACH = "risk_breach"
    KILL_SWITCH_CHANGE = "kill_switch_change"
    COOLDOWN_STATE_CHANGE = "cooldown_state_change"
    PAPER_SESSION_STATE_CHANGE = "paper_session_state_change"
    # A fault contained to one session (its step raised): kind, exception, the stream range
    # being processed and the checkpoint it stays at. Not in spec §6.1's list; the spec's
    # "incident or anomaly reports" (§5.2) are built from these.
    INCIDENT = "incident"
    # A SEL evaluation of the session (spec §9): recommendation, failed criteria, evidence hash.
    SEL_EVALUATION = "sel_evaluation"
    # A promotion request of the session's evidence: requested, applied, rejected, withdrawn.
    PROMOTION = "promotion"


class FeedStatus(models.TextChoices):
    """Health of a market-data feed (``ifns_paper.feeds.runners.FeedStatus``)."""

    OK = "ok"
    STALE = "stale"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"
