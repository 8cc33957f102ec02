"""The tearsheet: a session's drill-down as one HTML file that needs no network."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command

from broker_app.models import PaperFill
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures


@pytest.mark.django_db(transaction=True)
def test_paper_report_html_writes_a_self_contained_tearsheet(traded, tmp_path):  # noqa: F811
    from sessions_app.services.summaries import summary_refresh

    summary = summary_refresh(session_id=SID)
    path = tmp_path / "tearsheet.html"
    call_command("paper_report", SID, "--html", str(path))
    html = path.read_text()
    # nothing to fetch: no external script, stylesheet or image
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', html)
    assert "createChart" in html and "uPlot" in html  # the charting code is inlined
    assert "PAPER" in html and SID in html
    # the charts' data is the session's: every fill, and the summary's figures in the banner
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S)
                      .group(1))
    assert len(data["fills"]) == PaperFill.objects.filter(session__session_id=SID).count() > 0
    assert f"{summary['fills']['count']}" in html


def test_paper_report_html_needs_a_known_session(loaded, tmp_path):
    with pytest.raises(CommandError, match="no paper session 'nope'"):
        call_command("paper_report", "nope", "--html", str(tmp_path / "x.html"))
    assert not (tmp_path / "x.html").exists()


def test_the_page_offers_the_download(loaded, client):
    page = client.get("/sessions/research_fx_momentum_v13/").content.decode()
    assert 'href="/sessions/research_fx_momentum_v13/tearsheet/" download' in page
    response = client.get("/sessions/research_fx_momentum_v13/tearsheet/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="tearsheet_research_fx_momentum_v13.html"'
