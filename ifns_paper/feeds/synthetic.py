"""A seeded, deterministic, live-like synthetic market for several symbols.

``SyntheticMarket.advance(until_ns)`` returns everything that happened since
the previous call: canonical ``QuoteBatch``/``TradeBatch`` per symbol and the
``Glitch`` records (ground truth of the feed faults injected in that span). A
real-time loop calls it every N ms with the wall clock; a replay calls it with
big steps. **The data depend only on the configuration, the seed and
``start_ns`` — never on the step sizes**: time is cut into fixed blocks of
``block_s`` seconds that are generated whole, in order, from per-symbol random
streams, and ``advance`` only hands out what lies before ``until_ns``.

Units: time is int64 ns since the Unix epoch (UTC), like the canonical data;
durations in the specs are seconds; rates are events per second; prices in
quote currency; sizes in base units; volatilities annualised over a 24/7
year of 365 days (``YEAR_S``).

Model, per symbol (symbols are independent of each other, except for the
market-wide disconnects):

* **Regimes**: a continuous-time Markov chain over ``RegimeSpec`` (default
  calm / volatile / trending). A regime lasts an exponential time with mean
  ``mean_duration_s``, then jumps to another one with the probabilities of
  its ``next`` mapping. The chain starts in the first regime.
* **Mid**: geometric Brownian motion in log space, ``d log m = (mu -
  sigma^2/2) dt + sigma dW``, with ``sigma`` and ``mu`` of the current regime,
  integrated exactly between book updates (and across regime switches).
* **Quotes**: the book changes at Poisson times with rate ``quote_rate *
  activity`` (activity of the current regime). Each change gives a quote
  centred on the mid, on the symbol's tick grid; its spread in ticks is
  Poisson with mean ``mid * spread_bps_per_vol * 1e-4 * current annual vol /
  tick`` and at least ``min_spread_ticks``, so it widens with volatility.
  Displayed sizes are uniform in ``display_size``, rounded to the lot. The
  first quote of every symbol is at ``start_ns`` (a snapshot).
* **Trades**: Poisson times with rate ``trade_rate * activity * curve(t)``
  where ``curve`` is the U-shaped intraday curve (mean 1 over the UTC day,
  ``1 + intraday_u`` times higher at 00:00/24:00 UTC than at 12:00). Sizes are
  lognormal with median ``trade_size * curve(t) ** intraday_size_exponent``,
  rounded to the lot (at least one lot). The taker buys with probability
  0.5, or ``0.5 +/- trend_buy_tilt`` in the direction of a trending regime's
  drift; a buy prints at the current ask, a sell at the current bid (the
  true book, see glitches).
* **Glitches** (``GlitchSpec``; rates are starts per second per symbol, i.e.
  the chance of a start within one second is ``1 - exp(-rate)``): the
  *true* market goes on, only what the feed delivers is damaged, and the
  damaged data is emitted as a real feed would emit it — never cleaned:

  - ``gap``: no quotes for ``gap_s`` seconds (trades still arrive);
  - ``stale``: for ``stale_s`` seconds quotes keep arriving but repeat the
    book of the stale start unchanged (only ``ts`` moves), while trades print
    at the moving true book;
  - ``crossed``: the next quote after the arrival has bid above ask by
    ``crossed_ticks`` ticks;
  - ``outlier``: the next quote after the arrival is moved (both sides) by
    ``outlier_bps`` basis points up or down;
  - ``disconnect`` (market-wide, ``symbol=None``): nothing at all for any
    symbol for ``disconnect_s`` seconds.

  Intervals are half-open ``[start_ns, end_ns)``; a point glitch has
  ``end_ns = start_ns + 1`` and ``start_ns`` is the damaged quote's ``ts``. A
  record is returned by the ``advance`` call whose span contains its
  ``start_ns``, with its planned end. A new gap/stale/disconnect does not
  start while one of the same kind (and symbol) is running; a point glitch
  that falls on a quote that is not delivered, or already stale or damaged,
  is dropped and has no record.

Random streams (numpy PCG64 from ``SeedSequence``): per symbol one for the
price path, one for trades and one for glitches, keyed by ``(seed,
crc32(symbol))``; one market-level stream for disconnects. So adding a symbol
does not change the others, and enabling glitches does not change the true
market (the delivered data differ only where glitches hit).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import numpy as np

from ifns_paper.engine.marketdata import NS_PER_SECOND, QuoteBatch, TradeBatch

YEAR_S = 365 * 86_400  # seconds in the year volatilities are annualised over (24/7 market)
DAY_NS = 86_400 * NS_PER_SECOND
_NEVER = int(np.iinfo(np.int64).max)


class GlitchKind(StrEnum):
    GAP = "gap"  # no quotes for a while (trades continue)
    STALE = "stale"  # quotes repeat unchanged
    CROSSED = "crossed"  # one quote with bid > ask
    OUTLIER = "outlier"  # one quote far off the market
    DISCONNECT = "disconnect"  # nothing at all, every symbol


_KIND_ORDER = {kind: i for i, kind in enumerate(GlitchKind)}


@dataclass(frozen=True, slots=True)
class Glitch:
    """An injected feed fault: ``[start_ns, end_ns)``; ``symbol`` None = all symbols."""

    kind: GlitchKind
    start_ns: int
    end_ns: int
    symbol: str | None


@dataclass(frozen=True)
class SymbolSpec:
    """One symbol's microstructure. Units in brackets.

    price: initial mid [quote currency].
    tick: price grid step [quote currency]; every bid/ask/trade price is a multiple.
    lot: size grid step [base units]; every size is a positive multiple.
    vol: annualised volatility of log returns in a regime with ``vol_mult`` 1
        [1/sqrt(year), e.g. 0.6 = 60 %/year].
    quote_rate: mean book updates (quotes) per second at activity 1 [1/s].
    trade_rate: mean trades per second at activity 1, averaged over the UTC day [1/s].
    trade_size: median trade size at the day-average point of the volume curve [base units].
    trade_size_sigma: lognormal dispersion of trade sizes [log units].
    display_size: (min, max) of the displayed size on each side, uniform [base units].
    min_spread_ticks: smallest spread [ticks, >= 1].
    spread_bps_per_vol: mean spread per unit of current annualised volatility
        [basis points of the mid per 1.0 of vol]; e.g. 0.02 at vol 0.6 -> 0.012 bps.
    trend_buy_tilt: in a drifting regime the taker buys with probability
        0.5 + tilt * sign(drift) [probability, 0..0.5].
    """

    price: float
    tick: float
    lot: float = 1e-5
    vol: float = 0.5
    quote_rate: float = 5.0
    trade_rate: float = 2.0
    trade_size: float = 0.01
    trade_size_sigma: float = 1.0
    display_size: tuple[float, float] = (0.01, 2.0)
    min_spread_ticks: int = 1
    spread_bps_per_vol: float = 0.05
    trend_buy_tilt: float = 0.1

    def __post_init__(self) -> None:
        for name in ("price", "tick", "lot", "vol", "quote_rate", "trade_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SymbolSpec.{name} must be > 0")
        for name in ("trade_rate", "trade_size_sigma", "spread_bps_per_vol"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SymbolSpec.{name} must be >= 0")
        lo, hi = self.display_size
        if not 0 < lo <= hi:
            raise ValueError("SymbolSpec.display_size must be (min, max) with 0 < min <= max")
        if int(self.min_spread_ticks) != self.min_spread_ticks or self.min_spread_ticks < 1:
            raise ValueError("SymbolSpec.min_spread_ticks must be an integer >= 1")
        if not 0 <= self.trend_buy_tilt <= 0.5:
            raise ValueError("SymbolSpec.trend_buy_tilt must be within [0, 0.5]")


@dataclass(frozen=True)
class RegimeSpec:
    """One state of the regime chain.

    name: label (``SyntheticMarket.regime_at`` returns it).
    vol_mult: volatility = ``SymbolSpec.vol * vol_mult`` [dimensionless].
    drift_sd_per_hour: size of the drift, in calm hourly standard deviations
        (``vol * sqrt(3600 / YEAR_S)``) per hour; its sign is drawn (+/- equally
        likely) each time the regime is entered [dimensionless / hour].
    mean_duration_s: mean of the exponential time spent in the regime [s].
    activity: multiplier of quote and trade arrival rates [dimensionless].
    next: probabilities of the regime entered on leaving, by name (sum 1);
        empty = the regime is never left.
    """

    name: str
    vol_mult: float = 1.0
    drift_sd_per_hour: float = 0.0
    mean_duration_s: float = 600.0
    activity: float = 1.0
    next: Mapping[str, float] = field(default_factory=dict)


CALM = "calm"
VOLATILE = "volatile"
TRENDING = "trending"

DEFAULT_REGIMES: tuple[RegimeSpec, ...] = (
    RegimeSpec(CALM, vol_mult=1.0, mean_duration_s=900.0, activity=1.0,
               next={VOLATILE: 0.4, TRENDING: 0.6}),
    RegimeSpec(VOLATILE, vol_mult=3.0, mean_duration_s=180.0, activity=2.0,
               next={CALM: 0.7, TRENDING: 0.3}),
    RegimeSpec(TRENDING, vol_mult=1.5, drift_sd_per_hour=3.0, mean_duration_s=600.0, activity=1.5,
               next={CALM: 0.6, VOLATILE: 0.4}),
)


@dataclass(frozen=True)
class GlitchSpec:
    """Feed faults; all off by default. Rates: starts per second [1/s] (per
    symbol, disconnects per market); durations: (min, max) uniform [s]."""

    gap_rate: float = 0.0
    gap_s: tuple[float, float] = (1.0, 5.0)
    stale_rate: float = 0.0
    stale_s: tuple[float, float] = (2.0, 10.0)
    crossed_rate: float = 0.0
    crossed_ticks: tuple[int, int] = (1, 3)  # bid above ask by [ticks], uniform integer
    outlier_rate: float = 0.0
    outlier_bps: tuple[float, float] = (200.0, 1000.0)  # shift of both sides [bps], sign random
    disconnect_rate: float = 0.0
    disconnect_s: tuple[float, float] = (2.0, 15.0)

    def __post_init__(self) -> None:
        for name in ("gap_rate", "stale_rate", "crossed_rate", "outlier_rate", "disconnect_rate"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"GlitchSpec.{name} must be >= 0")
        for name in ("gap_s", "stale_s", "disconnect_s", "outlier_bps"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"GlitchSpec.{name} must be (min, max) with 0 < min <= max")
        if self.outlier_bps[1] >= 10_000:
            raise ValueError("GlitchSpec.outlier_bps must stay below 10000 (a price cannot go to 0)")
        lo, hi = self.crossed_ticks
        if not (int(lo) == lo and int(hi) == hi and 1 <= lo <= hi):
            raise ValueError("GlitchSpec.crossed_ticks must be integers (min, max) with 1 <= min <= max")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, n) > 0 for n in
                   ("gap_rate", "stale_rate", "crossed_rate", "outlier_rate", "disconnect_rate"))


NO_GLITCHES = GlitchSpec()

# Ready-made symbols for demos and the live feed process (tick/lot as on the venues).
EXAMPLE_SYMBOLS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec(price=40_000.0, tick=0.01, lot=1e-5, vol=0.6, quote_rate=10.0, trade_rate=5.0,
                          trade_size=0.01, display_size=(0.001, 3.0), spread_bps_per_vol=0.005),
    "ETHUSDT": SymbolSpec(price=2_500.0, tick=0.01, lot=1e-4, vol=0.75, quote_rate=8.0, trade_rate=4.0,
                          trade_size=0.1, display_size=(0.01, 30.0), spread_bps_per_vol=0.05),
    "EURUSD": SymbolSpec(price=1.1, tick=1e-5, lot=1000.0, vol=0.07, quote_rate=5.0, trade_rate=1.0,
                         trade_size=100_000.0, display_size=(1e5, 5e6), spread_bps_per_vol=10.0),
}


def _decimals(step: float) -> int:
    exponent = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def volume_curve(ts_ns: np.ndarray, intraday_u: float) -> np.ndarray:
    """U-shaped intraday multiplier, mean 1 over the UTC day: ``(1 + u (2x - 1)^2) / (1 + u/3)``
    with ``x`` the fraction of the UTC day elapsed (so 00:00/24:00 : 12:00 = 1 + u)."""
    x = (np.asarray(ts_ns, dtype=np.int64) % DAY_NS) / DAY_NS
    return (1.0 + intraday_u * (2.0 * x - 1.0) ** 2) / (1.0 + intraday_u / 3.0)


def _poisson_times(rng: np.random.Generator, rate: float, b0: int, block_ns: int) -> np.ndarray:
    """Sorted event times of a homogeneous Poisson process on [b0, b0 + block_ns)."""
    n = int(rng.poisson(rate * block_ns / NS_PER_SECOND)) if rate > 0 else 0
    if n == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.floor(rng.uniform(0.0, block_ns, n)).astype(np.int64)
    offsets.sort()
    return b0 + np.minimum(offsets, block_ns - 1)


def _inside(ts: np.ndarray, intervals) -> np.ndarray:
    mask = np.zeros(len(ts), dtype=bool)
    for iv in intervals:
        mask |= (ts >= iv[0]) & (ts < iv[1])
    return mask


class _Symbol:
    """Mutable generator state of one symbol (carried from block to block)."""

    def __init__(self, name: str, spec: SymbolSpec, seed: int, start_ns: int) -> None:
        key = zlib.crc32(name.encode())
        self.name = name
        self.spec = spec
        self.rng_path = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1, key, 0])))
        self.rng_trade = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1, key, 1])))
        self.rng_glitch = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1, key, 2])))
        self.price_dec = _decimals(spec.tick)
        self.size_dec = _decimals(spec.lot)
        self.sigma_s = spec.vol / math.sqrt(YEAR_S)  # per sqrt(second) at vol_mult 1
        self.hour_sd = spec.vol * math.sqrt(3600 / YEAR_S)
        self.log_mid = math.log(spec.price)
        self.last_point_ns = start_ns
        self.book: tuple[int, int, float, float] | None = None  # bid/ask in ticks, sizes
        self.regime = 0
        self.drift = 0.0  # per second, signed
        self.next_switch = _NEVER
        self.seg_starts: list[int] = []
        self.seg_regimes: list[int] = []
        self.active_until = {GlitchKind.GAP: start_ns, GlitchKind.STALE: start_ns}
        self.gaps: list[tuple[int, int]] = []
        self.stales: list[tuple[int, int, tuple[int, int, float, float]]] = []
        self.pending_points: list[tuple[int, GlitchKind, float]] = []
        self.q_chunks: list[tuple[np.ndarray, ...]] = []
        self.t_chunks: list[tuple[np.ndarray, ...]] = []

    def to_lots(self, sizes: np.ndarray) -> np.ndarray:
        lots = np.maximum(1.0, np.round(sizes / self.spec.lot))
        return np.round(lots * self.spec.lot, self.size_dec)


def _take(chunks: list[tuple[np.ndarray, ...]], until_ns: int) -> tuple[tuple[np.ndarray, ...] | None,
                                                                       list[tuple[np.ndarray, ...]]]:
    if not chunks:
        return None, chunks
    cols = tuple(np.concatenate(c) for c in zip(*chunks, strict=True)) if len(chunks) > 1 else chunks[0]
    k = int(np.searchsorted(cols[0], until_ns, side="left"))
    head = tuple(c[:k] for c in cols) if k else None
    rest = [tuple(c[k:] for c in cols)] if k < len(cols[0]) else []
    return head, rest


class SyntheticMarket:
    """Deterministic live-like market: see the module docstring for the model.

    symbols: name -> ``SymbolSpec`` (output batches follow this order).
    seed: the only source of randomness [int >= 0].
    start_ns: time of the first (snapshot) quote of every symbol [ns since epoch, UTC].
    regimes: the regime chain; the first one is the initial regime.
    glitches: feed faults (default: none).
    intraday_u: depth of the U-shaped volume curve; midnight UTC sees ``1 + u``
        times the trade rate of noon [dimensionless, >= 0].
    intraday_size_exponent: trade sizes scale with ``curve ** exponent``
        (0 = sizes ignore the time of day) [dimensionless].
    block_s: generation block [s]. Part of the configuration: another block
        length gives other (equally valid) data for the same seed.
    """

    def __init__(self, symbols: Mapping[str, SymbolSpec], seed: int, start_ns: int, *,
                 regimes: tuple[RegimeSpec, ...] = DEFAULT_REGIMES, glitches: GlitchSpec = NO_GLITCHES,
                 intraday_u: float = 2.0, intraday_size_exponent: float = 0.5, block_s: float = 60.0) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if intraday_u < 0:
            raise ValueError("intraday_u must be >= 0")
        self.block_ns = int(round(block_s * NS_PER_SECOND))
        if self.block_ns <= 0:
            raise ValueError("block_s must be > 0")
        self.regimes = tuple(regimes)
        self._check_regimes()
        self.glitches = glitches
        self.intraday_u = float(intraday_u)
        self.intraday_size_exponent = float(intraday_size_exponent)
        self.seed = int(seed)
        self.start_ns = int(start_ns)
        self._now = self.start_ns
        self._gen_until = self.start_ns
        names = [r.name for r in self.regimes]
        self._next_p = [np.array([r.next.get(n, 0.0) for n in names]) for r in self.regimes]
        self._vol_mult = np.array([r.vol_mult for r in self.regimes])
        self._activity = np.array([r.activity for r in self.regimes])
        self._rng_market = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0])))
        self._disconnect_until = self.start_ns
        self._disconnects: list[tuple[int, int]] = []
        self._glitch_out: list[Glitch] = []
        self._symbols: dict[str, _Symbol] = {}
        for name, spec in symbols.items():
            st = _Symbol(name, spec, self.seed, self.start_ns)
            self._enter_regime(st, 0, self.start_ns)
            self._symbols[name] = st

    # -- configuration -------------------------------------------------------------------------

    def _check_regimes(self) -> None:
        if not self.regimes:
            raise ValueError("at least one regime is needed")
        names = [r.name for r in self.regimes]
        if len(set(names)) != len(names):
            raise ValueError("regime names must be unique")
        for r in self.regimes:
            if r.vol_mult < 0 or r.activity <= 0 or r.mean_duration_s <= 0:
                raise ValueError(f"regime {r.name!r}: vol_mult >= 0, activity > 0, mean_duration_s > 0")
            unknown = set(r.next) - set(names)
            if unknown:
                raise ValueError(f"regime {r.name!r}: unknown next regime(s) {sorted(unknown)}")
            if r.next and (abs(sum(r.next.values()) - 1.0) > 1e-9 or min(r.next.values()) < 0):
                raise ValueError(f"regime {r.name!r}: next probabilities must be >= 0 and sum to 1")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    @property
    def now_ns(self) -> int:
        """End (exclusive) of what ``advance`` has returned so far."""
        return self._now

    # -- the public step -----------------------------------------------------------------------

    def advance(self, until_ns: int) -> tuple[list[QuoteBatch], list[TradeBatch], list[Glitch]]:
        """Everything with ``now_ns <= ts < until_ns``: one QuoteBatch / TradeBatch per symbol
        that has data (symbol order), and the glitches starting in the span (time order)."""
        until = int(until_ns)
        if until < self._now:
            raise ValueError(f"time goes backwards: {until} < {self._now}")
        while self._gen_until < until:
            self._generate_block(self._gen_until, self._gen_until + self.block_ns)
            self._gen_until += self.block_ns
        quotes: list[QuoteBatch] = []
        trades: list[TradeBatch] = []
        for name, st in self._symbols.items():
            head, st.q_chunks = _take(st.q_chunks, until)
            if head is not None:
                quotes.append(QuoteBatch(name, *head))
            head, st.t_chunks = _take(st.t_chunks, until)
            if head is not None:
                trades.append(TradeBatch(name, *head))
        due = [g for g in self._glitch_out if g.start_ns < until]
        self._glitch_out = [g for g in self._glitch_out if g.start_ns >= until]
        due.sort(key=lambda g: (g.start_ns, _KIND_ORDER[g.kind], g.symbol or "", g.end_ns))
        self._now = until
        return quotes, trades, due

    def regime_at(self, symbol: str, ts_ns) -> np.ndarray:
        """Ground truth: the regime name of ``symbol`` at each time (generated span only)."""
        st = self._symbols[symbol]
        ts = np.asarray(ts_ns, dtype=np.int64)
        if len(ts) and (ts.min() < self.start_ns or ts.max() >= self._gen_until):
            raise ValueError("regime_at: time outside the generated span")
        idx = np.searchsorted(np.asarray(st.seg_starts, dtype=np.int64), ts, side="right") - 1
        names = np.array([r.name for r in self.regimes], dtype=object)
        return names[np.asarray(st.seg_regimes)[idx]]

    # -- generation ----------------------------------------------------------------------------

    def _enter_regime(self, st: _Symbol, regime: int, at_ns: int) -> None:
        spec = self.regimes[regime]
        rng = st.rng_path
        sign = 1.0 if rng.random() < 0.5 else -1.0
        st.regime = regime
        st.drift = sign * spec.drift_sd_per_hour * st.hour_sd / 3600.0
        if spec.next:
            st.next_switch = at_ns + max(1, int(rng.exponential(spec.mean_duration_s) * NS_PER_SECOND))
        else:
            st.next_switch = _NEVER
        st.seg_starts.append(at_ns)
        st.seg_regimes.append(regime)

    def _generate_block(self, b0: int, b1: int) -> None:
        g = self.glitches
        if g.disconnect_rate > 0:
            rng = self._rng_market
            times = _poisson_times(rng, g.disconnect_rate, b0, b1 - b0)
            durations = rng.uniform(*g.disconnect_s, len(times))
            for t, d in zip(times.tolist(), durations.tolist(), strict=True):
                if t < self._disconnect_until:
                    continue
                end = t + max(1, int(d * NS_PER_SECOND))
                self._disconnect_until = end
                self._disconnects.append((t, end))
                self._glitch_out.append(Glitch(GlitchKind.DISCONNECT, t, end, None))
        self._disconnects = [iv for iv in self._disconnects if iv[1] > b0]
        for st in self._symbols.values():
            self._generate_symbol(st, b0, b1)

    def _generate_symbol(self, st: _Symbol, b0: int, b1: int) -> None:
        spec, rng = st.spec, st.rng_path
        block_ns = b1 - b0

        # 1. regime switches inside the block; regime/drift in force before/after each switch
        reg_seq, drift_seq, sw = [st.regime], [st.drift], []
        while st.next_switch < b1:
            at = st.next_switch
            new = int(rng.choice(len(self.regimes), p=self._next_p[st.regime]))
            self._enter_regime(st, new, at)
            sw.append(at)
            reg_seq.append(st.regime)
            drift_seq.append(st.drift)
        sw_t = np.array(sw, dtype=np.int64)
        reg_seq_a = np.array(reg_seq)
        drift_seq_a = np.array(drift_seq)
        sig_seq = st.sigma_s * self._vol_mult[reg_seq_a]
        act_seq = self._activity[reg_seq_a]
        max_act = float(self._activity.max())

        # 2. book-update (quote) times: thinning of a max-rate Poisson process by activity
        cand = _poisson_times(rng, spec.quote_rate * max_act, b0, block_ns)
        keep = rng.random(len(cand)) < act_seq[np.searchsorted(sw_t, cand, side="right")] / max_act
        qts = cand[keep]
        if b0 == self.start_ns:
            qts = np.concatenate([np.array([b0], dtype=np.int64), qts])

        # 3. log mid at every point (switches and quotes), exact GBM increments per interval
        allt = np.concatenate([sw_t, qts])
        order = np.argsort(allt, kind="stable")
        pts = allt[order]
        is_q = order >= len(sw_t)
        if len(pts):
            prev = np.concatenate([np.array([st.last_point_ns], dtype=np.int64), pts[:-1]])
            dt = (pts - prev) / NS_PER_SECOND
            j = np.searchsorted(sw_t, prev, side="right")
            sig, mu = sig_seq[j], drift_seq_a[j]
            inc = (mu - 0.5 * sig * sig) * dt + sig * np.sqrt(dt) * rng.standard_normal(len(pts))
            logm = st.log_mid + np.cumsum(inc)
            st.log_mid = float(logm[-1])
            st.last_point_ns = int(pts[-1])
            q_logm = logm[is_q]
        else:
            q_logm = np.empty(0)

        # 4. true book at each quote: spread from current volatility, on the tick grid
        mid = np.exp(q_logm)
        q_sig_mult = self._vol_mult[reg_seq_a[np.searchsorted(sw_t, qts, side="right")]]
        raw = mid * spec.spread_bps_per_vol * 1e-4 * spec.vol * q_sig_mult / spec.tick
        spread = np.maximum(int(spec.min_spread_ticks), rng.poisson(raw)).astype(np.int64)
        bid_u = np.maximum(1, np.floor(mid / spec.tick - spread / 2.0 + 0.5).astype(np.int64))
        ask_u = bid_u + spread
        bsz = st.to_lots(rng.uniform(*spec.display_size, len(qts)))
        asz = st.to_lots(rng.uniform(*spec.display_size, len(qts)))
        prev_book = st.book

        def book_at(t: int) -> tuple[int, int, float, float]:
            i = int(np.searchsorted(qts, t, side="right")) - 1
            if i < 0:
                assert prev_book is not None
                return prev_book
            return int(bid_u[i]), int(ask_u[i]), float(bsz[i]), float(asz[i])

        if len(qts):
            st.book = (int(bid_u[-1]), int(ask_u[-1]), float(bsz[-1]), float(asz[-1]))

        # 5. trades (own stream): intraday curve x activity, at the true touch
        trng = st.rng_trade
        fmax = (1.0 + self.intraday_u) / (1.0 + self.intraday_u / 3.0)
        cand = _poisson_times(trng, spec.trade_rate * fmax * max_act, b0, block_ns)
        curve = volume_curve(cand, self.intraday_u)
        k = np.searchsorted(sw_t, cand, side="right")
        keep = trng.random(len(cand)) < curve * act_seq[k] / (fmax * max_act)
        tts, curve, k = cand[keep], curve[keep], k[keep]
        median = spec.trade_size * curve ** self.intraday_size_exponent
        tsize = st.to_lots(median * np.exp(spec.trade_size_sigma * trng.standard_normal(len(tts))))
        p_buy = 0.5 + spec.trend_buy_tilt * np.sign(drift_seq_a[k])
        buy = trng.random(len(tts)) < p_buy
        # book in force at each trade: index 0 = the book carried from the previous block
        pb = prev_book if prev_book is not None else (0, 0, 0.0, 0.0)
        ext_bid = np.concatenate([np.array([pb[0]], dtype=np.int64), bid_u])
        ext_ask = np.concatenate([np.array([pb[1]], dtype=np.int64), ask_u])
        i = np.searchsorted(qts, tts, side="right")
        tprice_u = np.where(buy, ext_ask[i], ext_bid[i])
        taggr = np.where(buy, 1, -1).astype(np.int8)

        # 6. glitches (own stream) and what the feed delivers
        out_bid, out_ask = bid_u.copy(), ask_u.copy()
        out_bsz, out_asz = bsz.copy(), asz.copy()
        if self.glitches.enabled:
            deliver = self._apply_glitches(st, b0, b1, qts, out_bid, out_ask, out_bsz, out_asz, book_at)
        else:
            deliver = np.ones(len(qts), dtype=bool)
        if self._disconnects:
            deliver &= ~_inside(qts, self._disconnects)
            tkeep = ~_inside(tts, self._disconnects)
            tts, tprice_u, tsize, taggr = tts[tkeep], tprice_u[tkeep], tsize[tkeep], taggr[tkeep]

        if deliver.any():
            px = spec.tick
            st.q_chunks.append((
                qts[deliver],
                np.round(out_bid[deliver] * px, st.price_dec),
                np.round(out_ask[deliver] * px, st.price_dec),
                out_bsz[deliver], out_asz[deliver],
            ))
        if len(tts):
            st.t_chunks.append((tts, np.round(tprice_u * spec.tick, st.price_dec), tsize, taggr))

    def _apply_glitches(self, st: _Symbol, b0: int, b1: int, qts: np.ndarray, bid: np.ndarray,
                        ask: np.ndarray, bsz: np.ndarray, asz: np.ndarray, book_at) -> np.ndarray:
        """Damage the delivered quotes in place; return the delivered mask (before disconnects)."""
        g, rng, block_ns = self.glitches, st.rng_glitch, b1 - b0
        for kind, rate, dur in ((GlitchKind.GAP, g.gap_rate, g.gap_s),
                                (GlitchKind.STALE, g.stale_rate, g.stale_s)):
            if rate <= 0:
                continue
            times = _poisson_times(rng, rate, b0, block_ns)
            durations = rng.uniform(*dur, len(times))
            for t, d in zip(times.tolist(), durations.tolist(), strict=True):
                if t < st.active_until[kind]:
                    continue
                end = t + max(1, int(d * NS_PER_SECOND))
                st.active_until[kind] = end
                if kind is GlitchKind.GAP:
                    st.gaps.append((t, end))
                else:
                    st.stales.append((t, end, book_at(t)))
                self._glitch_out.append(Glitch(kind, t, end, st.name))
        for kind, rate in ((GlitchKind.CROSSED, g.crossed_rate), (GlitchKind.OUTLIER, g.outlier_rate)):
            if rate <= 0:
                continue
            times = _poisson_times(rng, rate, b0, block_ns)
            if kind is GlitchKind.CROSSED:
                params = rng.integers(g.crossed_ticks[0], g.crossed_ticks[1] + 1, len(times)).astype(float)
            else:
                params = rng.uniform(*g.outlier_bps, len(times)) * np.where(rng.random(len(times)) < 0.5, -1, 1)
            st.pending_points.extend(zip(times.tolist(), [kind] * len(times), params.tolist(), strict=True))
        st.gaps = [iv for iv in st.gaps if iv[1] > b0]
        st.stales = [iv for iv in st.stales if iv[1] > b0]

        deliver = ~_inside(qts, st.gaps)
        if self._disconnects:
            deliver &= ~_inside(qts, self._disconnects)
        clean = deliver.copy()
        for start, end, (fb, fa, fbs, fas) in st.stales:
            m = deliver & (qts >= start) & (qts < end)
            bid[m], ask[m], bsz[m], asz[m] = fb, fa, fbs, fas
            clean &= ~m
        if st.pending_points:
            st.pending_points.sort(key=lambda p: (p[0], _KIND_ORDER[p[1]]))
            carry = []
            for t, kind, param in st.pending_points:
                i = int(np.searchsorted(qts, t, side="left"))
                if i == len(qts):
                    carry.append((t, kind, param))
                    continue
                if not clean[i]:
                    continue  # the quote is not delivered, stale or already damaged: no glitch
                clean[i] = False
                if kind is GlitchKind.CROSSED:
                    bid[i] = ask[i] + int(param)
                else:
                    width = ask[i] - bid[i]
                    bid[i] = max(1, int(round(bid[i] * (1.0 + param * 1e-4))))
                    ask[i] = bid[i] + width
                ts = int(qts[i])
                self._glitch_out.append(Glitch(kind, ts, ts + 1, st.name))
            st.pending_points = carry
        return deliver
