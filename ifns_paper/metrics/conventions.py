"""The conventions every metric states and every summary carries.

* **Sampling grid**: equity is marked to mid and sampled on a fixed grid of
  ``grid_s`` seconds (the last value at or before each grid point); returns are
  simple returns between consecutive grid points.
* **Annualisation**: ``periods_per_year`` grid periods, from the instrument's
  calendar — ``24/7`` (crypto: 365 days of 24 h) or ``24/5`` (FX: 260 trading days
  of 24 h, 52 weeks × 5). Never 252 "days" for intraday data: a 1-minute grid on a
  24/7 market has 525,600 periods a year.
* **Risk-free rate**: annual in the configuration, per period
  ``(1 + rf) ** (1 / periods_per_year) − 1``.
* **Minimum sample**: annualised ratios (Sharpe, Sortino, information ratio) are
  reported from ``min_periods`` returns on (30: half an hour on a 1-minute grid);
  before that they are None — a ratio annualised from a few minutes is noise (two
  1-minute returns of a calm FX session give a Sharpe of −19,000).

Plain Python, no Django.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SECONDS_PER_DAY = 86_400
CALENDAR_DAYS = {"24/7": 365.0, "24/5": 260.0}


def periods_per_year(calendar: str, grid_s: float) -> float:
    """Grid periods in a year of ``calendar`` (``24/7`` or ``24/5``); ``grid_s`` in seconds."""
    if calendar not in CALENDAR_DAYS:
        raise ValueError(f"calendar: expected one of {', '.join(CALENDAR_DAYS)}, got {calendar!r}")
    if grid_s <= 0:
        raise ValueError(f"grid_s: must be > 0, got {grid_s!r}")
    return CALENDAR_DAYS[calendar] * SECONDS_PER_DAY / grid_s


def risk_free_per_period(annual: float, periods: float) -> float:
    """``(1 + annual) ** (1 / periods) − 1``: the per-period rate that compounds to ``annual``."""
    return (1.0 + annual) ** (1.0 / periods) - 1.0


@dataclass(frozen=True)
class Conventions:
    grid_s: float = 60.0  # equity sampling grid, seconds
    calendar: str = "24/7"  # "24/7" (crypto) or "24/5" (FX)
    risk_free_annual: float = 0.0  # e.g. 0.04 for 4 % a year
    currency: str = "USD"
    min_periods: int = 30  # returns needed before an annualised ratio is reported

    def __post_init__(self) -> None:
        periods_per_year(self.calendar, self.grid_s)  # validates both
        if self.min_periods < 2:
            raise ValueError(f"min_periods: must be >= 2, got {self.min_periods!r}")

    @property
    def periods_per_year(self) -> float:
        return periods_per_year(self.calendar, self.grid_s)

    @property
    def risk_free_per_period(self) -> float:
        return risk_free_per_period(self.risk_free_annual, self.periods_per_year)

    def as_dict(self) -> dict:
        return {**asdict(self), "periods_per_year": self.periods_per_year,
                "risk_free_per_period": self.risk_free_per_period,
                "returns": "simple returns of equity marked to mid, sampled on the grid",
                "sharpe": "mean(excess) / std(excess, ddof=1) * sqrt(periods_per_year)",
                "sortino": "mean(excess) / sqrt(mean(min(excess, 0)^2)) * sqrt(periods_per_year)",
                "volatility": "std(returns, ddof=1) * sqrt(periods_per_year)"}


def calendar_of(symbols: list[str]) -> str:
    """``24/7`` when every symbol is a crypto pair (quoted in USDT/USDC/BTC/ETH), else ``24/5``."""
    crypto = ("USDT", "USDC", "BUSD")
    return "24/7" if symbols and all(s.endswith(crypto) for s in symbols) else "24/5"
