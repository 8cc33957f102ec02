"""The Mirror and its controls in a real browser against the whole running system (what
`make run` starts: the ASGI server, Celery workers and beat, step workers, live-like
feeds, Redis): an operator watches a demo session trade live and steers it, a viewer
sees no controls, a lane kill switch is impossible to miss. Screenshots of every page go
to ``SCREENSHOTS`` (CI keeps them as artifacts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, _free_port, requires_chromium
from tests.conftest import ROOT, redis_url_with_db

pytestmark = [requires_chromium, pytest.mark.slow]

SID = "research_fx_momentum_v13"  # a demo session: `make run` starts it


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """The whole system on a free port, a SQLite file and a Redis database of its own."""
    import redis

    tmp = tmp_path_factory.mktemp("desk")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {"PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp / 'desk.sqlite3'}",
            "IFNS_DATA_DIR": str(tmp / "data"), "REDIS_URL": redis_url_with_db(13)}
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    log_path = tmp / "desk.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ifns_paper.devserver"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-4000:]
            try:
                urllib.request.urlopen(base + "/login/", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-4000:]
                time.sleep(0.5)
        _wait_for_fills(env, SID, deadline_s=120)
        yield {"url": base, "env": env, "log": log_path}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def _shell(env: dict, code: str):
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait_for_fills(env: dict, sid: str, *, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        n = _shell(env, "import json; from broker_app.models import PaperFill; "
                        f"print(json.dumps(PaperFill.objects.filter(session__session_id={sid!r}).count()))")
        if n >= 2:
            return
        time.sleep(2)
    pytest.fail(f"{sid} made no fills in {deadline_s} s")


def _sign_in(browser, desk, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(desk["url"] + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", f"paper-{user}")
    page.click("button[type=submit]")
    page.wait_for_url(desk["url"] + "/")
    return context, page


def _no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide at a 1280 px window"


def test_an_operator_watches_a_session_trade_live_and_pauses_it(browser, desk):
    context, page = _sign_in(browser, desk, "operator")
    try:
        # the overview: live P&L, metrics and a sparkline per session
        page.goto(desk["url"] + "/")
        row = page.locator(f'tr[data-session="{SID}"]')
        expect(row.locator('[data-role="pnl"]')).to_contain_text("USD", timeout=15_000)
        expect(page.locator("#live-status")).to_have_text("live: connected")
        _no_horizontal_scroll(page)
        page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

        # the drill-down: charts drawn, then growing without a reload
        page.goto(desk["url"] + f"/sessions/{SID}/")
        expect(page.locator("#live-status")).to_have_text("live: connected")
        page.wait_for_function("window.IFNSCharts && window.IFNSCharts.equity && IFNSCharts.equity.points.length > 0")
        page.evaluate("window.__not_reloaded = true")
        first_points = page.evaluate("IFNSCharts.equity.points.length")
        first_event = page.locator("#events tbody tr[data-sequence]").first.get_attribute("data-sequence")
        page.wait_for_function(f"IFNSCharts.equity.points.length > {first_points}", timeout=20_000)
        page.wait_for_function(
            f"Number(document.querySelector('#events tbody tr[data-sequence]').dataset.sequence) > {first_event}",
            timeout=20_000)
        assert page.evaluate("window.__not_reloaded") is True
        # readable rows, not dicts
        expect(page.locator("#events tbody")).not_to_contain_text("{'")
        page.screenshot(path=str(SCREENSHOTS / "session_drilldown.png"), full_page=True)
        _no_horizontal_scroll(page)

        # pause with a reason: the page says so, and the change log has it
        controls = page.locator("section.controls")
        controls.locator('input[name="reason"]').first.fill("browser test: checking fills")
        controls.locator('button[value="pause"]').click()
        expect(page.locator(".messages")).to_contain_text(f"{SID}: paused")
        expect(page.locator(f'h1 [data-session="{SID}"] [data-role="status"]')).to_have_text("paused")

        # once paused and reloaded, the chart's fills are the fills table's (the API's)
        page.reload()
        page.wait_for_function("window.IFNSCharts && IFNSCharts.prices")
        drawn = page.evaluate("Object.values(IFNSCharts.prices).reduce((n, s) => n + s.fills.length, 0)")
        stored = _shell(desk["env"], "import json; from broker_app.models import PaperFill; "
                                     f"print(json.dumps(PaperFill.objects.filter(session__session_id={SID!r}).count()))")
        assert drawn == stored > 0

        # paused, the equity chart's last point is the summary's equity once the summary (written
        # once a minute) has caught up with the pause
        last = page.evaluate("(p => [p.time, p.value])(IFNSCharts.equity.points.at(-1))")
        summary = _summary_as_of(page, desk, SID, at_least_s=last[0])
        assert summary["as_of"] // 1_000_000_000 == last[0]
        assert round(summary["pnl"]["equity"], 2) == pytest.approx(last[1], abs=0.005)
        page.locator("section.controls").screenshot(path=str(SCREENSHOTS / "control_panel.png"))

        controls = page.locator("section.controls")
        controls.locator('input[name="reason"]').first.fill("browser test done")
        controls.locator('button[value="resume"]').click()
        expect(page.locator(f'h1 [data-session="{SID}"] [data-role="status"]')).to_have_text("running")
    finally:
        context.close()


def _summary_as_of(page, desk, sid: str, *, at_least_s: int, timeout_s: float = 150) -> dict:
    """The session's summary from the API, once it is as of ``at_least_s`` (epoch s) or later."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = page.request.get(desk["url"] + f"/api/v1/sessions/{sid}/summary/")
        if answer.ok and answer.json()["as_of"] // 1_000_000_000 >= at_least_s:
            return answer.json()
        assert time.monotonic() < deadline, f"no summary as of {at_least_s} within {timeout_s} s: {answer.text()}"
        time.sleep(3)


def _set_lane_switch(page, desk, state: str, reason: str) -> None:
    """The research lane's kill switch, through the overview's form."""
    page.goto(desk["url"] + "/")
    lane = page.locator("#lane-paper_research form.inline-control")
    lane.locator('select[name="state"]').select_option(state)
    lane.locator('input[name="reason"]').fill(reason)
    lane.locator('button[type="submit"]').click()


def test_a_lane_kill_switch_shows_in_every_page_header(browser, desk):
    context, page = _sign_in(browser, desk, "operator")
    try:
        _set_lane_switch(page, desk, "halted", "browser test: feed trouble")
        banner = page.locator("#controls-banner .switch-banner-halted")
        expect(banner).to_contain_text("lane:paper_research")
        expect(banner).to_contain_text("browser test: feed trouble")
        page.goto(desk["url"] + f"/sessions/{SID}/")
        expect(page.locator("#controls-banner .switch-banner-halted")).to_contain_text("HALTED")
        expect(page.locator('.stats [data-role="switch"]')).to_contain_text("halted", timeout=10_000)
        page.screenshot(path=str(SCREENSHOTS / "kill_switch_halted.png"), full_page=False)
        # the session's decisions are denied by it (shown in its event stream, filtered)
        page.select_option('#event-filters select[name="type"]', "dra_decision")
        expect(page.locator("#events tbody")).to_contain_text("kill_switch_halted", timeout=30_000)
    finally:
        _set_lane_switch(page, desk, "active", "browser test over")
        expect(page.locator("#controls-banner .switch-banner")).to_have_count(0)
        context.close()


def test_a_viewer_sees_no_controls_and_cannot_post_them(browser, desk):
    context, page = _sign_in(browser, desk, "viewer")
    try:
        page.goto(desk["url"] + f"/sessions/{SID}/")
        expect(page.locator("h1")).to_contain_text(SID)
        expect(page.locator("section.controls")).to_have_count(0)
        page.goto(desk["url"] + "/")
        expect(page.locator("form.inline-control")).to_have_count(0)
        # the server refuses whatever the page showed
        token = context.cookies()
        csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
        refused = page.request.post(desk["url"] + f"/sessions/{SID}/action/",
                                    form={"action": "pause", "reason": "x"}, headers={"X-CSRFToken": csrf})
        assert refused.status == 403
    finally:
        context.close()


def test_the_tearsheet_draws_its_charts_offline(browser, desk, tmp_path):
    path = tmp_path / "tearsheet.html"
    subprocess.run([sys.executable, "manage.py", "paper_report", SID, "--html", str(path)], cwd=ROOT,
                   env=desk["env"], check=True, capture_output=True)
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(path.as_uri())
        page.wait_for_function("window.IFNSCharts && IFNSCharts.equity && IFNSCharts.equity.points.length > 0")
        assert page.locator("canvas").count() >= 3  # equity, drawdown, exposure at least
        assert [u for u in requests if not u.startswith("file:")] == []  # nothing from the network
        assert errors == []
        page.screenshot(path=str(SCREENSHOTS / "tearsheet.png"), full_page=True)
    finally:
        context.close()


def test_a_dropped_socket_loses_no_event_on_screen(browser, desk):
    context, page = _sign_in(browser, desk, "viewer")
    try:
        page.goto(desk["url"] + f"/sessions/{SID}/")
        expect(page.locator("#live-status")).to_have_text("live: connected")
        newest = "Number(document.querySelector('#events tbody tr[data-sequence]').dataset.sequence)"
        before = page.evaluate(newest)
        page.evaluate("IFNSLive.socket().close()")  # the connection drops mid-stream
        expect(page.locator("#live-status")).to_have_text("live: offline")
        page.wait_for_timeout(500)  # events go on meanwhile, unseen by the socket
        expect(page.locator("#live-status")).to_have_text("live: connected", timeout=10_000)
        page.wait_for_function(f"{newest} > {before} + 5", timeout=20_000)
        shown = [int(s) for s in page.locator("#events tbody tr[data-sequence]").evaluate_all(
            "rows => rows.map(r => r.dataset.sequence)")]
        # newest first, every sequence number once, none missing across the drop
        assert shown == list(range(shown[0], shown[0] - len(shown), -1))
        assert shown[-1] <= before < shown[0]
    finally:
        context.close()


def test_register_with_an_error_then_fixed_and_a_four_eyes_promotion(browser, desk):
    definition = (ROOT / "config/paper_trading/session_research_crypto_trend.yaml").read_text() \
        .replace("session_id: research_crypto_trend", "session_id: browser_crypto")
    context, page = _sign_in(browser, desk, "operator")
    try:
        # a definition with a wrong lane: the problem is named with its line and field, the text kept
        page.goto(desk["url"] + "/sessions/new/")
        page.fill("#definition", definition.replace("lane: paper_research", "lane: paper_nowhere"))
        page.fill("#reason", "browser test")
        page.click(".register-form button[type=submit]")
        expect(page.locator("#problems")).to_contain_text("lane")
        expect(page.locator("#problems")).to_contain_text("paper_nowhere")
        page.screenshot(path=str(SCREENSHOTS / "register_errors.png"), full_page=True)
        page.fill("#definition", page.input_value("#definition").replace("paper_nowhere", "paper_research"))
        page.click(".register-form button[type=submit]")
        page.wait_for_url(desk["url"] + "/sessions/browser_crypto/")
        expect(page.locator(".messages")).to_contain_text("registered browser_crypto")
        # started from the page, it runs; a stop asks first: dismissed, nothing happens;
        # confirmed, the session completes
        status = page.locator('h1 [data-session="browser_crypto"] [data-role="status"]')
        controls = page.locator("section.controls")
        controls.locator('input[name="reason"]').first.fill("browser test: a first look")
        controls.locator('button[value="start"]').click()
        expect(page.locator(".messages")).to_contain_text("browser_crypto: running")
        expect(status).to_have_text("running")
        controls = page.locator("section.controls")
        controls.locator('input[name="reason"]').first.fill("browser test: seen enough")
        page.once("dialog", lambda dialog: dialog.dismiss())
        controls.locator('button[value="stop"]').click()
        page.wait_for_timeout(500)
        expect(status).to_have_text("running")
        page.once("dialog", lambda dialog: dialog.accept())
        controls.locator('button[value="stop"]').click()
        expect(page.locator(".messages")).to_contain_text("browser_crypto: completed")
        expect(status).to_have_text("completed")

        # the operator asks for a promotion of the demo session: no approve button for them
        page.goto(desk["url"] + "/promotions/")
        page.select_option('select[name="session_id"]', SID)
        page.select_option('select[name="to_lane"]', "paper_gatecheck")
        page.fill('form[action="/promotions/new/"] input[name="reason"]', "browser test evidence")
        page.click('form[action="/promotions/new/"] button[type=submit]')
        page.wait_for_url("**/promotions/*/")
        promotion = page.url
        expect(page.locator("#criteria tbody tr")).not_to_have_count(0)
        expect(page.locator('button[value="approve"]')).to_have_count(0)
        expect(page.locator("main")).to_contain_text("another approver decides")
        page.screenshot(path=str(SCREENSHOTS / "promotion_requested.png"), full_page=True)
        page.goto(desk["url"] + "/lanes/paper_research/")
        expect(page.locator("#funnel")).to_contain_text(SID)
        page.screenshot(path=str(SCREENSHOTS / "lane_dashboard.png"), full_page=True)
        page.locator("#funnel").screenshot(path=str(SCREENSHOTS / "promotion_funnel.png"))
    finally:
        context.close()

    context, page = _sign_in(browser, desk, "approver")
    try:
        page.goto(promotion)
        page.fill('form.decision input[name="reason"]', "reviewed in the browser")
        if page.locator('input[name="override_reason"]').count():
            page.fill('input[name="override_reason"]', "short run accepted for a gatecheck trial")
        page.screenshot(path=str(SCREENSHOTS / "promotion_approver.png"), full_page=True)
        page.click('button[value="approve"]')
        expect(page.locator(".messages")).to_contain_text(": applied")
        expect(page.locator("h1 .status")).to_have_text("applied")
        page.goto(desk["url"] + "/changelog/?action=promotion_approve")
        expect(page.locator("#changelog tbody")).to_contain_text("approver")
        page.screenshot(path=str(SCREENSHOTS / "changelog.png"), full_page=False)
    finally:
        context.close()
