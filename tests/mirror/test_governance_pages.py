"""Promotions, the lane dashboard and the change log in the browser's pages (server side):
an operator requests, the requester gets no approve button and the server refuses them
anyway, an approver approves with an override, every step lands in the change log."""

from __future__ import annotations

import re

import pytest

from sessions_app.models import ChangeLogEntry, PromotionRequest
from tests.conftest import role_user, signed_in
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures


@pytest.mark.django_db(transaction=True)
def test_request_four_eyes_and_approval_in_the_pages(traded, django_user_model):  # noqa: F811
    ada = signed_in(role_user(django_user_model, "ada", "admin"))  # may approve, but not her own
    anna = signed_in(role_user(django_user_model, "anna", "approver"))
    vic = signed_in(role_user(django_user_model, "vic", "viewer"))

    # the viewer sees the list but no request form, and cannot post one
    listing = vic.get("/promotions/").content.decode()
    assert "Request a lane transition" not in listing
    assert vic.post("/promotions/new/", {"session_id": SID, "to_lane": "paper_gatecheck",
                                         "reason": "x"}).status_code == 403

    # a request without a reason is refused, naming the field, and writes nothing
    refused = ada.post("/promotions/new/", {"session_id": SID, "to_lane": "paper_gatecheck", "reason": ""},
                       follow=True)
    assert "reason" in refused.content.decode() and not PromotionRequest.objects.exists()

    opened = ada.post("/promotions/new/", {"session_id": SID, "to_lane": "paper_gatecheck",
                                           "reason": "evidence is in"}, follow=True)
    row = PromotionRequest.objects.get()
    assert opened.redirect_chain[-1][0] == f"/promotions/{row.pk}/"
    page = opened.content.decode()
    assert f"promotion request #{row.pk} opened: SEL recommends {row.evaluation.recommendation}" in page
    # the SEL criteria, one row each with its verdict
    criteria = re.findall(r'<tr class="(pass|fail)"><td>([a-z_]+)</td>', page)
    assert [name for _, name in criteria] == [c["criterion"] for c in row.evaluation.criteria]
    assert [v == "pass" for v, _ in criteria] == [c["pass"] for c in row.evaluation.criteria]
    # four eyes: no approve button for the requester, and the server refuses it
    assert 'value="approve"' not in page and "another approver decides" in page
    mine = ada.post(f"/promotions/{row.pk}/decision/", {"action": "approve", "reason": "mine",
                                                         "override_reason": "x"}, follow=True)
    assert "four eyes" in mine.content.decode()
    row.refresh_from_db()
    assert row.status == "pending"

    # the approver sees the buttons; against failing evidence an override reason is required
    page = anna.get(f"/promotions/{row.pk}/").content.decode()
    assert 'value="approve"' in page and 'name="override_reason"' in page
    no_override = anna.post(f"/promotions/{row.pk}/decision/", {"action": "approve", "reason": "ok"}, follow=True)
    assert "override" in no_override.content.decode()
    done = anna.post(f"/promotions/{row.pk}/decision/", {"action": "approve", "reason": "ok",
                                                          "override_reason": "short research run accepted"},
                     follow=True)
    row.refresh_from_db()
    assert (row.status, row.decided_by, row.override_reason) == ("applied", "anna", "short research run accepted")
    assert f"promotion request #{row.pk}: applied" in done.content.decode()

    # the change log page shows both steps, filterable by action
    log = vic.get("/changelog/?action=promotion_approve").content.decode()
    assert re.findall(r"<td>(promotion_[a-z]+)</td>", log) == ["promotion_approve"]
    assert "short research run accepted" in log or "ok" in log
    assert ChangeLogEntry.objects.filter(action="promotion_request", actor="ada").exists()


@pytest.mark.django_db(transaction=True)
def test_lane_dashboard_shows_totals_and_the_funnel(traded, django_user_model):  # noqa: F811
    from sessions_app.services.summaries import summary_refresh

    summary = summary_refresh(session_id=SID)
    vic = signed_in(role_user(django_user_model, "vic", "viewer"))
    page = vic.get("/lanes/paper_research/").content.decode()
    assert "Promotion funnel" in page
    # the traded session is a candidate with one progress bar per lane criterion
    row = page.split(f'data-candidate="{SID}"', 1)[1].split("</tr>", 1)[0]
    assert row.count('role="progressbar"') >= 3  # min_days, min_trades, max_breaches at least
    assert "min_trades" in row
    # min_trades' bar: the session's round trips over the lane's 200 (paper.yaml), in percent
    trades = summary["trades"]["trades"]
    bar = re.search(r'aria-valuenow="(\d+)" aria-label="min_trades"', row)
    assert int(bar.group(1)) == round(min(trades, 200) / 200 * 100)
    # the lane's totals are the session's (the only one with a summary)
    assert f"{summary['trades']['trades']} · " in page
    assert vic.get("/lanes/nowhere/").status_code == 404
    assert vic.get("/lanes/paper_research/?window=forever").status_code == 400
