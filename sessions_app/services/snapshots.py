"""The fields of a session recorded before and after each change (change log)."""

from __future__ import annotations

from sessions_app.models import PaperSession


def session_snapshot(session: PaperSession) -> dict:
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
        "last_fault": session.last_fault,
        **({"provenance": session.provenance} if session.provenance else {}),
    }
