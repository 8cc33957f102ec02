"""Promotions (spec §8.2, §9): request → SEL evaluation attached → four-eyes approval or
rejection → applied and logged; and the session clones and tags they rest on.

Every step is one call in one transaction holding the request's row lock, with its
change-log entry and a ``promotion`` telemetry event on the evidence session (who asked,
who decided, when, the evaluation and its evidence hash). Concurrent decisions on one
request produce exactly one transition: the second finds it no longer pending.

**Four eyes**: approving and rejecting need a user with the ``approve_promotionrequest``
permission (the approver role) who is not the requester — enforced here, whatever the
caller. Approving against an evaluation that does not recommend the move (``promote`` for
a promotion; any recommendation is evidence enough for a downgrade) needs an override
reason, kept on the request.

**A risk envelope change** names a lane and new values for some of its envelope fields;
they are validated like ``paper.yaml`` (every bad field at once) and kept as a before/after
diff; approval applies them unless the envelope moved meanwhile. Its evidence is the
session that ran with the proposed values (e.g. a research session cloned with them).

**Applying a lane transition**: the strategy's registry entry takes the target lane's status
(``governance.LANE_STATUS``); into a paper lane, a new ``scheduled`` session is cloned from
the evidence session, with its provenance; into ``live_canary``, the hand-off to Stage 07 is
recorded (nothing is sent to any broker). A model-status request sets the registry entry's
status along ``governance.MODEL_STATUS_MOVES``.
"""

from __future__ import annotations

import json
import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from ifns_paper.governance import (
    LANE_STATUS,
    LANES,
    MODEL_STATUS_MOVES,
    IllegalMove,
    RequestAction,
    RequestKind,
    RequestStatus,
    lane_move,
    next_status,
)
from sessions_app.models import (
    Backtest,
    Lane,
    PaperSession,
    PromotionRequest,
    RegistryEntry,
    SessionModel,
)
from sessions_app.registry import registry_export_after_commit
from sessions_app.services.changelog import changelog_record, plain
from sessions_app.services.events import session_events_append
from sessions_app.services.sel import sel_evaluate
from telemetry_app.choices import EventType

APPROVE_PERMISSION = "sessions_app.approve_promotionrequest"
STATUS_ORDER = ("candidate", "research", "gatecheck", "live_canary", "live", "retired")
TAGS = ("promotion_evidence", "ignore")


class Forbidden(ApplicationError):
    status_code = 403


class FourEyes(Conflict):
    """The requester of a promotion tried to decide it (409: the request's state forbids it)."""


def _user(username: str, *, role: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise Forbidden(f"{role}: no active user {username!r}")
    return user


# --- session clones and tags --------------------------------------------------------------


def session_clone(*, source_id: str, new_id: str, actor: str, reason: str, lane: str | None = None,
                  provenance: dict | None = None) -> PaperSession:
    """A new ``scheduled`` session with ``source_id``'s definition, in ``lane`` (default: the
    same), its provenance recorded. ``Conflict`` when ``new_id`` exists."""
    if not reason.strip():
        raise ApplicationError("reason: required")
    with transaction.atomic():
        source = PaperSession.objects.select_related("lane").filter(session_id=source_id).first()
        if source is None:
            raise NotFound(f"no session {source_id!r}")
        if PaperSession.objects.filter(session_id=new_id).exists():
            raise Conflict(f"session_id: {new_id!r} exists; choose another")
        target_lane = source.lane if lane is None else Lane.objects.filter(name=lane).first()
        if target_lane is None:
            raise NotFound(f"lane: no lane {lane!r}")
        links = list(SessionModel.objects.filter(session=source))
        clone = PaperSession.objects.get(pk=source.pk)
        clone.pk, clone.session_id, clone.lane = None, new_id, target_lane
        clone._state.adding = True
        clone.status = "scheduled"
        clone.start_at = clone.started_at = clone.paused_at = clone.resumed_at = clone.ended_at = None
        clone.last_event_seq, clone.last_fault, clone.last_fault_at = 0, "", None
        clone.config_file, clone.config_hash = "", ""
        clone.tags = [t for t in (source.tags or []) if t not in TAGS]
        clone.provenance = {"cloned_from": {"session": source_id, "lane": source.lane.name}, **(provenance or {})}
        clone.save()
        SessionModel.objects.bulk_create([SessionModel(session=clone, entry_id=link.entry_id, weight=link.weight)
                                          for link in links])
        changelog_record(actor=actor, action="session_clone", target_type="paper_session", target_id=new_id,
                         reason=reason, after={"from": source_id, "lane": target_lane.name,
                                               "provenance": clone.provenance})
        transaction.on_commit(registry_export_after_commit)
    return clone


def backtest_definition(backtest_id: str) -> tuple[str, dict]:
    """A session definition to clone a completed backtest into paper: YAML text for an
    operator to review and register, and the provenance to record with it.

    A backtest that belongs to a session (a shadow run, or an import naming its session)
    gives that session's definition. An imported backtest without one gives its strategy and
    symbols; feed, execution policy and sizing come from the newest session trading those
    symbols (the same strategy preferred), named in the text's header to be checked."""
    import yaml

    from sessions_app.services.backtests import backtest_files
    from sessions_app.services.config import session_definition

    row = Backtest.objects.select_related("session", "strategy").filter(backtest_id=backtest_id).first()
    if row is None:
        raise NotFound(f"backtest: no backtest {backtest_id!r}")
    if row.status != Backtest.Status.COMPLETED:
        raise Conflict(f"backtest: {backtest_id} is {row.status}; only a completed backtest can be cloned")
    header = [f"# Cloned from {row.get_kind_display()} {backtest_id}"]
    if row.session is not None:
        template, symbols = row.session, list(row.session.symbols)
        header.append(f"# definition of session {template.session_id}, which it was run {'for' if row.kind == 'shadow' else 'beside'}")
    else:
        meta_path = backtest_files(row) / "source_summary.json"
        symbols = json.loads(meta_path.read_text()).get("symbols", []) if meta_path.is_file() else []
        sessions = list(PaperSession.objects.select_related("strategy").order_by("-created_at", "-id"))
        ranked = sorted(sessions, key=lambda s: (not set(symbols) <= set(s.symbols),
                                                 s.strategy.registry_id != row.strategy.registry_id))
        if not ranked:
            raise Conflict("backtest: no session to take a feed, an execution policy and sizing from; register one first")
        template = ranked[0]
        header.append(f"# strategy and symbols from the backtest; feed, execution policy, models and sizing from "
                      f"session {template.session_id}: check them")
    doc = session_definition(template)
    base = re.sub(r"[^a-z0-9_]+", "_", backtest_id.lower()).strip("_")[:48] or "backtest"
    new_id, n = f"{base}_paper" if base[0].isalpha() else f"bt_{base}_paper", 2
    while PaperSession.objects.filter(session_id=new_id).exists():
        new_id, n = f"{base}_paper_{n}", n + 1
    doc["session_id"] = new_id
    doc["objective"] = f"Paper run of {row.get_kind_display()} {backtest_id}: does it hold in real time? " \
                       f"{template.objective}"
    if row.strategy is not None:
        doc["strategy"] = {"registry_id": row.strategy.registry_id, "version": row.strategy.version}
    if symbols:
        doc["symbols"] = symbols
        lots = doc["sizing"].get("lot_sizes") or {}
        doc["sizing"]["lot_sizes"] = {s: lots[s] for s in symbols if s in lots}
    doc["tags"] = [t for t in doc["tags"] if t not in TAGS]
    text = "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    provenance = {"cloned_from": {"backtest": backtest_id, "kind": row.kind, "definition_of": template.session_id}}
    return text, provenance


def session_tag(*, session_id: str, tag: str, actor: str, reason: str, remove: bool = False) -> PaperSession:
    """Tag a session as ``promotion_evidence`` or ``ignore`` (spec §5.3), or remove the tag."""
    if tag not in TAGS:
        raise ApplicationError(f"tag: expected one of {', '.join(TAGS)}, got {tag!r}")
    if not reason.strip():
        raise ApplicationError("reason: required")
    with transaction.atomic():
        session = PaperSession.objects.select_for_update().filter(session_id=session_id).first()
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        before = list(session.tags or [])
        after = [t for t in before if t != tag] if remove else before + ([tag] if tag not in before else [])
        if after != before:
            session.tags = after
            session.save(update_fields=["tags", "updated_at"])
            changelog_record(actor=actor, action="session_untag" if remove else "session_tag",
                             target_type="paper_session", target_id=session_id, reason=reason,
                             before={"tags": before}, after={"tags": after})
            transaction.on_commit(registry_export_after_commit)
    return session


# --- requests ------------------------------------------------------------------------------


def promotion_request(*, kind: str, session_id: str, target: dict, requested_by: str,
                      reason: str) -> PromotionRequest:
    """Open a request, with a fresh SEL evaluation of its evidence session attached."""
    try:
        kind = RequestKind(kind)
    except ValueError:
        raise ApplicationError(f"kind: expected one of {', '.join(k.value for k in RequestKind)}, "
                               f"got {kind!r}") from None
    if not reason.strip():
        raise ApplicationError("reason: required")
    _user(requested_by, role="requested_by")
    session = PaperSession.objects.select_related("lane", "strategy").filter(session_id=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    direction = ""
    if kind is RequestKind.LANE_TRANSITION:
        to_lane = (target or {}).get("to_lane")
        try:
            direction = lane_move(session.lane.name, to_lane)
        except IllegalMove as exc:
            raise ApplicationError(str(exc)) from None
        target = {"from_lane": session.lane.name, "to_lane": to_lane,
                  "strategy": f"{session.strategy.registry_id}@{session.strategy.version}"}
    elif kind is RequestKind.RISK_ENVELOPE:
        target = _envelope_change(target or {})
        direction = "change"
    elif kind is RequestKind.EXECUTION_POLICY:
        target = _policy_change(target or {})
        direction = "change"
    else:
        entry = _registry_entry(target)
        to_status = (target or {}).get("to_status")
        if to_status not in MODEL_STATUS_MOVES.get(entry.status, set()):
            raise ApplicationError(f"to_status: {entry} is {entry.status}; it may move to "
                                   f"{', '.join(sorted(MODEL_STATUS_MOVES.get(entry.status, ()))) or 'nothing'}, "
                                   f"not {to_status!r}")
        target = {"registry_id": entry.registry_id, "version": entry.version, "from_status": entry.status,
                  "to_status": to_status}
        direction = "downgrade" if to_status == "retired" or \
            STATUS_ORDER.index(to_status) < STATUS_ORDER.index(entry.status) else "promote"
    evaluation = sel_evaluate(session_id=session_id, actor=requested_by, trigger="promotion_request")
    with transaction.atomic():
        row = PromotionRequest.objects.create(kind=kind.value, session=session, target=target, direction=direction,
                                              evaluation=evaluation, requested_by=requested_by, reason=reason)
        _event(row, "requested", requested_by)
        changelog_record(actor=requested_by, action="promotion_request", target_type="promotion_request",
                         target_id=str(row.pk), reason=reason,
                         after={"kind": kind.value, "session": session_id, "target": target, "direction": direction,
                                "evaluation": evaluation.pk, "recommendation": evaluation.recommendation,
                                "evidence_hash": evaluation.evidence_hash})
    return row


def _event(row: PromotionRequest, what: str, actor: str) -> None:
    """A ``promotion`` event on the evidence session's telemetry stream."""
    session = PaperSession.objects.select_for_update().select_related("lane").get(pk=row.session_id)
    session_events_append(session=session, events=[(EventType.PROMOTION, timezone.now(), {
        "request_id": row.pk, "kind": row.kind, "event": what, "status": row.status if what == "requested" else what,
        "target": row.target, "direction": row.direction, "actor": actor, "evaluation_id": row.evaluation_id,
        "evidence_hash": row.evaluation.evidence_hash})])


ENVELOPE_FIELDS = ("max_order_notional", "max_position_notional_per_symbol", "max_gross_exposure", "max_net_exposure",
                   "max_daily_loss", "max_drawdown_pct", "max_orders_per_minute", "price_collar_bps")


def _field_changes(target: dict, *, what: str, fields, spec, before: dict | None, missing: str,
                   same=lambda a, b: a == b) -> tuple[dict, dict]:
    """``target["changes"]`` applied to ``before`` and validated whole by the config schema
    ``spec`` (every bad field at once): the changed fields' values before and after. ``what``
    names the thing in messages ("the lane's envelope"); ``missing`` is the NotFound message
    when ``before`` is None."""
    from pydantic import ValidationError

    changes = target.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise ApplicationError(f"changes: a mapping of {what} fields to new values is required")
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise ApplicationError(f"changes: unknown field(s) {', '.join(unknown)} (fields: {', '.join(fields)})")
    if before is None:
        raise NotFound(missing)
    try:
        after = spec.model_validate({**before, **changes}).model_dump(mode="json")
    except ValidationError as exc:
        raise ApplicationError("changes: " + "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or what}: {e['msg']}" for e in exc.errors())) from None
    changed = [f for f in fields if not same(after.get(f), before.get(f))]
    if not changed:
        raise ApplicationError(f"changes: {what} has these values already")
    return {f: before[f] for f in changed}, {f: after[f] for f in changed}


def _envelope_change(target: dict) -> dict:
    """``{"lane", "changes": {field: value}}`` validated like ``paper.yaml``'s ``risk_envelope``
    (every bad field at once): the lane's envelope before and after, changed fields only."""
    from ifns_paper.config.schema import RiskEnvelope as EnvelopeSpec
    from sessions_app.models import RiskEnvelope

    row = RiskEnvelope.objects.filter(lane__name=target.get("lane")).first()
    before, after = _field_changes(
        target, what="the lane's envelope", fields=ENVELOPE_FIELDS, spec=EnvelopeSpec,
        before=None if row is None else {f: plain(getattr(row, f)) for f in ENVELOPE_FIELDS},
        missing=f"lane: no lane {target.get('lane')!r}", same=lambda a, b: float(a) == float(b))
    return {"lane": target["lane"], "before": before, "after": after}


def _policy_change(target: dict) -> dict:
    """``{"policy_id", "changes": {field: value}}`` validated like ``execution_policies.json``
    (every bad field at once; the route must exist): before and after, changed fields only."""
    from broker_app.models import ExecutionRoute
    from broker_app.services import POLICY_FIELDS, policy_values
    from ifns_paper.config.schema import ExecutionPolicy as PolicySpec

    before, after = _field_changes(
        target, what="the policy", fields=POLICY_FIELDS, spec=PolicySpec,
        before=policy_values(policy_id=target.get("policy_id") or ""),
        missing=f"policy_id: no execution policy {target.get('policy_id')!r}")
    if "route" in after and not ExecutionRoute.objects.filter(route_id=after["route"]).exists():
        raise ApplicationError(f"changes: route: no route {after['route']!r}")
    return {"policy_id": target["policy_id"], "before": before, "after": after}


def _registry_entry(target: dict) -> RegistryEntry:
    entry = RegistryEntry.objects.filter(registry_id=(target or {}).get("registry_id"),
                                         version=(target or {}).get("version")).first()
    if entry is None:
        raise NotFound(f"target: no registry entry {(target or {}).get('registry_id')!r}@"
                       f"{(target or {}).get('version')!r}")
    return entry


def promotion_decide(*, request_id: int, action: str, actor: str, reason: str,
                     override_reason: str = "") -> PromotionRequest:
    """Approve (and apply), reject or withdraw a request; see the module docstring."""
    if not reason.strip():
        raise ApplicationError("reason: required")
    user = _user(actor, role="actor")
    with transaction.atomic():
        row = (PromotionRequest.objects.select_for_update().select_related("session__lane", "session__strategy",
                                                                             "evaluation")
               .filter(pk=request_id).first())
        if row is None:
            raise NotFound(f"no promotion request #{request_id}")
        try:
            status = next_status(row.status, action)
        except IllegalMove as exc:
            raise Conflict(f"#{request_id}: {exc}") from None
        act = RequestAction(action)
        if act is RequestAction.WITHDRAW:
            if actor != row.requested_by:
                raise Forbidden(f"#{request_id}: only its requester ({row.requested_by}) can withdraw it")
        else:
            if actor == row.requested_by:
                raise FourEyes(f"#{request_id}: four eyes — {actor} asked for it and cannot {act.value} it")
            if not user.has_perm(APPROVE_PERMISSION):
                raise Forbidden(f"#{request_id}: {actor} is not an approver")
        failing = act is RequestAction.APPROVE and row.direction in ("promote", "change") and \
            row.evaluation.recommendation != "promote"
        if failing and not override_reason.strip():
            failed = [c["criterion"] for c in row.evaluation.criteria if not c["pass"]]
            raise Conflict(f"#{request_id}: the evidence recommends {row.evaluation.recommendation} "
                           f"(failing: {', '.join(failed)}); approve with an override reason to go ahead")
        result = _apply(row, actor) if act is RequestAction.APPROVE else None
        row.status, row.decided_by, row.decided_at = status.value, actor, timezone.now()
        row.decision_reason = reason
        row.override_reason = override_reason if failing else ""
        row.result = result
        row.save()
        _event(row, status.value, actor)
        changelog_record(actor=actor, action=f"promotion_{act.value}", target_type="promotion_request",
                         target_id=str(row.pk), reason=reason,
                         before={"status": RequestStatus.PENDING.value},
                         after={"status": status.value, "override_reason": row.override_reason or None,
                                "result": result, "evidence_hash": row.evaluation.evidence_hash})
    return row


def _apply(row: PromotionRequest, actor: str) -> dict:
    """Make the change a request asks for (inside its transaction)."""
    if row.kind == RequestKind.RISK_ENVELOPE:
        from sessions_app.models import RiskEnvelope

        envelope = RiskEnvelope.objects.select_for_update().get(lane__name=row.target["lane"])
        now = {f: plain(getattr(envelope, f)) for f in row.target["before"]}
        if any(float(now[f]) != float(v) for f, v in row.target["before"].items()):
            raise Conflict(f"#{row.pk}: the envelope of {row.target['lane']} changed since the request: {now}")
        for f, v in row.target["after"].items():
            setattr(envelope, f, v)
        envelope.save()
        changelog_record(actor=actor, action="risk_envelope", target_type="risk_envelope",
                         target_id=row.target["lane"], reason=f"promotion request #{row.pk}",
                         before=row.target["before"], after=row.target["after"])
        return {"risk_envelope": {"lane": row.target["lane"], "before": row.target["before"],
                                  "after": row.target["after"]}}
    if row.kind == RequestKind.EXECUTION_POLICY:
        from broker_app.services import policy_update, policy_values

        now = policy_values(policy_id=row.target["policy_id"]) or {}
        if any(now.get(f) != v for f, v in row.target["before"].items()):
            raise Conflict(f"#{row.pk}: policy {row.target['policy_id']} changed since the request")
        policy_update(policy_id=row.target["policy_id"], values=row.target["after"])
        changelog_record(actor=actor, action="execution_policy", target_type="execution_policy",
                         target_id=row.target["policy_id"], reason=f"promotion request #{row.pk}",
                         before=row.target["before"], after=row.target["after"])
        return {"execution_policy": {"policy_id": row.target["policy_id"], "before": row.target["before"],
                                     "after": row.target["after"]}}
    if row.kind == RequestKind.MODEL_STATUS:
        entry = RegistryEntry.objects.select_for_update().get(registry_id=row.target["registry_id"],
                                                             version=row.target["version"])
        if entry.status != row.target["from_status"]:
            raise Conflict(f"#{row.pk}: {entry} is {entry.status} now, not {row.target['from_status']}")
        return {"registry_entry": _set_status(entry, row.target["to_status"], actor, row)}
    session = row.session
    to_lane = row.target["to_lane"]
    strategy = RegistryEntry.objects.select_for_update().get(pk=session.strategy_id)
    result = {"registry_entry": _set_status(strategy, LANE_STATUS[to_lane], actor, row)}
    if to_lane == LANES[-1]:
        result["handoff"] = {"to": "Stage 07 (live canary)", "strategy": str(strategy), "evidence_session":
                             session.session_id, "note": "recorded only; nothing is sent to any broker"}
        return result
    base = f"{session.session_id}-{to_lane.removeprefix('paper_')}"
    new_id, n = base[:64], 1
    while PaperSession.objects.filter(session_id=new_id).exists():
        n += 1
        new_id = f"{base[:60]}-{n}"
    clone = session_clone(source_id=session.session_id, new_id=new_id, lane=to_lane, actor=actor,
                          reason=f"promotion request #{row.pk}",
                          provenance={"promotion_request": row.pk, "evaluation": row.evaluation_id,
                                      "evidence_hash": row.evaluation.evidence_hash, "direction": row.direction})
    result["session"] = clone.session_id
    return result


def _set_status(entry: RegistryEntry, status: str, actor: str, row: PromotionRequest) -> dict:
    before = entry.status
    if before != status:
        entry.status = status
        entry.save(update_fields=["status", "updated_at"])
        changelog_record(actor=actor, action="registry_status", target_type="registry_entry", target_id=str(entry),
                         reason=f"promotion request #{row.pk}", before={"status": before}, after={"status": status})
    return {"entry": str(entry), "from": before, "to": status}
