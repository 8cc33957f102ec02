"""Imported backtests and live runs in the canonical results format: validated with
file:line errors and nothing written on failure, summarised by the same functions as a
session (P&L checked by hand), usable as a session's ``backtest:<id>`` benchmark and in
comparisons."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from ifns_paper.exceptions import ApplicationError, Conflict
from sessions_app.models import Backtest, PaperSession
from sessions_app.services.backtests import results_import
from sessions_app.services.summaries import summary_compute
from tests.sessions.test_summaries import SID, bus, traded  # noqa: F401 - fixtures

T0 = 1_764_000_000  # the traded fixture's market starts here (s); a whole minute


def write_results(folder: Path, *, rid="bt_fx_momo_2025", equity=None, fills=None, summary=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary or {
        "id": rid, "strategy": "strat.momentum_fx@1.3.0", "symbols": ["EURUSD", "GBPUSD"],
        "starting_capital": 1_000_000.0, "currency": "USD", "session_id": SID}))
    (folder / "equity.csv").write_text(equity or "ts,equity\n" + "".join(
        f"{(T0 + 60 * k) * 10**9},{1_000_000 + v}\n" for k, v in enumerate([0.0, 3.0, -2.0, 5.0, 8.0])))
    (folder / "fills.csv").write_text(fills or (
        "ts,symbol,side,quantity,price,fee,slippage_bps,route_id\n"
        "2025-11-24T16:00:30Z,EURUSD,buy,10000,1.1000,1.0,0.5,SIM_TOUCH\n"
        "2025-11-24T16:03:30Z,EURUSD,sell,10000,1.1010,1.0,0.7,SIM_TOUCH\n"))
    return folder


@pytest.mark.django_db(transaction=True)
def test_an_imported_backtest_is_summarised_like_a_session(loaded, tmp_path):
    row = results_import(folder=write_results(tmp_path / "bt"), actor="t")
    assert (row.kind, row.status, row.session.session_id, str(row.strategy)) == \
        ("imported", "completed", SID, "strat.momentum_fx@1.3.0")
    s = row.summary
    # one round trip: bought 10,000 at 1.1000, sold at 1.1010 → 10.00 USD before 2.00 USD fees
    assert s["env"] == "backtest" and s["session_id"] == "bt_fx_momo_2025"
    assert s["pnl"]["realized"] == pytest.approx(10.0) and s["pnl"]["fees"] == pytest.approx(2.0)
    assert s["pnl"]["total"] == pytest.approx(8.0)  # the equity file's last point
    assert (s["trades"]["trades"], s["trades"]["winners"]) == (1, 1)
    assert s["execution"]["slippage"]["mean_bps"] == pytest.approx(0.6)
    assert s["returns"]["periods"] == 4
    files = Path(settings.IFNS_DATA_DIR) / row.out_dir
    assert {"series.ndjson", "fills.ndjson", "paper_summary.json", "source_equity.csv"} <= {
        p.name for p in files.iterdir()}
    with pytest.raises(Conflict, match="id: a backtest 'bt_fx_momo_2025' is registered already"):
        results_import(folder=tmp_path / "bt", actor="t")


@pytest.mark.django_db(transaction=True)
def test_a_broken_folder_lists_every_problem_by_file_and_line_and_writes_nothing(loaded, tmp_path):
    folder = write_results(
        tmp_path / "bad", rid="Bad Id!",
        equity="ts,equity\n2025-11-24T16:00:00Z,1000000\n2025-11-24T16:00:00Z,1000001\nnot-a-time,5\n",
        fills="ts,symbol,side,quantity,price,fee\n2025-11-24T16:00:30Z,EURUSD,hold,1,1.1,0\n"
              "2025-11-24T16:00:31Z,XAUUSD,buy,1,-1.1,0\n")
    with pytest.raises(ApplicationError) as err:
        results_import(folder=folder, actor="t")
    problems = err.value.extra["problems"]
    assert "summary.json: id: a lower-case slug (a-z, 0-9, _ . -) is required, got 'Bad Id!'" in problems
    assert any(p.startswith("equity.csv:3: ts: must increase") for p in problems)
    assert any(p.startswith("equity.csv:4: unparsable timestamp 'not-a-time'") for p in problems)
    assert "fills.csv:2: side: expected buy or sell, got 'hold'" in problems
    assert "fills.csv:3: symbol: 'XAUUSD' is not among summary.json's symbols" in problems
    assert not Backtest.objects.exists() and not (Path(settings.IFNS_DATA_DIR) / "backtests").exists()
    with pytest.raises(CommandError, match="fills.csv:2: side"):
        call_command("paper_backtest", "import", str(folder))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ApplicationError, match="summary.json: missing"):
        results_import(folder=tmp_path / "empty", actor="t")


@pytest.mark.django_db(transaction=True)
def test_a_live_run_imports_as_live_and_a_backtest_benchmark_resolves(traded, tmp_path):  # noqa: F811
    out = StringIO()
    call_command("paper_live", "import", str(write_results(tmp_path / "live", rid="live_fx_canary")), stdout=out)
    assert "imported live run live_fx_canary registered" in out.getvalue()
    assert Backtest.objects.get(backtest_id="live_fx_canary").summary["env"] == "live"
    results_import(folder=write_results(tmp_path / "bt"), actor="t")
    PaperSession.objects.filter(session_id=SID).update(benchmark="backtest:bt_fx_momo_2025")
    bench = summary_compute(session_id=SID, final=False)["benchmark"]
    assert bench["benchmark"] == "backtest:bt_fx_momo_2025" and bench["how"] == "backtest bt_fx_momo_2025's equity"
    assert bench["tracking_error"] is not None
    PaperSession.objects.filter(session_id=SID).update(benchmark="backtest:nope")
    assert summary_compute(session_id=SID, final=False)["benchmark"]["how"] == \
        "backtest:nope: no such completed backtest"
    # and the session compares with it
    out = StringIO()
    call_command("paper_compare", SID, "--backtest", "bt_fx_momo_2025", stdout=out)
    assert "imported backtest bt_fx_momo_2025" in out.getvalue()
