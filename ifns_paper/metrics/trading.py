"""Statistics of closed trades (round trips matched FIFO per symbol: ``engine.trades``).

A trade's P&L here is net of its share of fees (``RoundTrip.net_pnl``), account currency.
A trade with P&L ≤ 0 is a loss: hit rate = winners / (winners + losers) over all closed
trades. Expectancy = mean P&L per trade = hit × average win + (1 − hit) × average loss.
"""

from __future__ import annotations

from collections.abc import Sequence

from ifns_paper.engine.trades import RoundTrip
from ifns_paper.metrics.performance import profit_factor


def trade_stats(trades: Sequence[RoundTrip]) -> dict:
    """Counts, hit rate, average win and loss, expectancy, profit factor (None where undefined)."""
    pnls = [t.net_pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    n = len(pnls)
    return {
        "trades": n,
        "winners": len(wins),
        "losers": len(losses),
        "hit_rate": len(wins) / n if n else None,
        "average_win": sum(wins) / len(wins) if wins else None,
        "average_loss": sum(losses) / len(losses) if losses else None,
        "expectancy": sum(pnls) / n if n else None,
        "net_pnl": sum(pnls),
        "profit_factor": profit_factor(pnls) if n else None,
    }
