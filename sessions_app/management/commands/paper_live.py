"""Live runs (Stage 07) beside the paper sessions.

    paper_live import DIR [--actor NAME]
        register a live run in the canonical results format (ifns_paper.results_format);
        it compares with paper sessions like a backtest (paper_compare --backtest ID)
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sessions_app.management.commands.paper_backtest import import_results


class Command(BaseCommand):
    help = "Import a Stage 07 live run (canonical results format) to compare paper with live."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="register a live run from a results folder")
        imp.add_argument("folder")
        imp.add_argument("--actor", default=None)

    def handle(self, *args, action: str, folder: str, actor: str | None, **options) -> None:
        import_results(self, folder, actor, live=True)
