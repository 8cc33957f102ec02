"""Committed session state changes reach WebSocket clients through the real
Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from ifns_paper.asgi import application
from sessions_app.services import session_transition

SID = "research_fx_momentum_v13"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/paper/", f"/ws/paper/sessions/{SID}/"])
def test_state_change_is_pushed_after_commit(bundle, path):
    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="test-setup")

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await sync_to_async(session_transition)(session_id=SID, action="start", actor="t", reason="go")
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "paper_session_state_change"
    assert (message["env"], message["lane"], message["session_id"]) == ("paper", "paper_research", SID)
    assert message["sequence"] == 2  # 1 was the registration
    assert message["payload"]["to"] == "running"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_is_not_pushed(bundle):
    from django.db import transaction

    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="test-setup")

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/paper/", headers=[(b"origin", b"http://127.0.0.1")])
        await communicator.connect(timeout=5)

        def start_then_roll_back():
            with pytest.raises(RuntimeError), transaction.atomic():
                session_transition(session_id=SID, action="start", actor="t")
                raise RuntimeError("boom")

        await sync_to_async(start_then_roll_back)()
        nothing = await communicator.receive_nothing(timeout=1)
        await communicator.disconnect()
        return nothing

    assert async_to_sync(scenario)()
