"""Writes of sessions_app, one module per subject (Zulip's ``actions/`` layout):

* ``config``: applying the shipped configuration, registering session definitions;
* ``sessions``: lifecycle moves, including faults;
* ``controls``: kill switches and cooldowns (operators and the system alike);
* ``lanes``: lane policies and risk envelopes;
* ``events``: a session's telemetry events (sequence numbers are ours);
* ``changelog``: the change log;
* ``tick``: the once-a-second scheduler tick.

Each public function is one transaction that records what it did (change log,
telemetry). The names below are the public API.
"""

from ifns_paper.exceptions import ValidationFailed
from sessions_app.services.changelog import changelog_record
from sessions_app.services.config import (
    ApplyReport,
    config_apply,
    definition_hash,
    session_register,
)
from sessions_app.services.controls import kill_switch_set
from sessions_app.services.lanes import (
    lane_policy_update,
    lane_policy_validate,
    risk_envelope_update,
    risk_envelope_validate,
)
from sessions_app.services.sessions import Fault, session_fault, session_transition
from sessions_app.services.tick import sessions_tick

__all__ = [
    "ApplyReport", "Fault", "ValidationFailed", "changelog_record", "config_apply", "definition_hash",
    "kill_switch_set", "lane_policy_update", "lane_policy_validate", "risk_envelope_update",
    "risk_envelope_validate", "session_fault", "session_register", "session_transition", "sessions_tick",
]
