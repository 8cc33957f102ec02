"""`paper_replay`: an order stamped after the last market-data row is rejected and recorded like
any other order, not a crash."""

from __future__ import annotations

import json

import pytest

from ifns_paper import paper_replay
from tests.conftest import ROOT

ROUTES = ROOT / "config" / "policies" / "execution_routes.json"
HEADER = "ts,client_order_id,symbol,side,qty,type,limit_price,stop_price,tif,route_id\n"


def _ndjson(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("route_id", ["SIM_TOUCH", "SIM_VWAP", "SIM_IMPACT", "SIM_LIMIT_QUEUE"])
def test_an_order_after_the_last_data_row_is_rejected_and_recorded(tmp_path, route_id):
    quotes_csv = tmp_path / "quotes.csv"
    quotes_csv.write_text("ts,symbol,bid,ask,bid_size,ask_size\n"
                          "2021-01-08T00:00:01Z,BTCUSDT,100,101,1,1\n"
                          "2021-01-08T00:00:02Z,BTCUSDT,100,101,1,1\n")
    orders_csv = tmp_path / "orders.csv"
    orders_csv.write_text(HEADER
                          + "2021-01-08T00:00:01.5Z,early,BTCUSDT,buy,0.5,market,,,IOC,SIM_TOUCH\n"
                          + f"2021-01-08T00:00:10Z,late,BTCUSDT,buy,0.5,market,,,IOC,{route_id}\n")
    out = tmp_path / "out"
    paper_replay.run(quotes=[quotes_csv], orders=orders_csv, routes=ROUTES, out=out)

    orders = {o["client_order_id"]: o for o in _ndjson(out / "orders.ndjson")}
    assert set(orders) == {"early", "late"}
    # early: sent 1.5 s, arrives 1.52 s (insert 20 ms) on the 1 s quote: 0.5 of the 1 displayed @ ask 101
    assert (orders["early"]["status"], orders["early"]["average_price"]) == ("filled", 101.0)
    # late: sent 10 s, arrives 10.02 s (or later); the last quote (2 s) is ~8 s old > 2 s stale limit
    late = orders["late"]
    assert late["status"] == "rejected" and late["reason"] in ("no_market_data", "stale_quote")
    assert late["filled_quantity"] == 0.0 and late["fills"] == 0
    assert late["submitted_ts"] == paper_replay.parse_ts("2021-01-08T00:00:10Z")

    counts = json.loads((out / "summary.json").read_text())["counts"]
    assert (counts["orders"], counts["fills"], counts["orders_rejected"]) == (2, 1, 1)
    assert counts[f"reason_{late['reason']}"] == 1

    events = _ndjson(out / "events.ndjson")
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert any(e["type"] == "order" and e["client_order_id"] == "late" and e["status"] == "rejected"
               for e in events)
    assert [f["client_order_id"] for f in _ndjson(out / "fills.ndjson")] == ["early"]
