"""Promotion requests: request → SEL evaluation → four-eyes decision → applied and logged.
The full flow into a scheduled gatecheck session with provenance; self-approval refused;
deciding twice; concurrent approvals from two processes make one transition; the override
path; a downgrade; model-status changes; clones and tags."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command

from ifns_paper.exceptions import ApplicationError, Conflict, NotFound
from sessions_app.models import ChangeLogEntry, PaperSession, PromotionRequest, RegistryEntry
from sessions_app.services.promotions import (
    Forbidden,
    FourEyes,
    promotion_decide,
    promotion_request,
    session_clone,
    session_tag,
)
from telemetry_app.models import TelemetryEvent
from tests.conftest import ROOT
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures

GATE = "gatecheck_fx_momentum_v12"


@pytest.fixture
def people(db):
    approve = Permission.objects.get(codename="approve_promotionrequest")
    users = {}
    for name, approver in (("olga", False), ("anna", True), ("bert", True)):
        users[name] = User.objects.create_user(name, password="x")
        if approver:
            users[name].user_permissions.add(approve)
    return users


def request_gatecheck(reason="evidence is in"):
    return promotion_request(kind="lane_transition", session_id=SID, target={"to_lane": "paper_gatecheck"},
                             requested_by="olga", reason=reason)


@pytest.mark.django_db(transaction=True)
def test_the_full_flow_clones_a_scheduled_gatecheck_session_with_provenance(traded, people):  # noqa: F811
    row = request_gatecheck()
    assert (row.status, row.direction, row.target["to_lane"]) == ("pending", "promote", "paper_gatecheck")
    assert row.evaluation.trigger == "promotion_request" and row.evaluation.recommendation == "extend"
    # 200 s of evidence does not recommend promotion: approving needs an override reason
    with pytest.raises(Conflict, match="recommends extend.*override reason"):
        promotion_decide(request_id=row.pk, action="approve", actor="anna", reason="ok")
    done = promotion_decide(request_id=row.pk, action="approve", actor="anna", reason="ok",
                            override_reason="demo: the desk accepts a short research run")
    assert done.status == "applied" and done.decided_by == "anna"
    assert done.override_reason == "demo: the desk accepts a short research run"
    clone = PaperSession.objects.get(session_id=done.result["session"])
    assert (clone.status, clone.lane.name) == ("scheduled", "paper_gatecheck")
    assert clone.provenance["cloned_from"] == {"session": SID, "lane": "paper_research"}
    assert clone.provenance["promotion_request"] == row.pk
    assert clone.provenance["evidence_hash"] == row.evaluation.evidence_hash
    assert RegistryEntry.objects.get(registry_id="strat.momentum_fx", version="1.3.0").status == "gatecheck"
    actions = set(ChangeLogEntry.objects.values_list("action", flat=True))
    assert {"promotion_request", "promotion_approve", "session_clone", "registry_status", "sel_evaluation"} <= actions
    events = [e.payload["event"] for e in TelemetryEvent.objects.filter(
        session__session_id=SID, event_type="promotion").order_by("sequence")]
    assert events == ["requested", "applied"]


@pytest.mark.django_db(transaction=True)
def test_four_eyes_and_roles_are_enforced_by_the_service(traded, people):  # noqa: F811
    row = request_gatecheck()
    with pytest.raises(FourEyes, match="four eyes — olga asked for it"):
        promotion_decide(request_id=row.pk, action="approve", actor="olga", reason="mine", override_reason="x")
    User.objects.get(username="olga").user_permissions.add(Permission.objects.get(codename="approve_promotionrequest"))
    with pytest.raises(FourEyes, match="four eyes"):  # even as an approver, never one's own
        promotion_decide(request_id=row.pk, action="reject", actor="olga", reason="mine")
    User.objects.create_user("carl")
    with pytest.raises(Forbidden, match="carl is not an approver"):
        promotion_decide(request_id=row.pk, action="reject", actor="carl", reason="no")
    with pytest.raises(Forbidden, match="no active user 'ghost'"):
        promotion_decide(request_id=row.pk, action="reject", actor="ghost", reason="no")
    with pytest.raises(Forbidden, match="only its requester"):
        promotion_decide(request_id=row.pk, action="withdraw", actor="anna", reason="no")
    rejected = promotion_decide(request_id=row.pk, action="reject", actor="bert", reason="too short")
    assert rejected.status == "rejected" and rejected.result is None
    with pytest.raises(Conflict, match="cannot approve a request that is rejected"):
        promotion_decide(request_id=row.pk, action="approve", actor="anna", reason="late", override_reason="x")
    assert not PaperSession.objects.filter(lane__name="paper_gatecheck", provenance__has_key="cloned_from").exists()


@pytest.mark.django_db(transaction=True)
def test_bad_requests_name_the_field(traded, people):  # noqa: F811
    with pytest.raises(ApplicationError, match="to_lane: paper_research can move to paper_gatecheck, not live_canary"):
        promotion_request(kind="lane_transition", session_id=SID, target={"to_lane": "live_canary"},
                          requested_by="olga", reason="skip a lane")
    with pytest.raises(ApplicationError, match="kind: expected one of"):
        promotion_request(kind="wish", session_id=SID, target={}, requested_by="olga", reason="r")
    with pytest.raises(ApplicationError, match="reason: required"):
        promotion_request(kind="lane_transition", session_id=SID, target={"to_lane": "paper_gatecheck"},
                          requested_by="olga", reason=" ")
    with pytest.raises(NotFound, match="no registry entry 'strat.nope'@'1'"):
        promotion_request(kind="model_status", session_id=SID, target={"registry_id": "strat.nope", "version": "1",
                                                                     "to_status": "retired"},
                          requested_by="olga", reason="r")
    assert not PromotionRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_downgrade_and_a_model_status_change_need_no_override(traded, people, bus):  # noqa: F811
    from sessions_app.services import session_transition
    from sessions_app.steps import session_step
    from tests.sessions.test_session_steps import market, publish

    session_transition(session_id=GATE, action="start", actor="t")  # some evidence of its own
    publish(bus, market(3000, seed=9, t0=1_764_000_300_000_000_000), 0, 10_000)
    session_step(session_id=GATE, client=bus)
    gate_entry = PaperSession.objects.get(session_id=GATE).strategy
    down = promotion_request(kind="lane_transition", session_id=GATE, target={"to_lane": "paper_research"},
                             requested_by="olga", reason="drifted from its backtest")
    assert down.direction == "downgrade"
    applied = promotion_decide(request_id=down.pk, action="approve", actor="anna", reason="agreed")
    assert applied.status == "applied" and applied.override_reason == ""
    assert PaperSession.objects.get(session_id=applied.result["session"]).lane.name == "paper_research"
    gate_entry.refresh_from_db()
    assert gate_entry.status == "research"
    model = RegistryEntry.objects.get(registry_id="model.momentum", version="2.1.0")
    retire = promotion_request(kind="model_status", session_id=SID,
                               target={"registry_id": "model.momentum", "version": "2.1.0", "to_status": "retired"},
                               requested_by="olga", reason="superseded")
    assert (retire.direction, retire.target["from_status"]) == ("downgrade", model.status)
    promotion_decide(request_id=retire.pk, action="approve", actor="bert", reason="ok")
    model.refresh_from_db()
    assert model.status == "retired"


APPROVE = """
import django, sys
django.setup()
from sessions_app.services.promotions import promotion_decide
from ifns_paper.exceptions import ApplicationError
try:
    promotion_decide(request_id=int(sys.argv[1]), action="approve", actor=sys.argv[2], reason="race",
                     override_reason="race test")
    print("applied")
except ApplicationError as exc:
    print("refused:", exc.message)
"""


PREPARE = """
import json
from django.contrib.auth.models import Permission, User
from sessions_app.models import PaperSession, PromotionRequest, SelEvaluation
perm = Permission.objects.get(codename="approve_promotionrequest")
User.objects.create_user("olga")
for name in ("anna", "bert"):
    User.objects.create_user(name).user_permissions.add(perm)
session = PaperSession.objects.get(session_id="%(sid)s")
evaluation = SelEvaluation.objects.create(session=session, lane="paper_research", recommendation="promote",
                                          evidence_hash="0" * 64, trigger="test", created_by="olga")
row = PromotionRequest.objects.create(kind="lane_transition", session=session, evaluation=evaluation,
                                      target={"from_lane": "paper_research", "to_lane": "paper_gatecheck"},
                                      direction="promote", requested_by="olga", reason="race")
print(json.dumps(row.pk))
"""

COUNT = """
import json
from sessions_app.models import ChangeLogEntry, PaperSession
print(json.dumps([PaperSession.objects.filter(provenance__promotion_request=%(pk)d).count(),
                  ChangeLogEntry.objects.filter(action="promotion_approve", target_id="%(pk)d").count()]))
"""


def test_concurrent_approvals_from_two_processes_make_one_transition(tmp_path):
    # real processes on a database of their own: PostgreSQL in CI (row lock), else a SQLite
    # file (IMMEDIATE transactions): either way the second approval finds the request decided
    from tests.system.procs import manage, shell_json, system_env

    with system_env(tmp_path, redis_db=12) as env:
        manage(env, "ifns_setup", "--no-demo-user")
        pk = shell_json(env, PREPARE % {"sid": SID})
        procs = [subprocess.Popen([sys.executable, "-c", APPROVE, str(pk), who], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for who in ("anna", "bert")]
        outs = sorted(p.communicate(timeout=60)[0].strip().splitlines()[-1] for p in procs)
        assert outs[0] == "applied" and outs[1].startswith("refused:") and "cannot approve" in outs[1], outs
        assert shell_json(env, COUNT % {"pk": pk}) == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_commands_drive_the_flow_and_clone_and_tag_sessions(traded, people):  # noqa: F811
    out = StringIO()
    call_command("paper_promotion", "request", SID, "--to-lane", "paper_gatecheck", "--as", "olga",
                 "--reason", "evidence", stdout=out)
    request_id = PromotionRequest.objects.get().pk
    assert f"request #{request_id}" in out.getvalue() and "recommends extend" in out.getvalue()
    with pytest.raises(CommandError, match="four eyes"):
        call_command("paper_promotion", "approve", str(request_id), "--as", "olga", "--reason", "me")
    out = StringIO()
    call_command("paper_promotion", "approve", str(request_id), "--as", "anna", "--reason", "go",
                 "--override", "short run accepted", stdout=out)
    assert "applied" in out.getvalue() and "override: short run accepted" in out.getvalue()
    listing = StringIO()
    call_command("paper_promotion", "list", stdout=listing)
    assert "applied" in listing.getvalue() and "decided by anna" in listing.getvalue()

    out = StringIO()
    call_command("paper_session", "clone", SID, "fx_momentum_rerun", "--reason", "rerun with the same data",
                 stdout=out)
    rerun = PaperSession.objects.get(session_id="fx_momentum_rerun")
    assert rerun.status == "scheduled" and rerun.provenance["cloned_from"]["session"] == SID
    assert sorted(rerun.model_links.values_list("entry__registry_id", "weight")) == sorted(
        PaperSession.objects.get(session_id=SID).model_links.values_list("entry__registry_id", "weight"))
    with pytest.raises(CommandError, match="exists; choose another"):
        call_command("paper_session", "clone", SID, "fx_momentum_rerun", "--reason", "again")
    call_command("paper_session", "tag", "fx_momentum_rerun", "ignore", "--reason", "a bad feed day", stdout=out)
    assert PaperSession.objects.get(session_id="fx_momentum_rerun").tags.count("ignore") == 1
    session_tag(session_id="fx_momentum_rerun", tag="ignore", actor="t", reason="feed fixed", remove=True)
    assert "ignore" not in PaperSession.objects.get(session_id="fx_momentum_rerun").tags
    assert ChangeLogEntry.objects.filter(action__in=["session_tag", "session_untag"]).count() == 2
    with pytest.raises(NotFound, match="lane: no lane 'paper_nowhere'"):
        session_clone(source_id=SID, new_id="x2", lane="paper_nowhere", actor="t", reason="r")


@pytest.mark.django_db(transaction=True)
def test_a_risk_envelope_change_is_validated_shown_as_a_diff_and_applied_on_approval(traded, people):  # noqa: F811
    from sessions_app.models import RiskEnvelope

    with pytest.raises(ApplicationError) as err:
        promotion_request(kind="risk_envelope", session_id=SID, requested_by="olga", reason="tighter",
                          target={"lane": "paper_research",
                                  "changes": {"max_order_notional": "-5", "max_drawdown_pct": "250"}})
    assert "max_order_notional" in err.value.message and "max_drawdown_pct" in err.value.message  # both at once
    with pytest.raises(ApplicationError, match="unknown field"):
        promotion_request(kind="risk_envelope", session_id=SID, requested_by="olga", reason="r",
                          target={"lane": "paper_research", "changes": {"max_leverage": 3}})
    out = StringIO()
    call_command("paper_promotion", "request", SID, "--envelope", "paper_research", "--set", "max_order_notional=150000",
                 "--set", "max_orders_per_minute=60", "--as", "olga", "--reason", "tighter for the next phase",
                 stdout=out)
    row = PromotionRequest.objects.get()
    assert row.target == {"lane": "paper_research",
                          "before": {"max_order_notional": "250000", "max_orders_per_minute": 120},
                          "after": {"max_order_notional": "150000", "max_orders_per_minute": 60}}
    assert float(RiskEnvelope.objects.get(lane__name="paper_research").max_order_notional) == 250_000  # not yet
    promotion_decide(request_id=row.pk, action="approve", actor="anna", reason="reviewed",
                     override_reason="envelope tightening needs no track record")
    envelope = RiskEnvelope.objects.get(lane__name="paper_research")
    assert (float(envelope.max_order_notional), envelope.max_orders_per_minute) == (150_000, 60)
    assert ChangeLogEntry.objects.filter(action="risk_envelope", target_id="paper_research").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_execution_policy_adjustment_is_validated_and_applied_on_approval(traded, people):  # noqa: F811
    from broker_app.services import policy_values

    with pytest.raises(ApplicationError) as err:
        promotion_request(kind="execution_policy", session_id=SID, requested_by="olga", reason="r",
                          target={"policy_id": "immediate", "changes": {"time_in_force": "FOREVER", "urgency": "now"}})
    assert "time_in_force" in err.value.message and "urgency" in err.value.message  # every bad field at once
    with pytest.raises(ApplicationError, match="a limit policy needs limit_offset_bps"):  # and the file's rules
        promotion_request(kind="execution_policy", session_id=SID, requested_by="olga", reason="r",
                          target={"policy_id": "immediate", "changes": {"order_type": "limit"}})
    with pytest.raises(ApplicationError, match="route: no route 'SIM_NOWHERE'"):
        promotion_request(kind="execution_policy", session_id=SID, requested_by="olga", reason="r",
                          target={"policy_id": "immediate", "changes": {"route": "SIM_NOWHERE"}})
    out = StringIO()
    call_command("paper_promotion", "request", SID, "--policy", "immediate", "--set", "route=SIM_CHAOS",
                 "--as", "olga", "--reason", "try the chaotic route", stdout=out)
    row = PromotionRequest.objects.get()
    assert row.target == {"policy_id": "immediate", "before": {"route": "SIM_TOUCH"}, "after": {"route": "SIM_CHAOS"}}
    promotion_decide(request_id=row.pk, action="approve", actor="bert", reason="ok", override_reason="experiment")
    assert policy_values(policy_id="immediate")["route"] == "SIM_CHAOS"
    assert ChangeLogEntry.objects.filter(action="execution_policy", target_id="immediate").count() == 1
