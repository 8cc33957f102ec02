"""SEL evaluations of sessions: on demand and at completion, recorded with a telemetry event
and a change-log entry, served by the API and the registry link; evidence sessions tagged
``promotion_evidence`` count, those tagged ``ignore`` do not."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from sessions_app.models import ChangeLogEntry, PaperSession, SelEvaluation
from sessions_app.registry import session_links
from sessions_app.services import session_transition
from sessions_app.services.sel import sel_evaluate
from sessions_app.services.summaries import summary_compute
from telemetry_app.models import TelemetryEvent
from telemetry_app.services import summary_record
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures


def by_name(row):
    return {c["criterion"]: c for c in row.criteria}


@pytest.mark.django_db(transaction=True)
def test_an_evaluation_on_demand_is_recorded_with_its_event_and_change_log(traded, client, reader):  # noqa: F811
    row = sel_evaluate(session_id=SID, actor="cli:alice")
    # 200 s of market against min 5 days and 200 trades, too few returns for a Sharpe ratio:
    # only the sample is short → extend
    c = by_name(row)
    assert not c["min_days"]["pass"] and c["min_days"]["threshold"] == 5
    assert 0 < c["min_days"]["value"] < 200 / 86_400
    assert not c["min_trades"]["pass"] and c["min_sharpe"]["value"] is None
    assert c["max_breaches"]["pass"] and c["min_hit_rate"]["pass"]
    assert row.rules["min_trades"] == 200 and row.evidence == [
        {"session_id": SID, "as_of": row.evidence[0]["as_of"], "final": False}]
    assert row.recommendation == "extend"
    event = TelemetryEvent.objects.get(session__session_id=SID, event_type="sel_evaluation")
    assert event.payload["evaluation_id"] == row.pk and event.payload["evidence_hash"] == row.evidence_hash
    assert ChangeLogEntry.objects.filter(action="sel_evaluation", target_id=SID, actor="cli:alice").exists()
    # served, and the registry link resolves to it
    link = session_links(SID)["sel_evaluations"]
    response = reader.get("/" + link.split("://", 1)[-1].split("/", 1)[1])
    assert response.status_code == 200 and response.json()["evaluations"][0]["id"] == row.pk
    out = StringIO()
    call_command("paper_sel", "list", SID, stdout=out)
    assert f"#{row.pk}" in out.getvalue() and row.recommendation in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_completed_session_is_evaluated_with_its_final_summary(traded, django_capture_on_commit_callbacks):  # noqa: F811
    from sessions_app.tasks import summary_refresh as summary_task

    session_transition(session_id=SID, action="stop", actor="t", reason="done")
    summary_task(SID)  # what the worker runs after the state change
    row = SelEvaluation.objects.get(session__session_id=SID)
    assert (row.trigger, row.created_by) == ("completion", "system:sel")
    assert row.evidence[0]["final"] is True


def _clone(template: PaperSession, session_id: str, tags: list[str]) -> PaperSession:
    s = PaperSession.objects.get(pk=template.pk)
    s.pk, s.session_id, s.tags = None, session_id, tags
    s._state.adding = True
    s.save()
    return s


@pytest.mark.django_db(transaction=True)
def test_evidence_sessions_tagged_for_promotion_count_and_ignored_ones_do_not(traded):  # noqa: F811
    template = PaperSession.objects.get(session_id=SID)
    own = summary_compute(session_id=SID, final=False)
    for sid, tags in (("evidence_run_2", ["promotion_evidence"]), ("noise_run_3", ["promotion_evidence", "ignore"]),
                      ("untagged_run_4", [])):
        other = _clone(template, sid, tags)
        summary_record(session_pk=other.pk, as_of_ns=own["as_of"], final=True,
                       data={**own, "session_id": sid, "final": True})
    row = sel_evaluate(session_id=SID, actor="t")
    assert [e["session_id"] for e in row.evidence] == [SID, "evidence_run_2"]
    assert by_name(row)["min_trades"]["value"] == 2 * own["trades"]["trades"]
    # tagging the evidence session `ignore` takes it out, and the evidence hash changes
    PaperSession.objects.filter(session_id="evidence_run_2").update(tags=["promotion_evidence", "ignore"])
    again = sel_evaluate(session_id=SID, actor="t")
    assert [e["session_id"] for e in again.evidence] == [SID] and again.evidence_hash != row.evidence_hash
    # an ignored session is not evaluated at all
    from ifns_paper.exceptions import Conflict

    with pytest.raises(Conflict, match="tagged 'ignore'"):
        sel_evaluate(session_id="evidence_run_2", actor="t")
