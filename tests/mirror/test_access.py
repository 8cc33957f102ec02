"""Who sees the pages and the live sockets: signed-in users with a role. Anonymous page
requests go to the sign-in page (and come back after it); a user without a role gets 403.
A WebSocket needs a signed-in user (session cookie or ``?token=``) with a role, from an
allowed origin; it closes with 4401 / 4403 / 4404 saying why; a client's messages are
answered (ping) or refused without closing the socket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from ifns_paper.asgi import application
from sessions_app.services import session_transition
from sessions_app.services.tokens import token_create
from tests.conftest import role_user

SID = "research_fx_momentum_v13"
ORIGIN = [(b"origin", b"http://127.0.0.1")]


@pytest.mark.django_db
def test_pages_need_a_signed_in_user_with_a_role(loaded, django_user_model):
    anonymous = Client().get(f"/sessions/{SID}/")
    assert anonymous.status_code == 302 and anonymous.headers["Location"] == f"/login/?next=/sessions/{SID}/"
    role_user(django_user_model, "vera", "viewer")
    django_user_model.objects.create_user("nobody", password="pw-nobody")
    browser = Client()
    signed = browser.post("/login/", {"username": "vera", "password": "pw-vera", "next": f"/sessions/{SID}/"})
    assert signed.status_code == 302 and signed.headers["Location"] == f"/sessions/{SID}/"
    page = browser.get(f"/sessions/{SID}/")
    assert page.status_code == 200 and "vera" in page.content.decode() and "Sign out" in page.content.decode()
    wrong = Client().post("/login/", {"username": "vera", "password": "nope"})
    assert wrong.status_code == 200 and "do not match" in wrong.content.decode()
    roleless = Client()
    roleless.login(username="nobody", password="pw-nobody")
    assert roleless.get("/").status_code == 403


def _connect(path: str, headers=ORIGIN):
    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        closed = None
        if connected:
            out = await communicator.receive_output(timeout=5)
            closed = out.get("code") if out["type"] == "websocket.close" else out
        await communicator.disconnect()
        return connected, closed

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_socket_says_why_it_refuses(loaded, django_user_model):
    role_user(django_user_model, "vera", "viewer")
    django_user_model.objects.create_user("nobody")
    vera = token_create(username="vera", name="t", actor="t")[1]
    nobody = token_create(username="nobody", name="t", actor="t")[1]
    assert _connect(f"/ws/paper/sessions/{SID}/") == (True, 4401)
    assert _connect(f"/ws/paper/sessions/{SID}/?token=wrong") == (True, 4401)
    assert _connect(f"/ws/paper/sessions/{SID}/?token={nobody}") == (True, 4403)
    assert _connect(f"/ws/paper/sessions/nope/?token={vera}") == (True, 4404)
    assert _connect(f"/ws/paper/lanes/nowhere/?token={vera}") == (True, 4404)
    foreign = _connect(f"/ws/paper/sessions/{SID}/?token={vera}", headers=[(b"origin", b"http://evil.example")])
    assert foreign[0] is False  # the handshake itself is refused


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_script_reads_and_may_only_ping(loaded, django_user_model):
    role_user(django_user_model, "vera", "viewer")
    key = token_create(username="vera", name="t", actor="t")[1]

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/paper/sessions/{SID}/?token={key}", headers=ORIGIN)
        connected, _ = await ws.connect(timeout=5)
        assert connected
        replies = []
        for frame in ('{"type": "ping"}', "not json", '{"type": "start"}', "x" * 5000):
            await ws.send_to(text_data=frame)
            replies.append(await ws.receive_json_from(timeout=5))
        await ws.send_to(bytes_data=b"\x00\x01")
        replies.append(await ws.receive_json_from(timeout=5))
        # still open and subscribed after all that
        await sync_to_async(session_transition)(session_id=SID, action="start", actor="t", reason="go")
        event = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return replies, event

    replies, event = async_to_sync(scenario)()
    assert replies[0] == {"type": "pong"}
    assert [r["error"]["code"] for r in replies[1:]] == ["message_refused"] * 4
    assert "not JSON" in replies[1]["error"]["message"] and "read-only" in replies[2]["error"]["message"]
    assert "at most 4096 bytes" in replies[3]["error"]["message"]
    assert event["type"] == "paper_session_state_change" and event["sequence"] == 2
