"""Feed health on the overview page and at GET /api/feeds/: the latest report per feed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from telemetry_app.services import feed_health_record
from tests.conftest import AUTH_QUERIES

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def report(feed: str, status: str, seconds: int, rows: int, **kw):
    return feed_health_record(feed=feed, kind=kw.pop("kind", "synthetic"), status=status,
                              event_time=T0 + timedelta(seconds=seconds), last_tick_age_ms=kw.pop("age", 40),
                              rows_total=rows, gaps=kw.pop("gaps", 0), restarts=kw.pop("restarts", 0),
                              glitches=kw.pop("glitches", {}), detail=kw.pop("detail", ""))


@pytest.fixture
def reports(db):
    report("synthetic_fx", "ok", 0, 100)
    report("synthetic_fx", "stale", 5, 150, gaps=1, glitches={"gap": 3, "crossed": 1})
    report("binance_spot", "ok", 0, 10, kind="binance_ws")
    report("binance_spot", "disconnected", 6, 20, kind="binance_ws", age=None, restarts=2,
           detail="connect failed: OSError")


def _feed_rows(html: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r'<tr data-feed="([^"]+)">(.*?)</tr>', html, re.S)}


def _cell(row: str, role: str) -> str:
    return re.search(rf'data-role="{role}"[^>]*>(.*?)</', row, re.S).group(1).strip()


def test_overview_shows_the_latest_health_of_each_feed(loaded, reports, client):
    html = client.get("/").content.decode()
    assert "Market-data feeds" in html
    rows = _feed_rows(html)
    assert set(rows) == {"synthetic_fx", "binance_spot"}
    fx, bn = rows["synthetic_fx"], rows["binance_spot"]
    assert _cell(fx, "feed-status") == "stale" and _cell(fx, "rows") == "150" and _cell(fx, "gaps") == "1"
    assert _cell(fx, "glitches") == "gap: 3, crossed: 1" and _cell(fx, "age") == "40 ms"
    assert _cell(bn, "feed-status") == "disconnected" and _cell(bn, "age") == "—"
    assert _cell(bn, "restarts") == "2" and "connect failed" in _cell(bn, "detail")
    assert _cell(bn, "kind") == "binance_ws"


def test_overview_without_reports_says_so(loaded, client):
    html = client.get("/").content.decode()
    assert "No feed has reported yet" in html and not _feed_rows(html)


def test_api_feeds_returns_the_latest_row_per_feed(reports, client, django_assert_num_queries):
    with django_assert_num_queries(AUTH_QUERIES + 1):
        response = client.get("/api/v1/feeds/")
    assert response.status_code == 200
    body = response.json()
    assert [f["feed"] for f in body] == ["binance_spot", "synthetic_fx"]
    bn, fx = body
    assert (fx["status"], fx["rows_total"], fx["gaps"], fx["glitches"], fx["env"]) == (
        "stale", 150, 1, {"gap": 3, "crossed": 1}, "paper")
    assert fx["event_time"].startswith("2026-01-02T03:04:10")
    assert (bn["status"], bn["last_tick_age_ms"], bn["restarts"], bn["kind"]) == ("disconnected", None, 2, "binance_ws")


def test_api_feeds_is_read_only(reports, admin_user, client):
    client.force_login(admin_user)
    assert client.post("/api/v1/feeds/", {}, content_type="application/json").status_code == 405
