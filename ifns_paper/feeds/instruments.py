"""Default microstructure of the symbols the shipped synthetic feeds carry.

Rough, documented orders of magnitude (not calibrated to a venue): FX majors
with 0.1-pip ticks, 1,000-unit lots and 1-5 million displayed; spot crypto
with exchange-like ticks and lots. A feed's ``ticks_per_second`` sets the
quote rate.
"""

from __future__ import annotations

from ifns_paper.feeds.synthetic import SymbolSpec

_FX = {"lot": 1000.0, "vol": 0.08, "trade_size": 200_000.0, "display_size": (1_000_000.0, 5_000_000.0),
       "spread_bps_per_vol": 8.0}
INSTRUMENTS: dict[str, SymbolSpec] = {
    "EURUSD": SymbolSpec(price=1.0850, tick=0.00001, **_FX),
    "GBPUSD": SymbolSpec(price=1.2700, tick=0.00001, **_FX),
    "AUDUSD": SymbolSpec(price=0.6600, tick=0.00001, **_FX),
    "USDCHF": SymbolSpec(price=0.8800, tick=0.00001, **_FX),
    "USDJPY": SymbolSpec(price=150.00, tick=0.001, **_FX),
    "BTCUSDT": SymbolSpec(price=40_000.0, tick=0.01, lot=0.00001, vol=0.6, trade_size=0.05,
                          display_size=(0.01, 3.0), spread_bps_per_vol=0.5),
    "ETHUSDT": SymbolSpec(price=2_200.0, tick=0.01, lot=0.0001, vol=0.7, trade_size=0.5,
                          display_size=(0.1, 30.0), spread_bps_per_vol=0.5),
}


def spec_for(symbol: str, *, quote_rate: float) -> SymbolSpec:
    try:
        base = INSTRUMENTS[symbol]
    except KeyError:
        raise ValueError(f"no synthetic microstructure for {symbol!r} (known: {', '.join(sorted(INSTRUMENTS))})") from None
    from dataclasses import replace

    return replace(base, quote_rate=quote_rate, trade_rate=max(0.5, quote_rate / 4))
