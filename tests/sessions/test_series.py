"""The equity/exposure series the steps write: one sample a second on the engine's grid
(a point at every whole minute at least), the same after a restart, thinned to one a minute
after an hour, served by time range."""

from __future__ import annotations

import pytest

from ifns_paper import marketbus
from sessions_app import dispatch
from sessions_app.engines import build_engine
from sessions_app.models import PaperSession, SessionCheckpoint
from sessions_app.services import session_transition
from sessions_app.steps import apply_items, session_step
from telemetry_app.models import EquitySample
from telemetry_app.services import series_downsample
from tests.sessions.test_session_steps import market, publish

SID = "research_fx_momentum_v13"
S = 1_000_000_000


@pytest.fixture
def bus():
    c = dispatch.redis_client()
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)
    yield c
    for key in c.scan_iter("ifns:md:*"):
        c.delete(key)


@pytest.mark.django_db(transaction=True)
def test_steps_write_one_sample_a_second_consistent_with_the_ledger(loaded, bus, client, monkeypatch):
    from sessions_app import steps

    session_transition(session_id=SID, action="start", actor="t")
    data = market(3000)  # 150 s of quotes, 50 ms apart
    for start in range(0, 10_000, 700):
        publish(bus, data, start, start + 700)
        session_step(session_id=SID, client=bus)
    # quiet steps keep their samples in memory until the next checkpoint (at most ~2 s later)
    monkeypatch.setattr(steps, "CHECKPOINT_EVERY_S", 0.0)
    marketbus.publish(bus, "synthetic_fx", [], clock_ns=int(data[-1].ts[-1]) + 1)  # the feed's clock
    session_step(session_id=SID, client=bus)
    samples = list(EquitySample.objects.filter(session__session_id=SID).order_by("ts_ns"))
    ts = [s.ts_ns for s in samples]
    assert len(samples) >= 140 and all(t % S == 0 for t in ts)  # on the 1 s grid
    assert all(b - a == S for a, b in zip(ts, ts[1:], strict=False))  # none missing: the market never paused
    # every sample: cash + net exposure (marked to mid) = equity
    for s in samples:
        assert s.cash + s.net == pytest.approx(s.equity, rel=1e-12)
    # exactly what an uninterrupted replay of the same stream samples
    engine = build_engine(PaperSession.objects.get(session_id=SID))
    apply_items(engine, [*data, marketbus.Clock(int(data[-1].ts[-1]) + 1)], 0)
    replayed = {p.ts: p for p in engine.drain_series()}
    assert list(replayed) == ts
    for s in samples:
        p = replayed[s.ts_ns]
        assert (s.equity, s.cash, s.realized, s.fees, s.gross, s.net, s.drawdown, s.positions, s.marks) == (
            p.equity, p.cash, p.realized, p.fees, p.gross, p.net, p.drawdown, p.positions, p.marks)
    assert SessionCheckpoint.objects.get(session__session_id=SID).equity == pytest.approx(engine.ledger.equity)

    # served by time range, and downsampled on request
    first_ns = ts[0]
    body = client.get(f"/api/v1/sessions/{SID}/series/?from={first_ns}&to={first_ns + 9 * S}").json()
    assert [p["ts_ns"] for p in body["points"]] == ts[:10]
    body = client.get(f"/api/v1/sessions/{SID}/series/?every=60").json()
    assert len(body["points"]) == len({t // (60 * S) for t in ts})
    bad = client.get(f"/api/v1/sessions/{SID}/series/?from=yesterday")
    assert bad.status_code == 400 and "from" in bad.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_a_restart_from_the_checkpoint_writes_no_sample_twice(loaded, bus):
    from sessions_app import steps

    session_transition(session_id=SID, action="start", actor="t")
    data = market(2000)
    publish(bus, data, 0, 1200)
    session_step(session_id=SID, client=bus)
    before = EquitySample.objects.count()
    steps._ENGINES.clear()
    # the worker restarts; the last step is delivered again (its checkpoint was written) and more data comes
    publish(bus, data, 1200, 10_000)
    session_step(session_id=SID, client=bus)
    ts = list(EquitySample.objects.order_by("ts_ns").values_list("ts_ns", flat=True))
    assert len(ts) == len(set(ts)) > before


@pytest.mark.django_db
def test_old_samples_are_thinned_to_one_a_minute(loaded):
    session = PaperSession.objects.get(session_id=SID)
    base = 1_764_000_000 * S // (60 * S) * (60 * S)  # a whole minute
    EquitySample.objects.bulk_create([
        EquitySample(session=session, ts_ns=base + i * S, equity=1e6, cash=1e6, realized=0, unrealized=0, fees=0,
                     gross=0, net=0, drawdown=0, positions={}, marks={}) for i in range(180)])  # 3 minutes, 1 s apart
    deleted = series_downsample(before_ns=base + 120 * S)  # the first two minutes are old
    assert deleted == 118  # 120 old samples, 2 of them whole minutes
    kept = list(EquitySample.objects.order_by("ts_ns").values_list("ts_ns", flat=True))
    assert kept[:3] == [base, base + 60 * S, base + 120 * S] and len(kept) == 2 + 60
