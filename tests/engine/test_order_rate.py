"""DRA's order-rate gate counts child orders when they are SENT to the broker, not when
their decision planned them: a TWAP's later slices count at their own send times.

The session engine runs on scripted quotes: a model whose signal is a step function of the
quote time (so each decision happens exactly when a test wants it), one symbol at mid 1.0,
zero latencies, and every limit out of the way except ``max_orders_per_minute``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.dra import Exposure, OrderIntent, RiskGate, RiskLimits, Verdict
from ifns_paper.engine.ei import ExecutionPolicy
from ifns_paper.engine.marketdata import QuoteBatch
from ifns_paper.engine.orders import OrderType, Side, TimeInForce
from ifns_paper.engine.routes import FillModel, RouteSpec
from ifns_paper.engine.session import SessionEngine, SessionSetup

S = 1_000_000_000
T0 = 1_700_000_000 * S  # the first decision; on the 1 s sampling grid, far from a day boundary
SYM = "EURUSD"
N = 3  # max_orders_per_minute

LIMITS = RiskLimits(capital=1_000_000, max_order_notional=1e12, max_position_notional=1e12,
                    max_gross_exposure=1e12, max_net_exposure=1e12, max_daily_loss=1e12,
                    max_drawdown_pct=100.0, max_orders_per_minute=N, price_collar_bps=100)
ROUTE = RouteSpec("R", FillModel.TOUCH, stale_ns=3_600 * S)  # no latency, quotes never stale


def twap(duration_s: int, slices: int) -> ExecutionPolicy:
    return ExecutionPolicy("twap", OrderType.MARKET, TimeInForce.DAY, "R", "twap", duration_s, slices)


IMMEDIATE = ExecutionPolicy("immediate", OrderType.MARKET, TimeInForce.IOC, "R")


class Scripted:
    """Signal ``steps[k][1]`` from time ``steps[k][0]`` on (0 before the first step)."""

    registry_id = "model.scripted"
    version = "0"

    def __init__(self, steps: list[tuple[int, float]]) -> None:
        self.steps = steps

    def signal(self, frame) -> np.ndarray:
        out = np.zeros(len(frame))
        for start, value in self.steps:
            out[frame.ts >= start] = value
        return out


def engine(policy: ExecutionPolicy, steps: list[tuple[int, float]]) -> SessionEngine:
    """Budget min(1e12, 1.0 * 1,000,000) = 1,000,000 at mid 1.0: signal 0.1 is a target of 100,000
    (10 lots of 10,000 for a 10-slice TWAP)."""
    return SessionEngine(SessionSetup(
        session_id="s_rate", lane="paper_test", strategy_id="strat.test@1", models=[(Scripted(steps), 1.0)],
        limits=LIMITS, policy=policy, routes={"R": ROUTE}, vol_target=1.0, budget_fraction=1.0,
        lot_sizes={SYM: 1000.0}))


def quote(session: SessionEngine, ts: int) -> list:
    """One quote at ``ts`` (bid 0.9999, ask 1.0001: mid 1.0, 1 bp from the touch)."""
    return session.on_quotes(QuoteBatch.from_arrays(SYM, [ts], [0.9999], [1.0001], [1e9], [1e9]))


def decisions(records) -> list[dict]:
    return [r.payload for r in records if r.type == "dra_decision"]


def sent_times(session: SessionEngine) -> list[int]:
    return [ts for ts, *_ in session.gate._orders]


# --- engine level: the real _decide / driver path --------------------------------------------


def test_planned_twap_slices_do_not_count_before_they_are_sent():
    # given a TWAP of 10 slices over 300 s (one every 30 s) and at most 3 orders a minute,
    # and a decision at T0 (buy 100,000: slice 1 of 10,000 sent at T0, 9 planned for later)
    session = engine(twap(300, 10), [(T0, 0.1), (T0 + S, 0.3)])
    first = decisions(quote(session, T0))
    assert [(d["verdict"], d["approved_quantity"]) for d in first] == [("ALLOW", 100_000.0)]
    assert sent_times(session) == [T0]  # only the slice sent now is counted

    # when the next decision comes 1 s later (target 300,000)
    second = decisions(quote(session, T0 + S))

    # then it is allowed: 1 order sent in the last 60 s, not 10 planned
    assert [(d["verdict"], d["reasons"]) for d in second] == [("ALLOW", [])]
    assert sent_times(session) == [T0, T0 + S]  # its own first slice, sent at once

    # and the later slices count at their own send times: T0 + 30 s (and not yet T0 + 31 s)
    session.advance_to(T0 + 30 * S)
    assert sent_times(session) == [T0, T0 + S, T0 + 30 * S]
    session.advance_to(T0 + 31 * S)
    assert sent_times(session) == [T0, T0 + S, T0 + 30 * S, T0 + 31 * S]


@pytest.mark.parametrize(("probe", "sent", "verdict"), [
    (T0 + 20 * S - 1, [T0, T0 + 10 * S], "ALLOW"),  # slice 3 not sent yet: N - 1 = 2 in the window
    (T0 + 20 * S, [T0, T0 + 10 * S, T0 + 20 * S], "DENY"),  # slice 3 went out at T0 + 20 s: N = 3
])
def test_sent_slices_count_just_under_and_at_the_limit(probe, sent, verdict):
    # given a TWAP of 10 slices over 100 s (one every 10 s) decided at T0, at most 3 orders a minute
    session = engine(twap(100, 10), [(T0, 0.1), (probe, 0.3)])
    quote(session, T0)

    # when a new decision comes at `probe`
    records = quote(session, probe)

    # then the slices sent by then are counted, and it is allowed with N - 1, denied with N
    assert sent_times(session)[:len(sent)] == sent
    [d] = decisions(records)
    assert d["verdict"] == verdict
    breaches = [(r.payload["kind"], r.payload["limit"], r.payload["value"])
                for r in records if r.type == "risk_breach"]
    if verdict == "DENY":
        assert (d["approved_quantity"], d["reasons"]) == (0.0, ["order_rate"])
        assert breaches == [("order_rate", N, N + 1)]  # this one would be the 4th
        assert sent_times(session) == sent  # nothing sent for a denied decision
    else:
        assert (d["approved_quantity"], d["reasons"], breaches) == (d["requested_quantity"], [], [])
        assert sent_times(session) == [*sent, probe]  # its first slice


@pytest.mark.parametrize(("probe", "verdict"), [
    (T0 + 60 * S, "ALLOW"),  # the slice of T0 is exactly 60 s old: out (T0 + 20 s, T0 + 40 s in)
    (T0 + 60 * S - 1, "DENY"),  # 1 ns earlier it is still in: 3 in the window
])
def test_a_slice_leaves_the_window_exactly_60_s_after_it_was_sent(probe, verdict):
    # given a TWAP of 3 slices over 60 s decided at T0: slices sent at T0, T0 + 20 s, T0 + 40 s
    session = engine(twap(60, 3), [(T0, 0.1), (probe, 0.3)])
    quote(session, T0)
    session.advance_to(T0 + 40 * S)
    assert sent_times(session) == [T0, T0 + 20 * S, T0 + 40 * S]

    # when a new decision comes at `probe`, then it is counted against the 60 s before it
    [d] = decisions(quote(session, probe))
    assert d["verdict"] == verdict
    if verdict == "DENY":
        assert d["reasons"] == ["order_rate"]


def test_immediate_orders_n_minus_1_pass_the_nth_is_denied():
    # given immediate (one order per decision) and decisions at T0, T0 + 1 s, T0 + 2 s, T0 + 3 s
    # with growing targets (100k, 300k, 600k, 1,000,000: never the same quantity, no duplicates)
    steps = [(T0, 0.1), (T0 + S, 0.3), (T0 + 2 * S, 0.6), (T0 + 3 * S, 1.0)]
    session = engine(IMMEDIATE, steps)

    # when the four quotes come
    records = [r for t, _ in steps for r in quote(session, t)]

    # then 0, 1 and 2 orders before: allowed; 3 before: denied, the breach counting it as the 4th
    assert [(d["verdict"], d["reasons"]) for d in decisions(records)] == [
        ("ALLOW", []), ("ALLOW", []), ("ALLOW", []), ("DENY", ["order_rate"])]
    assert [(r.payload["kind"], r.payload["value"]) for r in records if r.type == "risk_breach"] == [
        ("order_rate", N + 1)]
    assert [r.ts for r in records if r.type == "order_submitted"] == [T0, T0 + S, T0 + 2 * S]


# --- DRA level: record_order at chosen send times ---------------------------------------------


def evaluate(gate: RiskGate, ts: int, qty: float = 200_000.0):
    intent = OrderIntent("i", SYM, Side.BUY, qty, 1.0001, 1.0, ts, 1000.0)
    return gate.evaluate(intent, Exposure(equity=1e6, day_start_equity=1e6, peak_equity=1e6),
                         switch=SwitchState.ACTIVE, cooling=False, decision_id="d")


@pytest.mark.parametrize(("sent", "verdict"), [
    (N - 1, Verdict.ALLOW),
    (N, Verdict.DENY),
])
def test_gate_counts_recorded_sends_only(sent, verdict):
    # given `sent` slices recorded as sent in the last 60 s, and 7 more planned for the future
    # (not recorded: the engine records a slice only when the driver sends it)
    gate = RiskGate(LIMITS)
    now = T0 + 30 * S
    for k in range(sent):
        gate.record_order(T0 + k * 10 * S, SYM, Side.BUY, 10_000.0)

    # when a decision is evaluated now
    d = evaluate(gate, now)

    # then N - 1 passes and N is denied with the order-rate breach of N + 1
    assert d.verdict is verdict
    if verdict is Verdict.DENY:
        assert (d.approved_quantity, d.reasons) == (0.0, ("order_rate",))
        assert [(b.kind, b.limit, b.value) for b in d.breaches] == [("order_rate", N, N + 1)]
    else:
        assert (d.approved_quantity, d.reasons, d.breaches) == (200_000.0, (), ())
