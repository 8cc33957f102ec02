"""End to end on real processes: a registered session on the synthetic feed trades for
~30 s through a real Celery worker and real Redis, and every event type of spec §6.1
appears, consistent with the orders, fills and positions. Stopped, its final summary
(written by the worker) appears once in ``paper_summary.ndjson``, with the P&L of the
ledger and of the fills table and their count."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import SHIPPED_CONFIG
from tests.system.procs import feed, manage, shell_json, stop, system_env, worker

SID = "research_fx_momentum_v13"
ALL_TYPES = {"msi_proposal", "dra_decision", "order_submitted", "order_filled", "order_rejected", "risk_breach",
             "kill_switch_change", "cooldown_state_change", "paper_session_state_change"}

REPORT = """
import json, pickle
from collections import Counter
from broker_app.models import PaperFill, PaperOrder, PaperPosition
from sessions_app.models import SessionCheckpoint
from sessions_app.steps import engine_load
from telemetry_app.models import TelemetryEvent
events = TelemetryEvent.objects.filter(session__session_id="%(sid)s")
fills = PaperFill.objects.filter(session__session_id="%(sid)s")
net = {}
for f in fills:
    net[f.symbol] = net.get(f.symbol, 0.0) + f.quantity * (1 if f.side == "buy" else -1)
engine = engine_load(SessionCheckpoint.objects.get(session__session_id="%(sid)s").engine_state)
engine.ledger.check_invariant()
# the P&L from the fills table alone: cash flows and fees, open positions at the ledger's marks
cash = sum((-1 if f.side == "buy" else 1) * f.quantity * f.price - f.fee for f in fills)
marks = engine.ledger.snapshot()["positions"]
print(json.dumps({
    "ledger_pnl": engine.ledger.pnl,
    "fills_pnl": cash + sum(net.get(s, 0.0) * p["mark"] for s, p in marks.items() if net.get(s)),
    "fill_count": fills.count(),
    "types": dict(Counter(events.values_list("event_type", flat=True))),
    "labels": sorted(set(events.values_list("env", "lane"))),
    "net": net,
    "positions": {p.symbol: p.quantity for p in PaperPosition.objects.filter(session__session_id="%(sid)s")},
    "orders_filled_qty_ok": all(abs(sum(f.quantity for f in o.fills.all()) - o.filled_quantity) < 1e-6
                                for o in PaperOrder.objects.filter(session__session_id="%(sid)s")),
}))
"""


@pytest.mark.slow
def test_a_session_trades_in_real_time_and_emits_every_event_type(tmp_path):
    # A research lane with tight limits (breaches, then a cooldown) and a chaotic route (rejections).
    config = tmp_path / "config"
    shutil.copytree(SHIPPED_CONFIG, config)
    env_file = config / "environments" / "paper.yaml"
    env_file.write_text(env_file.read_text().replace("max_order_notional: 250000.00", "max_order_notional: 30000.00")
                        .replace("max_breaches: 5", "max_breaches: 2"))
    policies = config / "policies" / "execution_policies.json"
    policies.write_text(policies.read_text().replace('"route": "SIM_TOUCH"', '"route": "SIM_CHAOS"'))
    routes = config / "policies" / "execution_routes.json"
    routes.write_text(routes.read_text().replace('"reject_probability": 0.05', '"reject_probability": 0.3')
                      .replace('"weekdays": ["mon", "tue", "wed", "thu", "fri"]',
                               '"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'))
    with system_env(tmp_path, redis_db=13, IFNS_CONFIG_DIR=str(config)) as env:
        manage(env, "ifns_setup", "--no-demo-user")
        manage(env, "paper_session", "start", SID, "--reason", "e2e")
        market = feed(env, "synthetic_fx", log=tmp_path / "feed.log", interval_ms=20)
        steps = worker(env, "celery,steps.0,steps.1", tmp_path / "worker.log", name="e2e", concurrency=2)
        summaries = tmp_path / "data" / "registry" / "paper_summary.ndjson"
        try:
            time.sleep(10)
            manage(env, "paper_killswitch", "set", f"session:{SID}", "reducing", "--reason", "e2e check")
            time.sleep(4)
            manage(env, "paper_killswitch", "set", f"session:{SID}", "active", "--reason", "e2e check over")
            time.sleep(16)
            stop(market)
            time.sleep(2)
            manage(env, "paper_session", "stop", SID, "--reason", "e2e over")
            for _ in range(60):  # the worker writes the final summary (queued by the stop)
                if summaries.exists() and any(json.loads(line)["final"] for line in summaries.read_text().splitlines()):
                    break
                time.sleep(0.5)
        finally:
            stop(market, steps)
        report = shell_json(env, REPORT % {"sid": SID})
    assert set(report["types"]) >= ALL_TYPES, report["types"]
    assert report["labels"] == [["paper", "paper_research"]]
    for symbol, qty in report["net"].items():
        assert report["positions"][symbol] == pytest.approx(qty)
    assert report["orders_filled_qty_ok"]
    ndjson = (tmp_path / "data" / "telemetry" / f"{SID}.ndjson").read_text().splitlines()
    assert {json.loads(line)["type"] for line in ndjson} >= ALL_TYPES - {"paper_session_state_change"}

    lines = [json.loads(line) for line in summaries.read_text().splitlines()]
    final = [s for s in lines if s["final"]]
    assert len(final) == 1 and final[0]["session_id"] == SID and final[0]["env"] == "paper"
    assert len({(s["session_id"], s["as_of"], s["final"]) for s in lines}) == len(lines)  # never duplicated
    assert final[0]["pnl"]["total"] == pytest.approx(report["ledger_pnl"], abs=1e-6)
    assert final[0]["pnl"]["total"] == pytest.approx(report["fills_pnl"], abs=1e-6)
    assert final[0]["fills"]["count"] == report["fill_count"] > 0
