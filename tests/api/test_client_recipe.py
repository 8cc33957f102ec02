"""The documented client recipe (``ifns_paper.client``) against the real ASGI server
(uvicorn, its own SQLite database, the test Redis): a script with a token starts a session
and follows it over the WebSocket; a state change whose push is lost (made by a process
that pushes to another Redis database, so the socket never hears of it) shows as a gap in
the sequence and is backfilled from the REST API — every event arrives once, in order —
and a socket quiet for longer than the channel layer's 5 s wait stays open.
A client that reconnects from an older sequence gets everything since."""

from __future__ import annotations

import threading

import pytest

from ifns_paper.client import ApiError, PaperApi, follow_session
from tests.browser.conftest import served_app  # noqa: F401 - the fixture: uvicorn on a free port
from tests.conftest import redis_url_with_db

SID = "research_fx_momentum_v13"


def test_a_lost_push_is_backfilled_and_nothing_is_missed(served_app):  # noqa: F811
    made = served_app.manage("paper_token", "create", "operator", "--name", "recipe test")
    api = PaperApi(served_app.url, made.stdout.splitlines()[1])
    seen: list[dict] = []
    ready = threading.Event()

    def follow():
        for event in follow_session(api, SID, idle_timeout_s=8.0):  # > 5 s: a quiet socket stays open
            seen.append(event)
            ready.set()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert ready.wait(10), "the registration event never came"  # sequence 1, fetched at connect
    api.post(f"/api/v1/sessions/{SID}/actions/", {"action": "start", "reason": "script"})
    lost_env = dict(served_app.env, REDIS_URL=redis_url_with_db(13))  # its push goes nowhere
    import subprocess
    import sys

    from tests.conftest import ROOT

    subprocess.run([sys.executable, "manage.py", "paper_session", "pause", SID, "--reason", "lost push"],
                   cwd=ROOT, env=lost_env, check=True, capture_output=True)
    api.post(f"/api/v1/sessions/{SID}/actions/", {"action": "resume", "reason": "after the gap"})
    follower.join(60)
    assert not follower.is_alive(), served_app.log.read_text()[-3000:]
    moves = [(e["sequence"], e["payload"]["action"]) for e in seen]
    assert moves == [(1, "register"), (2, "start"), (3, "pause"), (4, "resume")]
    # a client coming back from sequence 2 gets 3 and 4, then waits for more
    again = [e["sequence"] for e in follow_session(api, SID, after=2, idle_timeout_s=2.0)]
    assert again == [3, 4]


def test_a_refused_socket_or_call_is_an_api_error(served_app):  # noqa: F811
    api = PaperApi(served_app.url, "not-a-token")
    with pytest.raises(ApiError) as refused:
        next(follow_session(api, SID, idle_timeout_s=2.0))
    assert refused.value.status == 401 and refused.value.error["code"] == "authentication_failed"
