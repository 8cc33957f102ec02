"""Feed health telemetry: append-only rows, NDJSON after commit, pushed to `paper.feeds`,
written by the `paper_feed` process."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, transaction

from ifns_paper import marketbus
from ifns_paper.asgi import application
from ifns_paper.exceptions import ApplicationError
from telemetry_app.models import FeedHealthEvent
from telemetry_app.services import feed_health_record
from telemetry_app.sinks import feed_health_file

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def report(**kw):
    args = {"feed": "synthetic_fx", "kind": "synthetic", "status": "ok", "event_time": WHEN,
            "last_tick_age_ms": 40, "rows_total": 1234, "gaps": 1, "restarts": 0, "glitches": {"gap": 2}}
    return feed_health_record(**{**args, **kw})


@pytest.mark.django_db
def test_a_report_is_stored_and_written_to_ndjson_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = report()
        assert not feed_health_file("synthetic_fx").exists()  # nothing before the commit
    assert len(callbacks) == 1
    row = FeedHealthEvent.objects.get()
    assert (row.env, row.feed, row.status, row.rows_total, row.glitches) == ("paper", "synthetic_fx", "ok", 1234,
                                                                           {"gap": 2})
    lines = feed_health_file("synthetic_fx").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [event.as_record()]
    assert json.loads(lines[0])["type"] == "feed_health"


@pytest.mark.django_db
@pytest.mark.parametrize("kw, field", [
    ({"status": "flaky"}, "status"),
    ({"rows_total": -1}, "rows_total"),
    ({"last_tick_age_ms": 1.5}, "last_tick_age_ms"),
    ({"glitches": {"gap": "x"}}, "glitches.gap"),
    ({"event_time": datetime(2026, 1, 2)}, "event_time"),  # noqa: DTZ001 - naive on purpose
])
def test_bad_reports_are_refused_naming_the_field(kw, field):
    with pytest.raises(ApplicationError, match=rf"^{field}: "):
        report(**kw)
    assert not FeedHealthEvent.objects.exists()


@pytest.mark.django_db
def test_reports_are_append_only_and_paper_only():
    event = report()
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        FeedHealthEvent.objects.create(env="live", feed="x", kind="synthetic", status="ok", event_time=WHEN)


@pytest.mark.django_db(transaction=True)
def test_a_committed_report_is_pushed_to_the_overview_socket(viewer_token):
    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/paper/overview/?token={viewer_token}", headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await sync_to_async(report)(status="stale", detail="quiet")
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "feed_health"
    assert (message["env"], message["feed"], message["status"], message["detail"]) == (
        "paper", "synthetic_fx", "stale", "quiet")


@pytest.mark.django_db(transaction=True)
def test_paper_feed_process_publishes_and_reports_health(loaded_tx):
    client = redis.Redis.from_url(settings.REDIS_URL)
    for feed in ("synthetic_fx", "replay_eurusd"):
        client.delete(marketbus.stream_key(feed))

    call_command("paper_feed", "synthetic_fx", "replay_eurusd", "--duration-s", "1.5", "--report-every-s", "0.5")

    # both feeds published, with clocks, in order
    for feed in ("synthetic_fx", "replay_eurusd"):
        items = marketbus.read(client, marketbus.stream_key(feed), None, count=100_000).batches
        assert any(isinstance(i, marketbus.Clock) for i in items)
    # health reports: periodic, then stopped; NDJSON has the same rows
    for feed in ("synthetic_fx", "replay_eurusd"):
        rows = list(FeedHealthEvent.objects.filter(feed=feed).order_by("id"))
        assert len(rows) >= 3, feed
        assert rows[0].status == "ok" and rows[-1].status == "stopped"
        assert rows[-1].rows_total > 0 and rows[-1].last_tick_age_ms is not None
        lines = feed_health_file(feed).read_text().splitlines()
        assert [json.loads(line)["status"] for line in lines] == [r.status for r in rows]
    assert FeedHealthEvent.objects.get(feed="replay_eurusd", status="stopped").kind == "replay"
    for feed in ("synthetic_fx", "replay_eurusd"):
        client.delete(marketbus.stream_key(feed), f"ifns:feed:{feed}")


@pytest.fixture
def loaded_tx(bundle):
    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="test-setup")
    return bundle
