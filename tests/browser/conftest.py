"""Browser tests: Debian's Chromium driven by Playwright against the real ASGI
app (uvicorn) in a subprocess, with its own SQLite database and the test Redis.

`.ci/run` installs Chromium (`apt-get install chromium`); on a machine
without /usr/bin/chromium these tests are reported as skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, redis_url_with_db

CHROMIUM = Path(os.environ.get("IFNS_CHROMIUM", "/usr/bin/chromium"))
# Screenshots the tests take, to look at after a run (IFNS_SCREENSHOTS to put them elsewhere).
SCREENSHOTS = Path(os.environ.get("IFNS_SCREENSHOTS", "/tmp/ifns-screenshots"))
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@dataclass
class ServedApp:
    url: str
    env: dict
    log: Path | None = None

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "ifns_paper.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp / 'browser.sqlite3'}",
        "IFNS_DATA_DIR": str(tmp / "data"),
        "REDIS_URL": redis_url_with_db(12),
    }
    app = ServedApp(url=f"http://127.0.0.1:{port}", env=env)
    app.manage("ifns_setup")  # with the demo users: the pages need one with a role
    # the server's log goes to a file: a pipe nobody reads would fill up and stall it
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "ifns_paper.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    app.log = log_path
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(app.url + "/", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"uvicorn did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield app
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:  # a socket it still waits on: no need to be gentle
            server.kill()
            server.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, served_app, tmp_path):
    """A browser page signed in as the demo viewer (through the sign-in form)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(served_app.url + "/login/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "paper-viewer")
    page.click("button[type=submit]")
    page.wait_for_url(served_app.url + "/")
    yield page
    context.close()
