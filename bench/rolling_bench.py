"""What one roll of a rolling shadow backtest costs, against recomputing the shadow whole (issue 10).

    python -m bench.rolling_bench [--hours 1] [--rate 10] [--runs 3] [--out bench/results]

Workload: the shipped ``research_fx_momentum_v13`` session (momentum model, TWAP policy) on
``--hours`` of synthetic EUR/USD and GBP/USD (``--rate`` quotes a second per symbol, with
trades), as the items a shadow backtest reads from a recording. Timed, median of
``--runs``:

- **roll**: what the beat does every minute — restore the engine pickled at the window's
  last minute, replay that minute with ``paper_replay.replay_engine(resume=True)``
  (appending to the files, summaries recomputed from them), pickle the engine again;
- **baseline, in the same run**: the one-shot shadow over the whole window — what keeping
  the comparison live would cost every minute without rolling.

Reported: both medians and roll / one-shot. Writes ``<out>/rolling_<UTC stamp>.json`` and
``rolling_latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSION = "research_fx_momentum_v13"
START_NS = 1_764_000_000_000_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=10.0, help="quotes a second per symbol")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ifns_paper.config import load_config_dir
    from ifns_paper.engine.replay import interleave
    from ifns_paper.engine.session import SessionEngine
    from ifns_paper.feeds.instruments import spec_for
    from ifns_paper.feeds.synthetic import SyntheticMarket
    from ifns_paper.paper_replay import replay_engine
    from ifns_paper.session_setup import setup_from_bundle
    from sessions_app.checkpoints import engine_dump, engine_load

    started = dt.datetime.now(dt.UTC)
    bundle = load_config_dir(ROOT / "config")
    _, definition = bundle.sessions[SESSION]
    symbols = list(definition.symbols)
    end_ns = START_NS + int(args.hours * 3600e9)
    market = SyntheticMarket({s: spec_for(s, quote_rate=args.rate) for s in symbols}, seed=7, start_ns=START_NS)
    quotes, trades, _ = market.advance(end_ns - 60_000_000_000)
    head = list(interleave(quotes + trades))
    quotes, trades, _ = market.advance(end_ns)
    tail = list(interleave(quotes + trades))
    n_quotes = sum(len(b) for b in head + tail if type(b).__name__ == "QuoteBatch")

    def run(engine, items, out, resume=False):
        return replay_engine(engine, items, out=out, session_id=SESSION, symbols=symbols,
                             benchmark=definition.benchmark, env="backtest", resume=resume)

    work = Path(tempfile.mkdtemp(prefix="rolling-bench-"))
    try:
        # the state the roll starts from: the window up to its last minute, engine pickled
        prior = work / "prior"
        engine = SessionEngine(setup_from_bundle(bundle, SESSION))
        run(engine, head, prior)
        pickled = engine_dump(engine)
        rolls, whole = [], []
        result = None
        for i in range(args.runs):
            out = work / f"roll{i}"
            shutil.copytree(prior, out)
            t = time.perf_counter()
            engine = engine_load(pickled)
            result = run(engine, tail, out, resume=True)
            engine_dump(engine)
            rolls.append(time.perf_counter() - t)
            t = time.perf_counter()
            one_shot = run(SessionEngine(setup_from_bundle(bundle, SESSION)), head + tail, work / f"whole{i}")
            whole.append(time.perf_counter() - t)
            assert one_shot["fills_hash"] == result["fills_hash"], "a roll must end where the one-shot does"
            shutil.rmtree(out)
            shutil.rmtree(work / f"whole{i}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    roll_m, whole_m = statistics.median(rolls), statistics.median(whole)
    report = {
        "benchmark": "rolling_shadow", "started_utc": started.isoformat(timespec="seconds"),
        "workload": {"session": SESSION, "hours": args.hours, "quotes_per_s_per_symbol": args.rate,
                     "symbols": symbols, "quotes": n_quotes, "roll_minutes": 1,
                     "fills": result["counts"]["events"].get("order_filled", 0) if result else None},
        "roll_runs_s": rolls, "roll_median_s": roll_m,
        "baseline": {"what": "one-shot shadow over the whole window", "runs_s": whole, "median_s": whole_m},
        "ratio_roll_over_one_shot": roll_m / whole_m if whole_m else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"rolling_{stamp}.json", "rolling_latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"IFNS rolling shadow: {SESSION} over {args.hours:g} h ({n_quotes:,} quotes), one roll = the last minute")
    print(f"  roll (restore, replay 1 min, summaries, pickle): median {roll_m * 1e3:.0f} ms "
          f"(runs {', '.join(f'{x * 1e3:.0f}' for x in rolls)})")
    print(f"  baseline one-shot shadow of the whole window: median {whole_m:.2f} s; "
          f"roll / one-shot {report['ratio_roll_over_one_shot']:.3f}")
    print(f"  wrote {args.out / ('rolling_' + stamp + '.json')} (and rolling_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
