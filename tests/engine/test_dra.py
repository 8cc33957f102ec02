"""DRA gates at their boundaries: just under passes, just over is reduced or denied."""

from __future__ import annotations

import dataclasses

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


def intent(qty, side=Side.BUY, price=100.0, mid=100.0, ts=10 * S, symbol="X", n=0, lot=1.0):
    return OrderIntent(f"i{n}", symbol, side, qty, price, mid, ts, lot)


# Every limit out of the way: a test lowers only the one it is about, so that one binds.
UNBOUNDED = RiskLimits(capital=1e12, max_order_notional=1e12, max_position_notional=1e12,
                       max_gross_exposure=1e12, max_net_exposure=1e12, max_daily_loss=1e12,
                       max_drawdown_pct=100.0, max_orders_per_minute=1_000, price_collar_bps=50)


def only(**limit) -> RiskGate:
    """A gate where only ``limit`` can bind."""
    return RiskGate(dataclasses.replace(UNBOUNDED, **limit))


def breaches(d):
    return [(b.kind, b.limit, b.value) for b in d.breaches]


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
    # cap 200,000 / 100 - 1500 = 500; nothing else binds: order 50,100 <= 100,000,
    # gross 300,000/100 - 1500 = 1500, net 2500 - 1500 = 1000, capital 10,000 - 1500
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 500.0, ("max_position_notional",))


def test_gross_and_net_exposure_limits():
    e = exposure(positions={"Y": 1500.0}, marks={"Y": 100.0})  # 150,000 elsewhere
    assert evaluate(intent(1000), e).verdict is Verdict.ALLOW  # gross 250,000, net 250,000
    d = evaluate(intent(1001), e)
    # order cap 100,000 / 100 = 1000; net cap (250,000 - 150,000) / 100 = 1000; gross cap 1500
    assert (d.verdict, d.approved_quantity, d.reasons) == (
        Verdict.REDUCE, 1000.0, ("max_order_notional", "max_net_exposure"))
    short_elsewhere = exposure(positions={"Y": -2000.0}, marks={"Y": 100.0})  # gross 200,000
    d = evaluate(intent(1001), short_elsewhere)
    # gross cap (300,000 - 200,000) / 100 = 1000; net cap (250,000 + 200,000) / 100 = 4500
    assert (d.verdict, d.approved_quantity, d.reasons) == (
        Verdict.REDUCE, 1000.0, ("max_order_notional", "max_gross_exposure"))


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


# --- exposure caps with the symbol's own position open ---------------------------------------


def test_gross_exposure_binds_and_counts_the_own_long_position():
    # given gross limit 300,000, 1000 X long (own) and 500 Y short elsewhere at 100 (gross 50,000)
    gate = only(max_gross_exposure=300_000)
    e = exposure(positions={"X": 1000.0, "Y": -500.0}, marks={"X": 100.0, "Y": 100.0})

    # when buying 3000 X more at 100
    d = evaluate(intent(3000), e, gate=gate)

    # then the cap is (300,000 - 50,000) / 100 - 1000 own = 1500;
    # fully allowed it would be 50,000 + (1000 + 3000) * 100 = 450,000
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 1500.0, ("max_gross_exposure",))
    assert breaches(d) == [("max_gross_exposure", 300_000, 450_000)]
    # and exactly at the cap it passes: 50,000 + 2500 * 100 = 300,000
    assert evaluate(intent(1500), e, gate=gate).verdict is Verdict.ALLOW


def test_net_exposure_binds_and_counts_the_own_short_position():
    # given net limit 250,000, 800 X short (own) and 600 Y long elsewhere at 100 (net +60,000)
    gate = only(max_net_exposure=250_000)
    e = exposure(positions={"X": -800.0, "Y": 600.0}, marks={"X": 100.0, "Y": 100.0})

    # when selling 4000 X more at 100
    d = evaluate(intent(4000, side=Side.SELL), e, gate=gate)

    # then |60,000 + (-800 - q) * 100| <= 250,000  =>  q <= (250,000 + 60,000) / 100 - 800 = 2300;
    # fully allowed: |60,000 + (-800 - 4000) * 100| = |60,000 - 480,000| = 420,000
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 2300.0, ("max_net_exposure",))
    assert breaches(d) == [("max_net_exposure", 250_000, 420_000)]
    assert evaluate(intent(2300, side=Side.SELL), e, gate=gate).verdict is Verdict.ALLOW


def test_net_exposure_binds_with_the_own_long_position_and_open_orders():
    # given net limit 250,000, 700 X long plus a working buy of 300 X (own 1000), 500 Y long (net +50,000)
    gate = only(max_net_exposure=250_000)
    e = exposure(positions={"X": 700.0, "Y": 500.0}, open_orders={"X": 300.0}, marks={"X": 100.0, "Y": 100.0})

    # when buying 5000 X
    d = evaluate(intent(5000), e, gate=gate)

    # then q <= (250,000 - 50,000) / 100 - 1000 = 1000; fully: 50,000 + 6000 * 100 = 650,000
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 1000.0, ("max_net_exposure",))
    assert breaches(d) == [("max_net_exposure", 250_000, 650_000)]


def test_capital_budget_binds_and_counts_the_own_position():
    # given capital 50,000, 100 X long (own) and 200 Z long elsewhere at 50 (gross 10,000)
    gate = only(capital=50_000)
    e = exposure(positions={"X": 100.0, "Z": 200.0}, marks={"X": 100.0, "Z": 50.0})

    # when buying 1000 X at 100
    d = evaluate(intent(1000), e, gate=gate)

    # then q <= (50,000 - 10,000) / 100 - 100 = 300; fully: 10,000 + 1100 * 100 = 120,000
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, 300.0, ("capital_budget",))
    assert breaches(d) == [("capital_budget", 50_000, 120_000)]
    assert evaluate(intent(300), e, gate=gate).verdict is Verdict.ALLOW


def test_a_reduction_below_one_lot_is_a_deny_with_nothing_approved():
    # given gross limit 300,000, 2000 X long (own) and 1 Y short at 100 (gross 100), lots of 1000
    gate = only(max_gross_exposure=300_000)
    e = exposure(positions={"X": 2000.0, "Y": -1.0}, marks={"X": 100.0, "Y": 100.0})

    # when buying 5000 X
    d = evaluate(intent(5000, lot=1000.0), e, gate=gate)

    # then the cap is (300,000 - 100) / 100 - 2000 = 999 units, floored to 0 lots: denied
    # (without the own position it would be 2999 -> 2000 approved)
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.DENY, 0.0, ("max_gross_exposure",))
    assert breaches(d) == [("max_gross_exposure", 300_000, 100 + 7000 * 100)]


@pytest.mark.parametrize(("order_limit", "expected"), [
    (1_234_560, 12_000.0),  # 1,234,560 / 100 = 12,345.6 units -> 12 whole lots
    (1_299_990, 12_000.0),  # 12,999.9 units: rounds DOWN (nearest would be 13,000)
    (1_300_000, 13_000.0),  # exactly 13 lots
])
def test_an_approved_reduction_is_floored_to_whole_lots(order_limit, expected):
    # given a max order notional of order_limit at price 100, lots of 1000
    gate = only(max_order_notional=order_limit)

    # when asking for 20,000
    d = evaluate(intent(20_000, lot=1000.0), gate=gate)

    # then the approved quantity is the largest whole number of lots under the cap
    assert (d.verdict, d.approved_quantity, d.reasons) == (Verdict.REDUCE, expected, ("max_order_notional",))


# --- order-rate window edge ---------------------------------------------------------------------


@pytest.mark.parametrize("duplicate_window_ns", [S, 120 * S])  # 120 s: old orders are kept in memory
@pytest.mark.parametrize(("oldest_age_ns", "recent", "verdict"), [
    (60 * S, 2, Verdict.ALLOW),  # exactly 60 s old: out of the window (ts > intent.ts - 60 s)
    (60 * S - 1, 3, Verdict.DENY),  # 1 ns younger: in the window, 3 orders >= 3
])
def test_order_rate_window_edge(duplicate_window_ns, oldest_age_ns, recent, verdict):
    # given at most 3 orders a minute and 3 orders sent: one oldest_age_ns before the intent,
    # two more 30 s and 1 s before it (other quantities: never duplicates)
    gate = only(max_orders_per_minute=3, duplicate_window_ns=duplicate_window_ns)
    now = 200 * S
    gate.record_order(now - oldest_age_ns, "X", Side.BUY, 7)
    gate.record_order(now - 30 * S, "X", Side.BUY, 8)
    gate.record_order(now - S, "X", Side.BUY, 9)

    # when a new intent comes
    d = evaluate(intent(10, ts=now), gate=gate)

    # then it is allowed with 2 in the window and denied with 3, the breach counting this one (3 + 1)
    assert d.verdict is verdict
    if verdict is Verdict.DENY:
        assert (d.approved_quantity, d.reasons) == (0.0, ("order_rate",))
        assert breaches(d) == [("order_rate", 3, recent + 1)]
    else:
        assert (d.approved_quantity, d.reasons, d.breaches) == (10, (), ())
