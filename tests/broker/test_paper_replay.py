"""`paper_replay` end to end on the real recorded files, and its input errors."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from ifns_paper import paper_replay
from ifns_paper.engine.orders import TERMINAL_ORDER_STATUSES
from tests.conftest import ROOT

MARKET = ROOT / "data" / "market"
REPLAY = ROOT / "data" / "replay"
ROUTES = ROOT / "config" / "policies" / "execution_routes.json"


def _outputs(out):
    orders = [json.loads(line) for line in (out / "orders.ndjson").read_text().splitlines()]
    fills = [json.loads(line) for line in (out / "fills.ndjson").read_text().splitlines()]
    events = [json.loads(line) for line in (out / "events.ndjson").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return orders, fills, events, summary


def _check_consistent(orders, fills, events, summary):
    assert all(o["status"] in TERMINAL_ORDER_STATUSES for o in orders)
    for o in orders:
        own = [f for f in fills if f["client_order_id"] == o["client_order_id"]]
        assert sum(f["quantity"] for f in own) == pytest.approx(o["filled_quantity"])
    net = {}
    for f in fills:
        net[f["symbol"]] = net.get(f["symbol"], 0.0) + f["quantity"] * (1 if f["side"] == "buy" else -1)
    for symbol, qty in net.items():
        assert summary["ledger"]["positions"][symbol]["quantity"] == pytest.approx(qty)
    ledger = summary["ledger"]
    assert ledger["equity"] == pytest.approx(
        ledger["starting_capital"] + ledger["realized"] + ledger["unrealized"] - ledger["fees"])
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert summary["counts"]["fills"] == len(fills)


def test_btcusdt_quotes_and_trades(tmp_path, capsys):
    out = tmp_path / "btc"
    call_command("paper_replay", "--quotes", str(MARKET / "btcusdt_quotes_2021-01-08.csv"),
                 "--trades", str(MARKET / "btcusdt_trades_2021-01-08.csv"),
                 "--orders", str(REPLAY / "btcusdt_orders.csv"), "--routes", str(ROUTES), "--out", str(out),
                 "--seed", "1")
    assert "PAPER replay: 451 quotes, 2001 trades, 6 orders" in capsys.readouterr().out
    orders, fills, events, summary = _outputs(out)
    _check_consistent(orders, fills, events, summary)
    by_id = {o["client_order_id"]: o for o in orders}
    # The IOC market buy at 00:00:05 (+20 ms route latency) took the ask in force then.
    assert by_id["mkt-buy-1"]["status"] == "filled"
    assert by_id["mkt-buy-1"]["average_price"] == 39470.48
    assert by_id["impact-sell-1"]["status"] == "filled" and by_id["vwap-buy-1"]["filled_quantity"] > 0
    assert summary["counts"]["trades"] == 2001


def test_eurusd_fx_quotes_without_sizes(tmp_path):
    out = tmp_path / "fx"
    summary = paper_replay.run(quotes=[MARKET / "eurusd_quotes_2020-01-01.csv"], orders=REPLAY / "eurusd_orders.csv",
                               routes=ROUTES, out=out)
    orders, fills, events, summary = _outputs(out)
    _check_consistent(orders, fills, events, summary)
    by_id = {o["client_order_id"]: o for o in orders}
    assert by_id["fx-1"]["average_price"] == 1.12158  # the ask of the 17:15:36.365 quote
    # 2.5M against 1M displayed walks two synthetic levels 1 bp apart: (1 + 0.9999 + 0.5 * 0.9998) / 2.5
    assert by_id["fx-2"]["average_price"] == pytest.approx(1.12195 * (1 + 0.9999 + 0.5 * 0.9998) / 2.5)
    assert by_id["fx-3"]["average_price"] == 1.1218  # a resting limit fills at its limit
    assert by_id["fx-5"]["reason"] == "zero_volume"  # FX quotes carry no traded volume
    assert len(fills) == 6


def test_usdjpy_quotes_and_unknown_symbol_orders(tmp_path):
    orders_csv = tmp_path / "orders.csv"
    orders_csv.write_text(
        "ts,client_order_id,symbol,side,qty,type,limit_price,stop_price,tif,route_id\n"
        "2013-01-01 22:00:00.300000+00:00,jpy-1,USDJPY,buy,100000,market,,,IOC,SIM_TOUCH\n"
        "2013-01-01 22:00:00.300000+00:00,nope-1,GBPJPY,buy,100000,market,,,IOC,SIM_TOUCH\n"
    )
    out = tmp_path / "jpy"
    paper_replay.run(quotes=[MARKET / "usdjpy_quotes_2013-01-01.csv"], orders=orders_csv, routes=ROUTES, out=out)
    orders, fills, events, summary = _outputs(out)
    _check_consistent(orders, fills, events, summary)
    assert [(o["client_order_id"], o["status"], o["reason"]) for o in orders] == [
        ("jpy-1", "filled", ""), ("nope-1", "rejected", "no_market_data")]
    assert fills[0]["price"] == 86.728


def test_btc_perp_bars(tmp_path):
    out = tmp_path / "perp"
    paper_replay.run(bars=[MARKET / "btc-perp_bars-1m_2022-01.csv"], orders=REPLAY / "btcperp_orders.csv",
                     routes=ROUTES, out=out,
                     options=paper_replay.ImportOptions(bar_volume_in_quote_currency=True, default_displayed_size=5))
    orders, fills, events, summary = _outputs(out)
    _check_consistent(orders, fills, events, summary)
    assert summary["counts"]["quotes"] == summary["counts"]["trades"] == 45031
    assert all(o["status"] == "filled" for o in orders)


def test_same_inputs_and_seed_give_byte_identical_fills(tmp_path):
    args = {"quotes": [MARKET / "btcusdt_quotes_2021-01-08.csv"], "trades": [MARKET / "btcusdt_trades_2021-01-08.csv"],
            "orders": REPLAY / "btcusdt_orders.csv", "routes": ROUTES}
    first = paper_replay.run(out=tmp_path / "a", seed=5, **args)
    second = paper_replay.run(out=tmp_path / "b", seed=5, **args)
    assert first["fills_hash"] == second["fills_hash"]
    assert (tmp_path / "a" / "fills.ndjson").read_bytes() == (tmp_path / "b" / "fills.ndjson").read_bytes()


HEADER = "ts,client_order_id,symbol,side,qty,type,limit_price,stop_price,tif,route_id\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ts,client_order_id,symbol\n", ":1: header: missing column(s) side"),
        (HEADER.strip() + ",extra\n", ":1: header: unknown column(s) extra"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,hold,1,market,,,IOC,SIM_TOUCH\n", ":2: side: Input should be 'buy' or 'sell'"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,buy,-1,market,,,IOC,SIM_TOUCH\n", ":2: qty: Input should be greater than 0"),
        (HEADER + "yesterday,a,BTCUSDT,buy,1,market,,,IOC,SIM_TOUCH\n", ":2: ts: unparsable timestamp 'yesterday'"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,buy,1,limit,,,GTC,SIM_TOUCH\n", ":2: row: limit order needs a positive limit_price"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,buy,1,market,,,IOC,SIM_TOUCH\n"
                  "2021-01-08T00:00:06Z,a,BTCUSDT,buy,1,market,,,IOC,SIM_TOUCH\n", ":3: client_order_id: 'a' already used on line 2"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,buy,1,market,,,IOC,SIM_NOPE\n", "route_id: unknown route(s) SIM_NOPE"),
        (HEADER + "2021-01-08T00:00:05Z,a,BTCUSDT,buy,1,market,,,IOC,SIM_TOUCH,x\n", ":2: more fields than the header"),
    ],
)
def test_bad_order_files_are_refused_with_file_line_and_field(tmp_path, text, message):
    orders_csv = tmp_path / "orders.csv"
    orders_csv.write_text(text)
    with pytest.raises(CommandError) as err:
        call_command("paper_replay", "--quotes", str(MARKET / "btcusdt_quotes_2021-01-08.csv"),
                     "--orders", str(orders_csv), "--routes", str(ROUTES), "--out", str(tmp_path / "out"))
    assert message in str(err.value)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_bad_market_data_is_refused_with_its_line(tmp_path):
    quotes = tmp_path / "q.csv"
    quotes.write_text("ts,symbol,bid,ask,bid_size,ask_size\n"
                      "2021-01-08T00:00:01Z,BTCUSDT,100,101,1,1\n"
                      "2021-01-08T00:00:02Z,BTCUSDT,102,101,1,1\n")
    with pytest.raises(CommandError, match=r"q.csv:line 3: crossed quote"):
        call_command("paper_replay", "--quotes", str(quotes), "--orders", str(REPLAY / "btcusdt_orders.csv"),
                     "--routes", str(ROUTES), "--out", str(tmp_path / "out"))


def test_a_broken_routes_file_names_the_field(tmp_path):
    routes = tmp_path / "routes.json"
    routes.write_text(ROUTES.read_text().replace('"max_participation": 0.1', '"max_participation": 2'))
    with pytest.raises(CommandError, match=r"routes.json:\d+: routes.SIM_VWAP.simulation.max_participation"):
        call_command("paper_replay", "--quotes", str(MARKET / "btcusdt_quotes_2021-01-08.csv"),
                     "--orders", str(REPLAY / "btcusdt_orders.csv"), "--routes", str(routes),
                     "--out", str(tmp_path / "out"))


def test_the_fills_hash_can_be_recomputed_from_fills_ndjson(tmp_path):
    from ifns_paper.engine.determinism import fills_hash

    summary = paper_replay.run(quotes=[MARKET / "eurusd_quotes_2020-01-01.csv"], orders=REPLAY / "eurusd_orders.csv",
                               routes=ROUTES, out=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "fills.ndjson").read_text().splitlines()]
    assert fills_hash(records) == summary["fills_hash"]


def test_strategy_replay_of_a_session_file(tmp_path, capsys):
    session = ROOT / "config" / "paper_trading" / "session_research_fx_momentum.yaml"
    args = ["paper_replay", "--session", str(session), "--config-dir", str(ROOT / "config"),
            "--quotes", str(MARKET / "eurusd_quotes_2020-01-01.csv")]
    call_command(*args, "--out", str(tmp_path / "a"))
    out = capsys.readouterr().out
    assert out.startswith("PAPER strategy replay of research_fx_momentum_v13: 9500 quotes")
    events = [json.loads(line) for line in (tmp_path / "a" / "events.ndjson").read_text().splitlines()]
    kinds = {e["type"] for e in events}
    assert {"msi_proposal", "dra_decision", "order_submitted", "order_filled"} <= kinds
    assert all(e["env"] == "paper" and e["lane"] == "paper_research" for e in events)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    fills = [json.loads(line) for line in (tmp_path / "a" / "fills.ndjson").read_text().splitlines()]
    net = sum(f["quantity"] * (1 if f["side"] == "buy" else -1) for f in fills)
    assert summary["ledger"]["positions"]["EURUSD"]["quantity"] == pytest.approx(net)
    call_command(*args, "--out", str(tmp_path / "b"))
    assert (tmp_path / "a" / "events.ndjson").read_bytes() == (tmp_path / "b" / "events.ndjson").read_bytes()


def test_orders_and_session_are_exclusive(tmp_path):
    with pytest.raises(CommandError, match="exactly one of --orders"):
        call_command("paper_replay", "--quotes", str(MARKET / "eurusd_quotes_2020-01-01.csv"),
                     "--out", str(tmp_path))
