"""Backtests beside the paper sessions (spec §7).

    paper_backtest shadow SESSION_ID [--latency zero|route] [--rolling] [--actor NAME]
        run the session's definition over the recorded market data it read, as fast as
        possible; registered as a backtest with the same summary as a session. --rolling:
        one that follows the live session, rolled on every minute (its comparison too)
    paper_backtest import DIR [--actor NAME]
        register a Stage 04 backtest in the canonical results format (ifns_paper.results_format)
    paper_backtest list [--session SESSION_ID]
        the registered backtests, newest first
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from ifns_paper.metrics.report import format_report
from sessions_app.models import Backtest
from sessions_app.services.backtests import LATENCY_MODES, shadow_backtest


class Command(BaseCommand):
    help = "Shadow backtests of paper sessions over their recorded market data; list backtests."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        shadow = sub.add_parser("shadow", help="run a session's shadow backtest")
        shadow.add_argument("session_id")
        shadow.add_argument("--latency", choices=LATENCY_MODES, default="zero",
                            help="zero: no latency (a backtest's view); route: the route's latencies")
        shadow.add_argument("--rolling", action="store_true",
                            help="follow the live session: rolled on every minute, its comparison stored")
        shadow.add_argument("--actor", default=None, help="who asks (default: cli:<login>)")
        imp = sub.add_parser("import", help="register a backtest from a results folder")
        imp.add_argument("folder")
        imp.add_argument("--actor", default=None, help="who imports (default: cli:<login>)")
        listing = sub.add_parser("list", help="registered backtests, newest first")
        listing.add_argument("--session", default=None)

    def handle(self, *args, action: str, **options) -> None:
        if action == "import":
            import_results(self, options["folder"], options["actor"], live=False)
            return
        if action == "shadow":
            actor = options["actor"] or f"cli:{getpass.getuser()}"
            try:
                row = shadow_backtest(session_id=options["session_id"], actor=actor, latency=options["latency"],
                                      rolling=options["rolling"])
            except ApplicationError as exc:
                raise CommandError(exc.described()) from None
            p = row.params
            if p.get("rolling") and "state" not in p:
                self.stdout.write(f"rolling backtest {row.backtest_id} registered: it follows {p['feed']} from the "
                                  "session's first market data on, rolled every minute\n")
                return
            if p.get("rolling"):
                self.stdout.write(f"rolling backtest {row.backtest_id}: first roll, ")
            elif row.status == "failed":
                raise CommandError(f"backtest {row.backtest_id} failed: {row.error}")
            self.stdout.write(f"backtest {row.backtest_id}: {p['quotes']:,} quotes and {p['trades']:,} trades of "
                              f"{p['feed']} replayed ({p['latency']} latency); files in data/{row.out_dir}\n")
            self.stdout.write(format_report(row.summary))
            return
        rows = Backtest.objects.select_related("session").order_by("-created_at", "-id")
        if options["session"]:
            rows = rows.filter(session__session_id=options["session"])
        for row in rows:
            s = row.summary or {}
            pnl = (s.get("pnl") or {}).get("total")
            fills = (s.get("fills") or {}).get("count")
            self.stdout.write(f"{row.backtest_id}  {row.kind:8}  {row.status:9}  "
                              f"{row.session.session_id if row.session else '-':28}  "
                              f"P&L {'-' if pnl is None else f'{pnl:,.2f}'}  fills {'-' if fills is None else fills}"
                              f"{'  error: ' + row.error if row.error else ''}")


def import_results(command: BaseCommand, folder: str, actor: str | None, *, live: bool) -> None:
    """``paper_backtest import`` and ``paper_live import``: register, then print the summary."""
    from sessions_app.services.backtests import results_import

    try:
        row = results_import(folder=folder, actor=actor or f"cli:{getpass.getuser()}", live=live)
    except ApplicationError as exc:
        raise CommandError(exc.described()) from None
    command.stdout.write(f"{row.get_kind_display()} {row.backtest_id} registered "
                         f"({row.params['fills']:,} fills, {row.params['equity_points']:,} equity points); "
                         f"files in data/{row.out_dir}\n")
    command.stdout.write(format_report(row.summary))
