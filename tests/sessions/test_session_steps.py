"""Real-time steps against real Redis Streams and the database."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis as redis_lib
from django.conf import settings

from broker_app.models import PaperFill, PaperOrder, PaperPosition
from ifns_paper import marketbus
from ifns_paper.engine.marketdata import QuoteBatch, TradeBatch
from ifns_paper.engine.replay import interleave
from sessions_app.engines import build_engine
from sessions_app.models import KillSwitch, PaperSession, SessionCheckpoint
from sessions_app.services import session_transition
from sessions_app.steps import engine_load, session_step
from telemetry_app.models import TelemetryEvent

SID = "research_fx_momentum_v13"  # feed synthetic_fx, EURUSD GBPUSD USDJPY, policy immediate
MS = 1_000_000


@pytest.fixture
def started(bundle):
    """The shipped configuration applied and ``SID`` running."""
    from sessions_app.services import config_apply

    config_apply(bundle=bundle, actor="t")
    session_transition(session_id=SID, action="start", actor="t")
    return SID


@pytest.fixture
def client():
    c = redis_lib.Redis.from_url(settings.REDIS_URL)
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    c.close()


def market(n, seed=5, symbol="EURUSD", t0=1_764_000_000_000_000_000):
    rng = np.random.default_rng(seed)
    drift = np.where(np.arange(n) < n // 2, 3e-6, -3e-6)
    mid = 1.1 * np.exp(np.cumsum(drift + rng.normal(0, 3e-5, n)))
    half = 0.00001 * rng.integers(1, 3, n)
    ts = t0 + np.arange(n) * 50 * MS
    size = rng.integers(1, 50, n) * 100_000.0
    quotes = QuoteBatch.from_arrays(symbol, ts, mid - half, mid + half, size, size)
    trades = TradeBatch.from_arrays(symbol, ts[::5] + 1, mid[::5], rng.integers(1, 20, len(ts[::5])) * 1e5,
                                    rng.choice([-1, 1], len(ts[::5])))
    return list(interleave([quotes, trades]))


def publish(client, batches, start, stop):
    """Publish rows [start, stop) of the interleaved stream, in order."""
    marketbus.publish(client, "synthetic_fx", _cut(batches, start, stop))


def consistent(session_id):
    fills = PaperFill.objects.filter(session__session_id=session_id)
    net = sum(f.quantity * (1 if f.side == "buy" else -1) for f in fills)
    pos = PaperPosition.objects.filter(session__session_id=session_id, symbol="EURUSD").first()
    assert (pos.quantity if pos else 0.0) == pytest.approx(net)
    for order in PaperOrder.objects.filter(session__session_id=session_id):
        assert sum(f.quantity for f in order.fills.all()) == pytest.approx(order.filled_quantity)
    seqs = list(TelemetryEvent.objects.filter(session__session_id=session_id).values_list("sequence", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.django_db(transaction=True)
def test_steps_trade_on_streamed_data_and_write_everything_consistently(started, client):
    data = market(6000)
    total = sum(len(b) for b in data)
    for start in range(0, total, 700):  # the feed publishes, a step follows
        publish(client, data, start, start + 700)
        session_step(session_id=SID, client=client)
    kinds = set(TelemetryEvent.objects.filter(session__session_id=SID).values_list("event_type", flat=True))
    assert {"paper_session_state_change", "msi_proposal", "dra_decision", "order_submitted",
            "order_filled"} <= kinds
    assert PaperFill.objects.filter(session__session_id=SID).exists()
    consistent(SID)
    assert all(e.env == "paper" and e.lane == "paper_research"
               for e in TelemetryEvent.objects.filter(session__session_id=SID))
    checkpoint = SessionCheckpoint.objects.get(session__session_id=SID)
    engine = engine_load(checkpoint.engine_state)
    engine.ledger.check_invariant()
    # a step without new data changes nothing
    before = (TelemetryEvent.objects.count(), PaperFill.objects.count())
    assert session_step(session_id=SID, client=client).skipped == {SID: "no new data"}
    assert (TelemetryEvent.objects.count(), PaperFill.objects.count()) == before


class WorkerDied(BaseException):
    """What a worker killed mid-step looks like from inside: not an ``Exception`` a step
    would contain to one session, it unwinds the whole step."""


@pytest.mark.django_db(transaction=True)
def test_a_step_that_dies_after_its_first_inserts_leaves_nothing_and_the_retry_matches(started, client,
                                                                                         monkeypatch):
    from sessions_app import steps
    data = market(3000)
    publish(client, data, 0, 10_000)

    # the worker dies after the step inserted its orders and fills, before events and checkpoints
    inserted = {}

    def die():
        inserted["orders"] = PaperOrder.objects.count()
        inserted["fills"] = PaperFill.objects.count()
        raise WorkerDied

    monkeypatch.setattr(steps, "_test_hook_after_execution_rows", die)
    with pytest.raises(WorkerDied):
        session_step(session_id=SID, client=client)
    assert inserted["orders"] > 0 and inserted["fills"] > 0  # the failure came after real writes
    assert PaperOrder.objects.count() == 0 and PaperFill.objects.count() == 0  # ... all rolled back
    assert PaperPosition.objects.count() == 0 and not SessionCheckpoint.objects.exists()
    assert SID not in steps._ENGINES  # the engine ran past the database: not kept
    assert TelemetryEvent.objects.filter(session__session_id=SID).count() == 2  # register + start only
    assert PaperSession.objects.get(session_id=SID).last_event_seq == 2

    monkeypatch.setattr(steps, "_test_hook_after_execution_rows", lambda: None)
    session_step(session_id=SID, client=client)
    retried = list(TelemetryEvent.objects.filter(session__session_id=SID).values_list("event_type", "payload"))

    # An uninterrupted replay of the same stream makes the same events.
    assert retried[2:] == replay_events(SID, data)
    consistent(SID)


@pytest.mark.django_db(transaction=True)
def test_a_halted_session_sends_nothing_new(started, client):
    data = market(4000)
    publish(client, data, 0, 2000)
    session_step(session_id=SID, client=client)
    orders_before = PaperOrder.objects.count()
    KillSwitch.objects.create(scope="global", state="halted", actor="ops", reason="test")
    publish(client, data, 2000, 10_000)
    session_step(session_id=SID, client=client)
    assert PaperOrder.objects.count() == orders_before
    denials = TelemetryEvent.objects.filter(session__session_id=SID, event_type="dra_decision",
                                            payload__verdict="DENY")
    assert denials.exists() and all(d.payload["reasons"] == ["kill_switch_halted"] for d in
                                    TelemetryEvent.objects.filter(event_type="dra_decision", sequence__gt=0,
                                                                  payload__verdict="DENY"))


def test_malformed_stream_entries_are_skipped_and_named(client):
    key = marketbus.stream_key("synthetic_fx")
    client.xadd(key, {"y": "EURUSD", "k": "q", "ts": 1, "b": "1.1", "a": "1.2", "bs": "1", "as": "1"})
    bad_id = client.xadd(key, {"y": "EURUSD", "k": "q", "ts": 2, "b": "oops", "a": "1.2", "bs": "1",
                               "as": "1"}).decode()
    client.xadd(key, {"y": "GBPUSD", "k": "q", "ts": 2, "b": "1.3", "a": "1.4", "bs": "1", "as": "1"})
    client.xadd(key, {"y": "EURUSD", "k": "t", "ts": 3, "p": "1.15", "s": "5"})
    read = marketbus.read(client, key, {"EURUSD"}, after=None)
    assert read.rows == 1 and [b.symbol for b in read.batches] == ["EURUSD"]
    assert read.bad == [f"{key}@{bad_id}: b: not a number: 'oops'",
                        f"{key}@{read.last_id}: g: missing field"]
    both = marketbus.read(client, key, None, after=None)
    assert [(b.symbol, len(b)) for b in both.batches] == [("EURUSD", 1), ("GBPUSD", 1)]


def replay_events(session_id, items):
    from sessions_app.steps import apply_items

    engine = build_engine(PaperSession.objects.get(session_id=session_id))
    records, _, _ = apply_items(engine, items, 0)
    return [(r.type, r.payload) for r in records]


def stored_events(session_id):
    return list(TelemetryEvent.objects.filter(session__session_id=session_id)
                .exclude(event_type="paper_session_state_change").values_list("event_type", "payload"))


@pytest.mark.django_db(transaction=True)
def test_an_engine_cached_by_a_worker_is_not_used_once_another_worker_stepped(started, client):
    from sessions_app import steps
    data = market(4500)
    publish(client, data, 0, 1500)
    session_step(session_id=SID, client=client)
    assert steps._ENGINES[SID].steps == 1  # this worker keeps the engine it just saved
    stale = steps._ENGINES.pop(SID)  # ... and another worker, without it, takes the next step
    publish(client, data, 1500, 3000)
    session_step(session_id=SID, client=client)
    steps._ENGINES[SID] = stale  # back here, the old engine is still in memory
    publish(client, data, 3000, 10_000)
    session_step(session_id=SID, client=client)
    assert SessionCheckpoint.objects.get(session__session_id=SID).steps == 3
    assert stored_events(SID) == replay_events(SID, data)
    consistent(SID)


@pytest.mark.django_db(transaction=True)
def test_one_step_advances_every_session_of_a_feed_each_from_its_own_start(started, client):
    from sessions_app.steps import step_sessions

    gate = "gatecheck_fx_momentum_v12"  # synthetic_fx too, EURUSD among its symbols
    data = market(5000)
    publish(client, data, 0, 2500)
    session_transition(session_id=gate, action="start", actor="t")
    rest = _cut(data, 2500, 10_000)  # what is published after the second session started
    publish(client, data, 2500, 10_000)
    result = step_sessions([SID, gate, "no_such_session"], client=client)
    assert sorted(result.sessions) == sorted([SID, gate])
    assert result.skipped == {"no_such_session": "unknown session"}
    assert stored_events(SID) == replay_events(SID, data)
    assert stored_events(gate) == replay_events(gate, rest)
    cps = {c.session.session_id: c.offsets for c in SessionCheckpoint.objects.select_related("session")}
    assert cps[SID] == cps[gate]  # both consumed the stream up to its end
    consistent(SID)


@pytest.mark.django_db(transaction=True)
def test_a_feed_clock_fills_an_order_without_waiting_for_the_next_tick(started, client):
    from ifns_paper.engine.marketdata import QuoteBatch as QB
    data = market(6000)
    # Offline: the first decision that sends an order, and the quote it was taken on.
    engine = build_engine(PaperSession.objects.get(session_id=SID))
    upto = 0
    for batch in data:
        records = engine.on_quotes(batch) if isinstance(batch, QB) else engine.on_trades(batch)
        submitted = [r for r in records if r.type == "order_submitted"]
        if submitted:
            decision_ts = submitted[0].ts
            cut = int(np.searchsorted(batch.ts, decision_ts, "right"))
            upto += cut
            break
        upto += len(batch)
    else:
        pytest.fail("no order in the test market")
    publish(client, data, 0, upto)  # up to the decision quote, nothing after it
    session_step(session_id=SID, client=client)
    kinds = [k for k, _ in stored_events(SID)]
    assert "order_submitted" in kinds and "order_filled" not in kinds  # the venue has not seen it yet
    marketbus.publish(client, "synthetic_fx", [], clock_ns=decision_ts + 1_000 * MS)  # the feed's clock moves
    session_step(session_id=SID, client=client)
    filled = [p for k, p in stored_events(SID) if k == "order_filled"]
    assert len(filled) == 1 and filled[0]["ts"] <= decision_ts + 1_000 * MS
    consistent(SID)


def test_clock_entries_are_read_in_stream_order_for_every_symbol_filter(client):
    key = marketbus.stream_key("synthetic_fx")
    q = QuoteBatch.from_arrays("EURUSD", [10, 20], [1.1, 1.1], [1.2, 1.2], [1.0, 1.0], [1.0, 1.0])
    marketbus.publish(client, "synthetic_fx", [q], clock_ns=25)
    marketbus.publish(client, "synthetic_fx", [q.slice(0, 0)], clock_ns=30)
    read = marketbus.read(client, key, {"GBPUSD"}, after=None)
    assert read.batches == [marketbus.Clock(25), marketbus.Clock(30)] and read.rows == 0
    read = marketbus.read(client, key, {"EURUSD"}, after=None)
    assert [type(b).__name__ for b in read.batches] == ["QuoteBatch", "Clock", "Clock"]


@pytest.mark.django_db(transaction=True)
def test_quiet_steps_write_nothing_and_a_restart_from_the_older_checkpoint_catches_up(started, client, monkeypatch):
    from sessions_app import steps
    data = market(3000)
    publish(client, data, 0, 1500)
    session_step(session_id=SID, client=client)
    written = SessionCheckpoint.objects.get(session__session_id=SID)
    # Data of a symbol the session does not trade, and feed clocks: the engine moves on, says nothing.
    other = market(40, symbol="AUDUSD", t0=int(data[-1].ts[-1]) + 1)
    quiet_ts = int(other[-1].ts[-1])
    for i, batch in enumerate(other):
        marketbus.publish(client, "synthetic_fx", [batch], clock_ns=int(batch.ts[-1]))
        result = session_step(session_id=SID, client=client)
        assert result.sessions == [SID] and result.events == 0, i
    again = SessionCheckpoint.objects.get(session__session_id=SID)
    assert (again.steps, again.offsets, again.data_ts) == (written.steps, written.offsets, written.data_ts)
    assert steps._ENGINES[SID].data_ts == quiet_ts  # ahead of the checkpoint, in memory
    consumed = json.loads(client.hget(steps.HEALTH_KEY, SID))["offsets"]
    assert consumed == steps._ENGINES[SID].offsets != written.offsets  # monitoring sees the real position

    steps._ENGINES.clear()  # the worker restarts: the next step starts from the older checkpoint
    publish(client, data, 1500, 10_000)
    session_step(session_id=SID, client=client)
    quiet_clocks = [marketbus.Clock(int(b.ts[-1])) for b in other]
    # (the AUDUSD rows are not the session's: only the clocks reach its engine)
    expected = replay_events(SID, [*_cut(data, 0, 1500), *quiet_clocks, *_cut(data, 1500, 10_000)])
    assert stored_events(SID) == expected
    consistent(SID)

    # A session that stays quiet is still checkpointed, every CHECKPOINT_EVERY_S.
    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    before = SessionCheckpoint.objects.get(session__session_id=SID).steps
    marketbus.publish(client, "synthetic_fx", [], clock_ns=quiet_ts + 10 ** 12)
    session_step(session_id=SID, client=client)
    assert SessionCheckpoint.objects.get(session__session_id=SID).steps == before + 1


def _cut(batches, start, stop):
    """Rows [start, stop) of an interleaved list of batches, as batches."""
    out, seen = [], 0
    for b in batches:
        lo, hi = max(start - seen, 0), min(stop - seen, len(b))
        if lo < hi:
            out.append(b.slice(lo, hi))
        seen += len(b)
    return out


@pytest.mark.django_db(transaction=True)
def test_a_resumed_session_does_not_trade_on_what_was_published_while_it_was_paused(started, client):
    import time

    data = market(6000)
    publish(client, data, 0, 2000)
    session_step(session_id=SID, client=client)
    session_transition(session_id=SID, action="pause", actor="t")
    publish(client, data, 2000, 4000)  # the market goes on while the session is paused
    assert session_step(session_id=SID, client=client).skipped == {SID: "not running"}
    time.sleep(0.002)  # stream entry ids have millisecond resolution
    session_transition(session_id=SID, action="resume", actor="t")
    time.sleep(0.002)
    publish(client, data, 4000, 10_000)
    session_step(session_id=SID, client=client)
    assert stored_events(SID) == replay_events(SID, [*_cut(data, 0, 2000), *_cut(data, 4000, 10_000)])
    consistent(SID)
