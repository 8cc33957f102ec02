"""Session metrics: pure functions over plain arrays, the same for paper sessions, backtests
and imported live runs (Django-free, like the engine; pandas and numpy allowed).

* ``conventions``: sampling grid, annualisation from the calendar, risk-free conversion;
* ``performance``: equity on the grid, returns, volatility, Sharpe, Sortino, drawdown,
  turnover, profit factor;
* ``trading``: closed round trips (``engine.trades``): hit rate, average win/loss, expectancy;
* ``execution``: slippage statistics, implementation shortfall, fill and reject rates;
* ``benchmark``: tracking error and information ratio;
* ``risk``: envelope utilisation (peak and time-weighted mean).
"""
