"""The overview page in a real browser: PAPER label, lanes, sessions, and a
state change made from the shell appearing without a reload."""

from __future__ import annotations

import re
import subprocess
import sys

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, requires_chromium
from tests.conftest import ROOT, redis_url_with_db

pytestmark = requires_chromium

SID = "research_fx_momentum_v13"


def test_overview_lists_lanes_and_sessions_labelled_paper(served_app, page, tmp_path):
    page.goto(served_app.url + "/")
    expect(page.locator(".env-badge")).to_contain_text("PAPER")
    expect(page.locator("#lane-paper_research h2")).to_contain_text("paper_research")
    expect(page.locator("#lane-paper_gatecheck h2")).to_contain_text("paper_gatecheck")
    for sid in ("research_fx_momentum_v13", "research_crypto_trend", "gatecheck_fx_momentum_v12"):
        expect(page.locator(f'tr[data-session="{sid}"]')).to_have_count(1)
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)


def test_a_state_change_from_the_shell_updates_the_page_live(served_app, page):
    page.goto(served_app.url + "/")
    expect(page.locator("#live-status")).to_have_text("live: connected")
    status = page.locator(f'tr[data-session="{SID}"] [data-role="status"]')
    expect(status).to_have_text("scheduled")
    page.evaluate("window.__not_reloaded = true")

    served_app.manage("paper_session", "start", SID, "--reason", "browser test")

    expect(status).to_have_text("running", timeout=5000)
    expect(status).to_have_class(re.compile(r"status-running"))
    assert page.evaluate("window.__not_reloaded") is True  # updated in place, not by a reload


def test_session_page_shows_its_events_and_change_log(served_app, page):
    page.goto(served_app.url + f"/sessions/{SID}/")
    expect(page.locator("h1")).to_contain_text(SID)
    expect(page.locator("#events")).to_contain_text("paper_session_state_change")
    expect(page.locator("main")).to_contain_text("session_register")


def test_feed_health_reports_reach_the_overview_live(served_app, page):
    page.goto(served_app.url + "/")
    expect(page.locator("#live-status")).to_have_text("live: connected")
    row_status = page.locator('tr[data-feed="synthetic_crypto"] [data-role="feed-status"]')
    expect(row_status).to_have_count(0)  # this feed has never run here

    # A real feed process: it reports "ok" when it starts and "stopped" when it ends.
    served_app.manage("paper_feed", "synthetic_crypto", "--duration-s", "2")

    expect(row_status).to_have_text("stopped", timeout=10_000)
    expect(page.locator('tr[data-feed="synthetic_crypto"]')).to_contain_text("synthetic_crypto")


def test_a_halted_lane_switch_shows_on_the_overview_rows_live(served_app, page, tmp_path):
    page.goto(served_app.url + "/")
    expect(page.locator("#live-status")).to_have_text("live: connected")
    served_app.manage("paper_session", "start", "research_crypto_trend", "--reason", "browser test")
    switch = page.locator('tr[data-session="research_crypto_trend"] [data-role="switch"]')
    expect(switch).to_have_text("active")
    page.evaluate("window.__not_reloaded = true")

    served_app.manage("paper_killswitch", "set", "lane:paper_research", "halted", "--reason", "feed trouble")

    # the row of a session of that lane says so, with where the halt comes from and why
    expect(switch).to_have_text("halted · lane:paper_research", timeout=5000)
    expect(switch.locator("span")).to_have_attribute("title", "feed trouble")
    # a session of the other lane is not affected
    expect(page.locator('tr[data-session="gatecheck_fx_momentum_v12"] [data-role="switch"]')).to_have_text("active")
    assert page.evaluate("window.__not_reloaded") is True
    page.screenshot(path=str(tmp_path / "overview-halted.png"), full_page=True)
    served_app.manage("paper_killswitch", "set", "lane:paper_research", "active", "--reason", "resolved")
    expect(switch).to_have_text("active", timeout=5000)


def test_a_lost_push_is_backfilled_on_the_session_page(served_app, page):
    gate = "gatecheck_fx_momentum_v12"
    page.goto(served_app.url + f"/sessions/{gate}/")
    expect(page.locator("#live-status")).to_have_text("live: connected")
    page.evaluate("window.__not_reloaded = true")
    # a change whose push goes to another Redis database: the page's socket never hears of it
    lost = dict(served_app.env, REDIS_URL=redis_url_with_db(13))
    subprocess.run([sys.executable, "manage.py", "paper_session", "start", gate, "--reason", "lost push"],
                   cwd=ROOT, env=lost, check=True, capture_output=True)
    served_app.manage("paper_session", "pause", gate, "--reason", "pushed")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(3, timeout=5000)
    assert [rows.nth(i).get_attribute("data-sequence") for i in range(3)] == ["3", "2", "1"]
    expect(rows.nth(1)).to_contain_text("lost push")  # fetched from the API, not pushed
    expect(page.locator(f'h1 [data-session="{gate}"] [data-role="status"]')).to_have_text("paused")
    assert page.evaluate("window.__not_reloaded") is True
    page.screenshot(path=str(SCREENSHOTS / "session_backfilled.png"), full_page=True)
