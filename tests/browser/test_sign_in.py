"""Signing in, in a real browser: an anonymous visitor of a session page lands on the sign-in
page, signs in as the demo viewer and is taken back to the page; the header shows who is
signed in and signs out."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, requires_chromium

pytestmark = requires_chromium

SID = "research_fx_momentum_v13"


def test_an_anonymous_visitor_signs_in_and_comes_back_to_the_page(served_app, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(served_app.url + f"/sessions/{SID}/")
    expect(page).to_have_url(served_app.url + f"/login/?next=/sessions/{SID}/")
    expect(page.locator(".env-badge")).to_contain_text("PAPER")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("do not match")
    page.screenshot(path=str(SCREENSHOTS / "sign_in_refused.png"), full_page=True)
    page.fill("#id_password", "paper-viewer")
    page.click("button[type=submit]")
    expect(page).to_have_url(served_app.url + f"/sessions/{SID}/")
    expect(page.locator(".who")).to_have_text("viewer")
    expect(page.locator("#live-status")).to_have_text("live: connected")  # the socket signs in with the cookie
    page.screenshot(path=str(SCREENSHOTS / "session_signed_in.png"), full_page=True)
    page.click(".signout button")
    expect(page).to_have_url(served_app.url + "/login/")
    context.close()
