"""DRA gates at their boundaries: just under passes, just over is reduced or denied."""

from __future__ import annotations

import pytest

from ifns_paper.engine.controls import (
    Cooldown,
    CooldownPolicy,
    KillSwitches,
    SwitchState,
)
from ifns_paper.engine.dra import Exposure, OrderIntent, RiskGate, RiskLimits, Verdict
from ifns_paper.engine.orders import Side

S = 1_000_000_000
LIMITS = RiskLimits(capital=1_000_000, max_order_notional=100_000, max_position_notional=200_000,
                    max_gross_exposure=300_000, max_net_exposure=250_000, max_daily_loss=10_000,
                    max_drawdown_pct=5.0, max_orders_per_minute=3, price_collar_bps=50, max_order_quantity=5_000)


def intent(qty, side=Side.BUY, price=100.0, mid=100.0, ts=10 * S, symbol="X", n=0):
    return OrderIntent(f"i{n}", symbol, side, qty, price, mid, ts)


def exposure(**kw):
    base = {"equity": 1_000_000.0, "day_start_equity": 1_000_000.0, "peak_equity": 1_000_000.0}
    return Exposure(**(base | kw))


def evaluate(i, e=None, *, switch=SwitchState.ACTIVE, cooling=False, gate=None):
    gate = gate or RiskGate(LIMITS)
    return gate.evaluate(i, e or exposure(), switch=switch, cooling=cooling, decision_id="d")


def test_max_order_notional_boundary():
    assert evaluate(intent(1000)).verdict is Verdict.ALLOW  # 100,000 exactly
    d = evaluate(intent(1001))
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 1000.0, ("max_order_notional",))
    assert d.breaches[0].kind == "max_order_notional"


def test_max_order_quantity_boundary():
    cheap = dict(price=1.0, mid=1.0)
    assert evaluate(intent(5000, **cheap)).verdict is Verdict.ALLOW
    assert evaluate(intent(5001, **cheap)).approved_quantity == 5000


def test_position_limit_counts_open_orders():
    e = exposure(positions={"X": 1000.0}, open_orders={"X": 500.0}, marks={"X": 100.0})
    assert evaluate(intent(500), e).verdict is Verdict.ALLOW  # 2000 * 100 = 200,000
    d = evaluate(intent(501), e)
    assert (d.verdict, d.approved_quantity) == (Verdict.REDUCE, 500.0) and "max_position_notional" in d.reasons


def test_gross_and_net_exposure_limits():
    e = exposure(positions={"Y": 1500.0}, marks={"Y": 100.0})  # 150,000 elsewhere
    assert evaluate(intent(1000), e).verdict is Verdict.ALLOW  # gross 250,000, net 250,000
    d = evaluate(intent(1001), e)
    assert d.verdict is Verdict.REDUCE and set(d.reasons) >= {"max_net_exposure", "max_order_notional"}
    short_elsewhere = exposure(positions={"Y": -2000.0}, marks={"Y": 100.0})  # gross 200,000
    d = evaluate(intent(1001), short_elsewhere)
    assert d.approved_quantity == 1000.0 and "max_gross_exposure" in d.reasons


def test_capital_budget():
    limits = RiskLimits(capital=50_000, max_order_notional=1e9, max_position_notional=1e9, max_gross_exposure=1e9,
                        max_net_exposure=1e9, max_daily_loss=1e9, max_drawdown_pct=100, max_orders_per_minute=100,
                        price_collar_bps=50)
    gate = RiskGate(limits)
    assert evaluate(intent(500), gate=gate).verdict is Verdict.ALLOW
    d = evaluate(intent(501), gate=gate)
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 500.0, ("capital_budget",))


def test_price_collar_boundary():
    assert evaluate(intent(10, price=100.5)).verdict is Verdict.ALLOW  # 50 bps
    d = evaluate(intent(10, price=100.51))
    assert (d.verdict, d.reasons) == (Verdict.DENY, ("price_collar",)) and d.breaches[0].value > 50


def test_daily_loss_and_drawdown_deny_new_risk_but_not_reductions():
    at_limit = exposure(equity=990_000.0, positions={"X": 100.0}, marks={"X": 100.0})
    assert evaluate(intent(10), at_limit).reasons == ("daily_loss_limit",)
    assert evaluate(intent(10, side=Side.SELL), at_limit).verdict is Verdict.ALLOW
    just_under = exposure(equity=990_000.01)
    assert evaluate(intent(10), just_under).verdict is Verdict.ALLOW
    drawdown = exposure(equity=1_045_000.0, day_start_equity=1_045_000.0, peak_equity=1_100_000.0)  # 5.0 %
    assert evaluate(intent(10), drawdown).reasons == ("max_drawdown",)
    assert evaluate(intent(10), exposure(equity=1_045_001.0, day_start_equity=1_045_001.0,
                                         peak_equity=1_100_000.0)).verdict is Verdict.ALLOW


def test_order_rate_throttle_and_duplicates():
    gate = RiskGate(LIMITS)
    for k in range(3):
        assert evaluate(intent(10 + k, ts=(10 + k) * S), gate=gate).verdict is Verdict.ALLOW
        gate.record_order((10 + k) * S, "X", Side.BUY, 10 + k)
    assert evaluate(intent(20, ts=30 * S), gate=gate).reasons == ("order_rate",)
    assert evaluate(intent(20, ts=70 * S + 1), gate=gate).verdict is Verdict.ALLOW  # the first aged out
    gate2 = RiskGate(LIMITS)
    gate2.record_order(10 * S, "X", Side.BUY, 10)
    assert evaluate(intent(10, ts=10 * S + S // 2), gate=gate2).reasons == ("duplicate_order",)
    assert evaluate(intent(10, ts=11 * S), gate=gate2).verdict is Verdict.ALLOW


def test_kill_switch_states():
    e = exposure(positions={"X": 100.0}, marks={"X": 100.0})
    assert evaluate(intent(10), e, switch=SwitchState.HALTED).reasons == ("kill_switch_halted",)
    assert evaluate(intent(10, side=Side.SELL), e, switch=SwitchState.HALTED).verdict is Verdict.DENY
    assert evaluate(intent(10), e, switch=SwitchState.REDUCING).reasons == ("kill_switch_reducing",)
    d = evaluate(intent(150, side=Side.SELL), e, switch=SwitchState.REDUCING)
    assert (d.verdict, d.approved_quantity) == (Verdict.REDUCE, 100.0)  # reduces, never flips
    assert d.reasons == ("reduce_only_to_flat",) and d.breaches == ()  # a cap, not a limit hit


def test_cooldown_blocks_new_risk_only():
    e = exposure(positions={"X": 100.0}, marks={"X": 100.0})
    assert evaluate(intent(10), e, cooling=True).reasons == ("cooldown",)
    assert evaluate(intent(10, side=Side.SELL), e, cooling=True).verdict is Verdict.ALLOW


def test_effective_switch_is_the_most_severe_scope():
    switches = KillSwitches()
    assert switches.effective(lane="a", session="s") is SwitchState.ACTIVE
    change = switches.set("lane:a", "reducing", ts=1, actor="ops", reason="vol")
    assert change.payload() == {"scope": "lane:a", "from": "active", "to": "reducing", "actor": "ops",
                                "reason": "vol"}
    assert switches.set("lane:a", "reducing", ts=2, actor="ops", reason="again") is None
    switches.set("session:s", "halted", ts=3, actor="auto", reason="drawdown")
    assert switches.effective(lane="a", session="s") is SwitchState.HALTED
    assert switches.effective(lane="a", session="t") is SwitchState.REDUCING
    restored = KillSwitches()
    restored.restore(switches.state())
    assert restored.effective(lane="b", session="s") is SwitchState.HALTED


def test_cooldown_after_n_breaches_expires_on_time():
    cd = Cooldown(CooldownPolicy(max_breaches=3, window_ns=60 * S, duration_ns=300 * S))
    assert cd.on_breach(0) is None and cd.on_breach(10 * S) is None
    change = cd.on_breach(20 * S)
    assert change.active and change.until == 320 * S
    assert cd.active(319 * S) and not cd.active(320 * S)
    assert cd.expire(319 * S) is None
    end = cd.expire(320 * S)
    assert end is not None and not end.active and cd.expire(400 * S) is None


def test_breaches_outside_the_window_do_not_count():
    cd = Cooldown(CooldownPolicy(max_breaches=2, window_ns=60 * S))
    cd.on_breach(0)
    assert cd.on_breach(60 * S) is None  # the first is exactly one window old


def test_cooldown_on_loss_and_restart():
    cd = Cooldown(CooldownPolicy(max_loss=1_000, window_ns=60 * S, duration_ns=30 * S))
    assert cd.on_equity(0, 100_000) is None
    assert cd.on_equity(10 * S, 99_001) is None
    change = cd.on_equity(20 * S, 99_000)
    assert change.active and "lost 1000.00" in change.reason
    again = Cooldown(cd.policy)
    again.restore(cd.state())
    assert again.active(49 * S) and not again.active(50 * S)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_allow_passes_the_full_quantity(side):
    d = evaluate(intent(10, side=side))
    assert (d.verdict, d.approved_quantity, d.reasons, d.breaches) == (Verdict.ALLOW, 10, (), ())
