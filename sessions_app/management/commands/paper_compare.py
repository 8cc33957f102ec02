"""A paper session against a backtest of the same definition (spec §7).

    paper_compare SESSION_ID [--backtest ID] [--stored] [--json]

Default backtest: the session's rolling shadow backtest, else its newest (``paper_backtest shadow``). The
comparison is computed now and stored; ``--stored`` prints the stored one instead (a
rolling shadow's is recomputed every minute by the beat).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from sessions_app.services.comparisons import comparison_refresh, comparison_stored


def _num(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


class Command(BaseCommand):
    help = "Compare a paper session with a backtest: curves, execution, decision agreement, first divergence."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session_id")
        parser.add_argument("--backtest", default=None)
        parser.add_argument("--stored", action="store_true", help="the stored comparison (computed when none is)")
        parser.add_argument("--json", action="store_true", help="print the comparison object")

    def handle(self, *args, session_id: str, backtest: str | None, **options) -> None:
        try:
            fetch = comparison_stored if options["stored"] else comparison_refresh
            c = fetch(session_id=session_id, backtest_id=backtest)
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None
        if options["json"]:
            self.stdout.write(json.dumps(c, indent=2))
            return
        cv, d = c["curves"], c["decisions"]
        ccy = c["conventions"]["currency"]
        lines = [
            f"PAPER {session_id} against {c['backtest_kind']} backtest {c['backtest_id']} ({c['latency']} latency"
            f"{', rolling' if c.get('rolling') else ''}), computed {c['computed_at']}",
            f"  curves ({cv['periods']} one-minute returns): correlation {_num(cv['correlation'], '.3f')} "
            f"(>= {cv['thresholds']['min_correlation']}), annualised DTW {_num(cv['dtw_annualised'], '.4f')} "
            f"(<= {cv['thresholds']['max_dtw_annualised']}), tracking error {_num(cv['tracking_error'], '.4%')}",
            f"  equity deviation: last {_num(cv['equity_deviation']['last'], ',.2f')} {ccy}, "
            f"largest {_num(cv['equity_deviation']['max_abs'], ',.2f')} {ccy}",
            f"  decisions: {d['agreeing']} of {max(d['paper'], d['other'])} agree ({d['share']:.1%}); "
            f"paper {d['paper']}, backtest {d['other']}",
        ]
        fd = d["first_divergence"]
        if fd is not None:
            lines.append(f"  first divergence at {fd['ts']} ns on {fd['symbol']}: likely cause {fd['likely_cause']}")
            lines.append(f"    paper:    {json.dumps(fd['paper'])}")
            lines.append(f"    backtest: {json.dumps(fd['other'])}")
        ex = c["execution"]
        if ex is not None:
            lines.append(f"  P&L to the backtest's end: paper {_num(ex['pnl']['paper'], ',.2f')} {ccy}, backtest "
                         f"{_num(ex['pnl']['backtest'], ',.2f')} {ccy}, deviation {_num(ex['pnl']['deviation'], ',.2f')} "
                         f"{ccy}")
            for route, dev in ex["slippage_mean_bps"]["deviation"].items():
                lines.append(f"  {route}: slippage mean paper − backtest {_num(dev, '+.2f')} bp, fill rate "
                             f"{_num(ex['fill_rate']['deviation'].get(route), '+.1%')}, reject rate "
                             f"{_num(ex['reject_rate']['deviation'].get(route), '+.1%')}")
        lines.append(f"  flags: {', '.join(c['flags']) or 'none'}")
        self.stdout.write("\n".join(lines))
