"""A summary (``metrics.summary``) as a readable terminal report, with units: money in the
account currency with two decimals, returns and drawdowns in %, slippage and shortfall in
bps, durations in h/min/s. Undefined metrics print as a dash."""

from __future__ import annotations

from datetime import UTC, datetime

DASH = "—"


def _money(x, ccy: str) -> str:
    return DASH if x is None else f"{x:,.2f} {ccy}"


def _pct(x, digits: int = 2) -> str:
    return DASH if x is None else f"{x * 100:.{digits}f} %"


def _num(x, digits: int = 2) -> str:
    return DASH if x is None else f"{x:,.{digits}f}"


def _bps(x) -> str:
    return DASH if x is None else f"{x:,.2f} bp"


def _duration(seconds) -> str:
    if seconds is None:
        return DASH
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


def _when(ns) -> str:
    return DASH if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_report(s: dict) -> str:
    ccy = s["conventions"].get("currency", "")
    c = s["conventions"]
    pnl, r, t, ex, b, risk = s["pnl"], s["returns"], s["trades"], s["execution"], s["benchmark"], s["risk"]
    dd = r["max_drawdown"]
    lines = [
        f"PAPER summary of {s['session_id']} (env={s['env']}, lane {s['lane']}, {s['strategy_id']}) as of "
        f"{_when(s['as_of'])}{' · final' if s['final'] else ''}",
        f"  conventions: equity on a {c['grid_s']:g} s grid, {c['calendar']} calendar "
        f"({c['periods_per_year']:,.0f} periods a year), risk-free {c['risk_free_annual'] * 100:g} % a year",
        "",
        "P&L",
        f"  total            {_money(pnl['total'], ccy):>22}   return {_pct(pnl['return'], 4)}",
        f"  realized         {_money(pnl['realized'], ccy):>22}   (before fees)",
        f"  unrealized       {_money(pnl['unrealized'], ccy):>22}",
        f"  fees             {_money(pnl['fees'], ccy):>22}",
        f"  equity           {_money(pnl['equity'], ccy):>22}   from {_money(pnl['starting_capital'], ccy)}",
        "Returns (annualised)",
        f"  volatility {_pct(r['volatility'])}   Sharpe {_num(r['sharpe'])}   Sortino {_num(r['sortino'])}   "
        f"periods {r['periods']}" + (f" (ratios from {c['min_periods']} periods on)"
                                     if r["periods"] < c.get("min_periods", 0) else ""),
        f"  max drawdown {_pct(dd['depth'], 3)} ({_money(dd['amount'], ccy)}), {_duration(dd['duration_s'])}"
        f"{'' if dd['recovered'] else ' and not recovered'}",
        f"  turnover {_num(r['turnover'])}x   profit factor {_num(r['profit_factor'])}",
        "Trades (closed round trips, FIFO)",
        f"  {t['trades']} trades, {t['winners']} won, {t['losers']} lost: hit rate {_pct(t['hit_rate'], 1)}; "
        f"average win {_money(t['average_win'], ccy)}, loss {_money(t['average_loss'], ccy)}; "
        f"expectancy {_money(t['expectancy'], ccy)}",
        f"  fills {s['fills']['count']}, traded notional {_money(s['fills']['traded_notional'], ccy)}",
        "Execution",
        f"  slippage vs arrival mid: mean {_bps(ex['slippage']['mean_bps'])}, p50 {_bps(ex['slippage']['p50_bps'])}, "
        f"p90 {_bps(ex['slippage']['p90_bps'])}, p99 {_bps(ex['slippage']['p99_bps'])}, "
        f"worst {_bps(ex['slippage']['worst_bps'])} ({ex['slippage']['count']} fills)",
    ]
    for route, o in ex["orders_by_route"].items():
        lines.append(f"  {route}: {o['orders']} orders, filled {_pct(o['fill_rate'], 1)}, rejected "
                     f"{_pct(o['reject_rate'], 1)}{' ' + str(o['rejects_by_reason']) if o['rejects_by_reason'] else ''}"
                     f", time to fill p50 {_num(o['time_to_fill_ms_p50'], 0)} ms")
    i = ex["implementation_shortfall"]
    lines += [
        f"  implementation shortfall ({i['decisions']} decisions): mean {_bps(i['mean_bps'])}; total "
        f"{_money(i['total'], ccy)} = delay {_money(i['delay'], ccy)} + trading {_money(i['trading'], ccy)} + "
        f"opportunity {_money(i['opportunity'], ccy)} + fees {_money(i['fees'], ccy)}",
        f"Benchmark {b['benchmark']}: tracking error {_pct(b['tracking_error'])}, information ratio "
        f"{_num(b['information_ratio'])} ({b['how']})",
        "Risk envelope usage (peak / time-weighted mean, of the limit)",
    ]
    for name in ("order_notional", "gross_exposure", "net_exposure", "daily_loss", "drawdown", "order_rate"):
        u = risk[name]
        lines.append(f"  {name.replace('_', ' '):16} {_pct(u['peak'], 1):>9} / {_pct(u['time_weighted_mean'], 1):>9}"
                     f"   limit {_num(u['limit'], 0)}")
    for symbol, u in risk["position_per_symbol"].items():
        lines.append(f"  position {symbol:7} {_pct(u['peak'], 1):>9} / {_pct(u['time_weighted_mean'], 1):>9}"
                     f"   limit {_num(u['limit'], 0)}")
    lines.append(f"  breaches: {', '.join(f'{k} {v}' for k, v in risk['breaches'].items()) or 'none'}")
    inc = s["incidents"]
    lines.append(f"Incidents: {inc['count']}" + (f" ({', '.join(f'{k} {v}' for k, v in inc['by_kind'].items())})"
                                                  if inc["count"] else ""))
    return "\n".join(lines)
