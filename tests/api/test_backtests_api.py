"""Backtests over the API: a shadow run queued as a job (202, the task on the real broker
queue, then what the worker runs; the row goes running → completed), a rolling one
registered, a results folder imported from under IFNS_IMPORTS_DIR (and nothing from
elsewhere), listing and detail."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from sessions_app import tasks
from sessions_app.models import Backtest
from tests.conftest import role_user, signed_in
from tests.sessions import test_replay_parity
from tests.sessions.test_results_import import write_results
from tests.sessions.test_shadow_backtest import trade_in_real_time

client = test_replay_parity.client  # the fixture: a Redis client, the market-data streams emptied
FX = "research_fx_momentum_v13"


@pytest.fixture
def olga(loaded, django_user_model):
    return signed_in(role_user(django_user_model, "olga", "operator"))


@pytest.mark.django_db(transaction=True)
def test_a_shadow_backtest_runs_as_a_job(loaded, client, django_user_model, monkeypatch):
    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    olga = signed_in(role_user(django_user_model, "olga", "operator"))
    trade_in_real_time(FX, client)
    client.delete("celery")
    queued = olga.post("/api/v1/backtests/shadow/", {"session_id": FX, "latency": "route"},
                       content_type="application/json")
    assert queued.status_code == 202, queued.json()
    body = queued.json()
    assert body["status"] == "running" and body["kind"] == "shadow" and body["session_id"] == FX
    messages = [json.loads(m) for m in client.lrange("celery", 0, -1)]  # what the worker will take
    assert [m["headers"]["task"] for m in messages] == ["sessions_app.tasks.shadow_backtest_run"]
    assert tasks.shadow_backtest_run(body["backtest_id"]) == "completed"  # what the worker runs
    done = olga.get(f"/api/v1/backtests/{body['backtest_id']}/").json()
    assert done["status"] == "completed" and done["summary"]["fills"]["count"] > 0 and done["finished_at"]
    rolling = olga.post("/api/v1/backtests/shadow/", {"session_id": FX, "rolling": True},
                        content_type="application/json")
    assert rolling.status_code == 201 and rolling.json()["params"]["rolling"] is True
    listed = olga.get(f"/api/v1/backtests/?session={FX}&kind=shadow").json()
    assert [b["backtest_id"] for b in listed] == [rolling.json()["backtest_id"], body["backtest_id"]]
    never = olga.post("/api/v1/backtests/shadow/", {"session_id": "research_crypto_trend"},
                      content_type="application/json")
    assert never.status_code == 409 and "never started" in never.json()["error"]["message"]
    assert Backtest.objects.count() == 2  # the refused one registered nothing


@pytest.mark.django_db
def test_a_results_folder_is_imported_from_the_imports_directory_only(olga, tmp_path):
    write_results(settings.IFNS_IMPORTS_DIR / "momo_2025")
    made = olga.post("/api/v1/backtests/import/", {"folder": "momo_2025"}, content_type="application/json")
    assert made.status_code == 201, made.json()
    assert made.json()["kind"] == "imported" and made.json()["status"] == "completed"
    write_results(tmp_path / "elsewhere", rid="bt_elsewhere")
    for folder in ("../elsewhere", "/etc", "missing"):
        refused = olga.post("/api/v1/backtests/import/", {"folder": folder}, content_type="application/json")
        assert refused.status_code == 400 and "folder" in refused.json()["error"]["fields"], folder
    assert olga.get("/api/v1/backtests/bt_fx_momo_2025/").json()["kind"] == "imported"
    assert olga.get("/api/v1/backtests/nope/").status_code == 404
