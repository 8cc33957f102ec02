"""Rolling shadow backtests: one registered when a session starts follows it while it trades
in real time — each roll goes on from the engine pickled by the previous one over the part
of the recording the session has read since — and ends up with exactly the files and
figures of a one-shot shadow backtest over the whole window, whatever the rolls' cadence,
even when a roll died midway. Its comparison with the session is stored after every roll,
so the figures served grow with the session. Faults stop that one backtest, recorded, not
retried; bad requests are refused."""

from __future__ import annotations

import random
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from ifns_paper import marketbus
from ifns_paper.exceptions import ApplicationError, Conflict
from ifns_paper.feeds.bus import FeedBus
from ifns_paper.feeds.recorder import Recorder
from sessions_app.models import Backtest, ChangeLogEntry, PaperSession, SessionComparison
from sessions_app.services import backtests, session_transition
from sessions_app.services.backtests import (
    backtest_files,
    shadow_backtest,
    shadow_roll,
    shadows_roll,
)
from sessions_app.services.comparisons import comparisons_roll
from sessions_app.steps import session_step
from tests.sessions import test_replay_parity
from tests.sessions.test_replay_parity import market, pieces

client = test_replay_parity.client  # the fixture: a Redis client, the market-data streams emptied
FX = "research_fx_momentum_v13"
RECORD_FILES = ("events.ndjson", "fills.ndjson", "series.ndjson", "minutes.ndjson", "orders.ndjson")


@pytest.fixture(autouse=True)
def _checkpoint_every_step(monkeypatch):
    from sessions_app import steps

    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)


def trade(session_ids: list[str], client, *, after_publish=None, seed: int = 1, recorder: bool = True) -> None:
    """Publish the FX feed piece by piece (through a recording FeedBus unless ``recorder`` is
    off), stepping every session after each publish; ``after_publish(k)`` after the k-th."""
    bus = FeedBus(client, "synthetic_fx", recorder=Recorder(settings.IFNS_RECORDINGS_DIR, "synthetic_fx")
                  if recorder else None)
    for k, (batches, next_ts) in enumerate(pieces(market(("EURUSD", "GBPUSD")), random.Random(seed))):
        last = max(int(b.ts[-1]) for b in batches)
        bus.publish(batches, max(last, next_ts - 1) if next_ts is not None else last)
        for sid in session_ids:
            session_step(session_id=sid, client=client)
        if after_publish is not None:
            after_publish(k)
    if bus.recorder is not None:
        bus.recorder.close()  # everything published is on disk


def start(session_id: str, *, latency: str = "route") -> Backtest:
    session_transition(session_id=session_id, action="start", actor="t")
    return shadow_backtest(session_id=session_id, actor="t", latency=latency, rolling=True)


def files_of(row: Backtest) -> dict[str, str]:
    return {name: (backtest_files(row) / name).read_text() for name in RECORD_FILES}


@pytest.mark.parametrize("roll_every", [1, 5, 1000])
@pytest.mark.django_db(transaction=True)
def test_rolled_in_pieces_it_ends_with_the_files_and_figures_of_a_one_shot_shadow(loaded, client, roll_every):
    rolling = start(FX)
    assert rolling.status == "running" and "state" not in rolling.params  # nothing read yet: waits
    trade([FX], client, after_publish=lambda k: (k + 1) % roll_every or shadow_roll(backtest_id=rolling.backtest_id))
    rolled = shadow_roll(backtest_id=rolling.backtest_id)  # the rest, now that all is recorded
    assert rolled.status == "running" and rolled.params["rolling"] is True  # the session still runs
    one_shot = shadow_backtest(session_id=FX, actor="t", latency="route")
    assert rolled.params["until_entry"] == one_shot.params["until_entry"]
    assert files_of(rolled) == files_of(one_shot)
    assert rolled.params["fills_hash"] == one_shot.params["fills_hash"] and rolled.params["quotes"] > 0
    differ = {k for k in rolled.summary if rolled.summary[k] != one_shot.summary[k]}
    assert differ == {"session_id"}  # each is summarised under its own backtest id
    # only the newest engine state is kept
    assert [p.name for p in backtest_files(rolled).glob("engine-*")] == [rolled.params["state"]["engine"]]


@pytest.mark.django_db(transaction=True)
def test_a_roll_that_died_midway_leaves_nothing_behind_for_the_next(loaded, client):
    rolling = start(FX)
    out = lambda: backtest_files(Backtest.objects.get(pk=rolling.pk))  # noqa: E731

    def crash_now_and_then(k: int) -> None:
        if k % 7 == 6:
            shadow_roll(backtest_id=rolling.backtest_id)
            # a roll killed after it appended records and wrote half an engine: none of it counts
            for name in ("events.ndjson", "fills.ndjson", "series.ndjson", "minutes.ndjson"):
                with (out() / name).open("a") as f:
                    f.write('{"half": "a line of a roll that died"}\n')
            (out() / "engine-999.pickle.z.tmp").write_bytes(b"half")

    trade([FX], client, after_publish=crash_now_and_then)
    rolled = shadow_roll(backtest_id=rolling.backtest_id)
    one_shot = shadow_backtest(session_id=FX, actor="t", latency="route")
    assert files_of(rolled) == files_of(one_shot)
    assert rolled.summary["pnl"] == one_shot.summary["pnl"]


@pytest.mark.django_db(transaction=True)
def test_the_stored_comparison_grows_with_the_session_and_completes_with_it(loaded, client, reader):
    rolling = start(FX)
    seen: list[dict] = []

    def roll_at(k: int) -> None:
        if k in (6, 14):  # of 21 publishes
            assert comparisons_roll() == 1
            seen.append(reader.get(f"/api/v1/sessions/{FX}/comparison/").json())

    trade([FX], client, after_publish=roll_at)
    first, second = seen
    assert first["backtest_id"] == second["backtest_id"] == rolling.backtest_id
    assert first["rolling"] is True and first["latency"] == "route"
    assert 0 < first["until_ns"] < second["until_ns"]  # later rolls cover more of the session
    assert first["computed_at"] < second["computed_at"]
    assert first["decisions"]["paper"] <= second["decisions"]["paper"]
    assert second["decisions"]["share"] == 1.0 and second["decisions"]["first_divergence"] is None
    assert SessionComparison.objects.count() == 1  # one stored comparison, updated in place
    # the session ends: the roll at its final summary takes the backtest to its end and completes it
    session_transition(session_id=FX, action="stop", actor="t", reason="enough")
    from sessions_app.services.sel import summary_refresh_evaluated

    summary_refresh_evaluated(session_id=FX)
    done = Backtest.objects.get(pk=rolling.pk)
    assert done.status == "completed" and done.params["rolling"] is False and done.finished_at is not None
    assert "missing_tail" not in done.params
    stored = reader.get(f"/api/v1/sessions/{FX}/comparison/").json()
    assert stored["rolling"] is False and stored["until_ns"] >= second["until_ns"]
    assert stored["execution"]["pnl"]["deviation"] == pytest.approx(0.0, abs=1e-6)
    # the SEL evaluation at completion reconciled against the completed rolling shadow
    evaluation = PaperSession.objects.get(session_id=FX).sel_evaluations.get()
    assert evaluation.comparison["backtest_id"] == rolling.backtest_id
    # a completed rolling shadow is not rolled again
    assert shadows_roll() == [] and Backtest.objects.get(pk=rolling.pk).params == done.params
    fresh = reader.get(f"/api/v1/sessions/{FX}/comparison/?refresh=true").json()
    assert fresh["computed_at"] > stored["computed_at"]
    out = StringIO()
    call_command("paper_compare", FX, "--stored", stdout=out)
    assert rolling.backtest_id in out.getvalue() and "computed" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_an_ended_sessions_data_missing_from_the_recording_is_waited_for_then_named(loaded, client, monkeypatch):
    rolling = start(FX)
    trade([FX], client)
    # the feed publishes once more without its recorder; the session reads it and stops
    later = [b.slice(0, 1) for b in market(("EURUSD",))[:1]]
    ts = int(later[0].ts[0]) + 500 * 10**9
    from ifns_paper.engine.marketdata import QuoteBatch

    b = later[0]
    marketbus.publish(client, "synthetic_fx", [QuoteBatch.from_arrays(b.symbol, b.ts + 500 * 10**9, b.bid, b.ask,
                                                                      b.bid_size, b.ask_size)], clock_ns=ts)
    session_step(session_id=FX, client=client)
    session_transition(session_id=FX, action="stop", actor="t", reason="enough")
    waiting = shadow_roll(backtest_id=rolling.backtest_id)
    assert waiting.status == "running"  # the recorder may still write it: wait (SETTLE_S)
    monkeypatch.setattr(backtests, "SETTLE_S", 0.0)
    done = shadow_roll(backtest_id=rolling.backtest_id)
    assert done.status == "completed"
    tail = done.params["missing_tail"]
    assert tail["until_entry"] == PaperSession.objects.get(session_id=FX).checkpoint.offsets[
        marketbus.stream_key("synthetic_fx")]
    assert "not in the recording" in tail["why"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_roll_stops_that_backtest_only_recorded_and_not_retried(loaded, client, caplog):
    gate = "gatecheck_fx_momentum_v12"
    broken, healthy = start(FX), start(gate)
    trade([FX, gate], client, after_publish=lambda k: k == 5 and shadows_roll())
    state = Backtest.objects.get(pk=broken.pk).params["state"]
    (backtest_files(broken) / state["engine"]).write_bytes(b"not a pickled engine")
    rolled = {r.backtest_id: r for r in shadows_roll()}
    failed = Backtest.objects.get(pk=broken.pk)
    assert failed.status == "failed" and failed.params["rolling"] is False and failed.error
    assert "stops following research_fx_momentum_v13" in caplog.text
    assert rolled[healthy.backtest_id].status == "running" and rolled[healthy.backtest_id].params["rolls"] == 2
    again = shadows_roll()
    assert [r.backtest_id for r in again] == [healthy.backtest_id]  # the failed one is left alone
    assert Backtest.objects.get(pk=broken.pk).params == failed.params
    listing = StringIO()
    call_command("paper_backtest", "list", stdout=listing)
    assert f"{broken.backtest_id}" in listing.getvalue() and "error: " in listing.getvalue()


@pytest.mark.django_db(transaction=True)
def test_bad_rolling_requests_are_refused(loaded, client, settings):
    rolling = start(FX)
    with pytest.raises(Conflict, match="a rolling shadow backtest follows it already"):
        shadow_backtest(session_id=FX, actor="t", rolling=True)
    session_transition(session_id=FX, action="stop", actor="t", reason="enough")
    with pytest.raises(Conflict, match="has ended"):
        shadow_backtest(session_id=FX, actor="t", rolling=True)
    settings.IFNS_RECORD_FEEDS = False
    session_transition(session_id="gatecheck_fx_momentum_v12", action="start", actor="t")
    with pytest.raises(ApplicationError, match="IFNS_RECORD_FEEDS is off"):
        shadow_backtest(session_id="gatecheck_fx_momentum_v12", actor="t", rolling=True)
    assert list(Backtest.objects.values_list("backtest_id", flat=True)) == [rolling.backtest_id]
    logged = ChangeLogEntry.objects.filter(action="backtest_shadow").get()
    assert "rolling" in logged.reason and logged.after["backtest_id"] == rolling.backtest_id

