"""Committed session state changes reach WebSocket clients through the real
Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from ifns_paper.asgi import application
from sessions_app.services import session_transition
from tests.sessions.test_summaries import bus, traded  # noqa: F401 - fixtures

SID = "research_fx_momentum_v13"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/paper/", "/ws/paper/overview/", "/ws/paper/lanes/paper_research/",
                                  f"/ws/paper/sessions/{SID}/"])
def test_state_change_is_pushed_after_commit(bundle, path, viewer_token):
    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="test-setup")

    async def scenario():
        communicator = WebsocketCommunicator(application, f"{path}?token={viewer_token}", headers=[(b"origin", b"http://127.0.0.1")])
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
def test_a_rolled_back_change_is_not_pushed(bundle, viewer_token):
    from django.db import transaction

    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="test-setup")

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/paper/?token={viewer_token}", headers=[(b"origin", b"http://127.0.0.1")])
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


def test_one_push_of_several_sessions_reaches_each_group_with_its_own_events():
    from channels.layers import get_channel_layer

    from telemetry_app.broadcast import ALL_SESSIONS_GROUP, lane_group, push_events, session_group

    def rec(sid, lane, seq):
        return {"type": "order_filled", "env": "paper", "lane": lane, "session_id": sid, "sequence": seq}

    records = [rec("a", "paper_research", 1), rec("a", "paper_research", 2), rec("b", "paper_gatecheck", 7)]
    layer = get_channel_layer()
    groups = [session_group("a"), session_group("b"), lane_group("paper_research"), lane_group("paper_gatecheck"),
              ALL_SESSIONS_GROUP]

    async def listen():
        channels = {}
        for group in groups:
            channels[group] = await layer.new_channel()
            await layer.group_add(group, channels[group])
        return channels

    channels = async_to_sync(listen)()
    push_events(records)

    async def receive_all():
        got = {}
        for group, channel in channels.items():
            message = await layer.receive(channel)
            got[group] = [(e["session_id"], e["sequence"]) for e in message["events"]]
            await layer.group_discard(group, channel)
        return got

    got = async_to_sync(receive_all)()
    assert got == {session_group("a"): [("a", 1), ("a", 2)], session_group("b"): [("b", 7)],
                   lane_group("paper_research"): [("a", 1), ("a", 2)], lane_group("paper_gatecheck"): [("b", 7)],
                   ALL_SESSIONS_GROUP: [("a", 1), ("a", 2), ("b", 7)]}


@pytest.mark.django_db(transaction=True)
def test_a_new_summary_is_pushed_to_the_sessions_socket(traded, viewer_token):  # noqa: F811
    from sessions_app.services.summaries import summary_refresh
    from telemetry_app.selectors import summary_latest
    from tests.sessions.test_summaries import SID as TRADED

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/paper/sessions/{TRADED}/?token={viewer_token}",
                                   headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await ws.connect(timeout=5)
        assert connected
        await sync_to_async(summary_refresh)(session_id=TRADED)
        while True:
            message = await ws.receive_json_from(timeout=5)
            if message["type"] == "session_summary":
                await ws.disconnect()
                return message

    message = async_to_sync(scenario)()
    stored = summary_latest(session_id=TRADED).data
    assert (message["session_id"], message["env"], message["final"]) == (TRADED, "paper", False)
    assert message["pnl"] == stored["pnl"] and message["as_of"] == stored["as_of"]
    assert message["fills"] == stored["fills"]["count"] > 0
