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
    # the equity line ends where the summary stands: its time (whole seconds) and equity (cents)
    assert data["equity"][-1] == [summary["as_of"] // 1_000_000_000, round(summary["pnl"]["equity"], 2)]


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


@pytest.mark.django_db(transaction=True)
def test_the_event_stream_pages_back_and_filters(traded, client):  # noqa: F811
    from telemetry_app.models import TelemetryEvent

    def sequences(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<tr data-sequence="(\d+)"', html)]

    everything = list(TelemetryEvent.objects.filter(session__session_id=SID).order_by("-sequence")
                      .values_list("sequence", flat=True))
    first = client.get(f"/sessions/{SID}/").content.decode()
    shown = sequences(first.split('id="events"', 1)[1])
    assert shown == everything[:50]  # newest first
    older = client.get(f"/sessions/{SID}/events/?before={shown[-1]}").content.decode()
    assert sequences(older) == everything[50:100]
    # live: what came after the newest row (nothing new here)
    assert sequences(client.get(f"/sessions/{SID}/events/?after={shown[0]}").content.decode()) == []
    # filtered: fills only, and the next page keeps the filter
    fills = client.get(f"/sessions/{SID}/events/?type=order_filled").content.decode()
    expected = list(TelemetryEvent.objects.filter(session__session_id=SID, event_type="order_filled")
                    .order_by("-sequence").values_list("sequence", flat=True))
    assert sequences(fills) == expected[:50]
    if len(expected) > 50:
        assert "type=order_filled" in fills.split('class="older"', 1)[1]
    assert client.get(f"/sessions/{SID}/events/?type=bogus").status_code == 400
    assert client.get(f"/sessions/{SID}/events/?before=x").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_overview_sparkline_is_the_last_hour_of_whole_minutes(traded, client):  # noqa: F811
    from sessions_app.services.summaries import summary_refresh
    from telemetry_app.models import EquitySample, SessionSummary

    summary_refresh(session_id=SID)
    samples = list(EquitySample.objects.filter(session__session_id=SID).order_by("ts_ns")
                   .values_list("ts_ns", "equity"))
    expected = [e for t, e in samples if t % 60_000_000_000 == 0]
    if samples[-1][0] % 60_000_000_000:
        expected.append(samples[-1][1])  # and the newest sample
    stored = SessionSummary.objects.filter(session__session_id=SID).latest("id").spark
    assert stored == [round(e, 2) for e in expected[-60:]] and len(stored) >= 2
    row = client.get("/").content.decode().split(f'data-session="{SID}"', 1)[1].split("</tr>", 1)[0]
    points = re.search(r'<polyline points="([^"]+)"', row).group(1).split()
    assert len(points) == len(stored)


@pytest.mark.django_db(transaction=True)
def test_the_drilldown_shows_slippage_per_route_and_the_shortfall_breakdown(traded, client):  # noqa: F811
    from mirror_app.formatting import money
    from sessions_app.services.summaries import summary_refresh

    summary = summary_refresh(session_id=SID)
    page = client.get(f"/sessions/{SID}/").content.decode()
    routes = re.findall(r'class="chart short slippage-chart" data-route="([^"]+)"', page)
    assert routes == sorted(summary["execution"]["slippage_by_route"]) and routes
    shortfall = summary["execution"]["implementation_shortfall"]
    table = page.split('id="shortfall"', 1)[1].split("</figure>", 1)[0]
    for component in ("delay", "trading", "opportunity", "fees", "total"):
        assert money(shortfall[component], "USD", signed=True) in table, component
