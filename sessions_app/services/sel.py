"""SEL evaluations (spec §9): ``metrics.sel.evaluate`` on a session's evidence — its own
summary, the summaries of its lane's sessions tagged ``promotion_evidence`` that run the
same strategy version (not those tagged ``ignore``), and its comparison with its newest
shadow backtest when it has one — recorded as an append-only ``SelEvaluation`` with a
``sel_evaluation`` telemetry event and a change-log entry, in one transaction. Runs when a
session completes (its final summary) and on demand."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from ifns_paper.engine.lifecycle import TERMINAL, SessionStatus
from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from ifns_paper.metrics.sel import evaluate
from sessions_app.models import PaperSession, SelEvaluation
from sessions_app.services.changelog import changelog_record
from sessions_app.services.events import session_events_append
from sessions_app.services.summaries import summary_compute, summary_refresh
from telemetry_app.choices import EventType
from telemetry_app.selectors import summaries_latest

log = logging.getLogger(__name__)

EVIDENCE_TAG = "promotion_evidence"
IGNORE_TAG = "ignore"


def evidence_sessions(session: PaperSession) -> list[str]:
    """The other sessions whose summaries count as evidence for ``session``."""
    return [s.session_id for s in PaperSession.objects.filter(lane=session.lane, strategy=session.strategy)
            .exclude(pk=session.pk).only("session_id", "tags")
            if EVIDENCE_TAG in (s.tags or []) and IGNORE_TAG not in (s.tags or [])]


def sel_evaluate(*, session_id: str, actor: str, trigger: str = "on_demand") -> SelEvaluation:
    """Evaluate ``session_id`` against its lane's promotion rules and record it."""
    from sessions_app.services.comparisons import comparison_compute

    session = PaperSession.objects.select_related("lane__policy", "strategy").filter(session_id=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    if IGNORE_TAG in (session.tags or []):
        raise Conflict(f"{session_id}: tagged {IGNORE_TAG!r}; remove the tag to evaluate it")
    summary = summary_compute(session_id=session_id, final=SessionStatus(session.status) in TERMINAL)
    if summary is None:
        raise Conflict(f"{session_id}: nothing to evaluate yet (it has not stepped)")
    policy = session.lane.policy
    rules = {"promotes_to": policy.promotes_to, "min_days": policy.min_days, "min_trades": policy.min_trades,
             "max_breaches": policy.max_breaches, "thresholds": policy.thresholds or {}}
    evidence = list(summaries_latest(session_ids=evidence_sessions(session)).values())
    try:
        comparison = comparison_compute(session_id=session_id)
    except ApplicationError:
        comparison = None  # no shadow backtest: reconciliation criteria cannot be met
    result = evaluate(rules, summary, evidence, comparison)
    with transaction.atomic():
        locked = PaperSession.objects.select_for_update().select_related("lane").get(pk=session.pk)
        row = SelEvaluation.objects.create(
            session=locked, lane=session.lane.name, recommendation=result["recommendation"],
            criteria=result["criteria"], evidence=result["evidence"], conventions=result["conventions"],
            comparison=result["comparison"], rules=rules, evidence_hash=result["evidence_hash"], trigger=trigger,
            created_by=actor)
        payload = {"evaluation_id": row.pk, "recommendation": row.recommendation, "failed": result["failed"],
                   "evidence_hash": row.evidence_hash, "evidence": [e["session_id"] for e in result["evidence"]],
                   "trigger": trigger, "actor": actor}
        session_events_append(session=locked, events=[(EventType.SEL_EVALUATION, timezone.now(), payload)])
        changelog_record(actor=actor, action="sel_evaluation", target_type="paper_session", target_id=session_id,
                         reason=f"{trigger}: {row.recommendation}", after=payload)
    return row


def sel_evaluate_completed(session_id: str) -> None:
    """The automatic evaluation at completion (after the final summary). Best effort: an
    evaluation that cannot run is logged; the session's end stands."""
    try:
        sel_evaluate(session_id=session_id, actor="system:sel", trigger="completion")
    except ApplicationError as exc:
        log.info("no SEL evaluation of %s at completion: %s", session_id, exc.message)


def summary_refresh_evaluated(*, session_id: str) -> dict | None:
    """``summaries.summary_refresh``; when it wrote the final summary of an ended session, the
    last roll of its rolling shadow backtests and, if it completed, the SEL evaluation (spec
    §9: evaluated when it completes)."""
    from sessions_app.services.comparisons import comparisons_roll

    data = summary_refresh(session_id=session_id)
    if data is not None and data.get("final"):
        comparisons_roll(session_id=session_id)  # its rolling shadow up to its end, when recorded already
        if PaperSession.objects.filter(session_id=session_id, status=SessionStatus.COMPLETED).exists():
            sel_evaluate_completed(session_id)
    return data
