"""How long the comparison of a 30-day paper session against its backtest takes (issue 10).

    python -m bench.compare_bench [--days 30] [--runs 5] [--window 60] [--out bench/results]

Two equity curves of ``--days`` days on a 1-minute grid (43,200 points for 30 days): a
backtest from random 1-minute returns, and a "paper" curve with the same returns plus
noise, a few returns one minute late and a fee drag. Timed: ``metrics.compare.compare_curves``
(grid sampling, returns, correlation, tracking error, DTW in a band of ``--window``
minutes, equity deviation), median of ``--runs``. Baseline in the same run: numpy's Pearson
correlation of the two return series (``np.corrcoef``), the least any comparison costs.
The DTW alone is also checked against dtaidistance's C implementation when it is
installed (the ``dev`` extra), as a sanity check of the result, not of the speed. Target:
< 1 s.

Writes ``<out>/compare_<UTC stamp>.json`` and ``compare_latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ifns_paper.metrics.compare import compare_curves, dtw_distance
    from ifns_paper.metrics.conventions import Conventions

    started = dt.datetime.now(dt.UTC)
    n = int(args.days * 1440)
    rng = np.random.default_rng(11)
    r = rng.normal(0, 2e-4, n)
    paper_r = r + rng.normal(0, 2e-5, n) - 1e-6
    late = rng.choice(n - 1, n // 100, replace=False)
    paper_r[late + 1], paper_r[late] = paper_r[late], 0.0  # 1 % of the returns a minute late
    t0 = 1_764_000_000 // 60 * 60 * 1_000_000_000
    ts = t0 + np.arange(n + 1, dtype=np.int64) * 60_000_000_000
    backtest = 1e6 * np.cumprod(np.r_[1.0, 1 + r])
    paper = 1e6 * np.cumprod(np.r_[1.0, 1 + paper_r])
    conv = Conventions(grid_s=60, calendar="24/7")

    runs, base = [], []
    result = None
    for _ in range(args.runs):
        t = time.perf_counter()
        result = compare_curves(ts, paper, ts, backtest, conv, window=args.window)
        runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.corrcoef(np.diff(paper) / paper[:-1], np.diff(backtest) / backtest[:-1])
        base.append(time.perf_counter() - t)
    check = None
    try:
        from dtaidistance import dtw

        rp, rb = np.diff(paper) / paper[:-1], np.diff(backtest) / backtest[:-1]
        theirs = dtw.distance_fast(rp, rb, window=args.window + 1)
        check = {"dtaidistance": theirs, "ours": dtw_distance(rp, rb, args.window),
                 "agree": bool(np.isclose(theirs, result["dtw"], rtol=1e-9))}
    except ImportError:
        pass
    median, base_median = statistics.median(runs), statistics.median(base)
    report = {
        "benchmark": "compare", "started_utc": started.isoformat(timespec="seconds"),
        "workload": {"days": args.days, "points": n + 1, "grid_s": 60, "dtw_window_periods": args.window},
        "runs_s": runs, "median_s": median, "baseline": {"what": "np.corrcoef of the two return series",
                                                         "median_s": base_median},
        "ratio_over_baseline": median / base_median if base_median else None,
        "scores": {k: result[k] for k in ("correlation", "tracking_error", "dtw_annualised", "flags")},
        "dtw_check": check, "target": {"seconds": 1.0, "pass": median < 1.0},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"compare_{stamp}.json", "compare_latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"IFNS comparison: {args.days:g} days on a 1-minute grid ({n + 1:,} points), DTW band {args.window} min")
    print(f"  compare_curves: median {median:.3f} s (runs {', '.join(f'{x:.3f}' for x in runs)}); "
          f"target < 1 s: {'PASS' if median < 1.0 else 'FAIL'}")
    print(f"  baseline np.corrcoef: {base_median * 1e3:.2f} ms; ratio {report['ratio_over_baseline']:.0f}")
    print(f"  scores: correlation {result['correlation']:.3f}, TE {result['tracking_error']:.4f}, "
          f"DTW annualised {result['dtw_annualised']:.4f}, flags {result['flags']}"
          + (f"; DTW matches dtaidistance: {check['agree']}" if check else ""))
    print(f"  wrote {args.out / ('compare_' + stamp + '.json')} (and compare_latest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
