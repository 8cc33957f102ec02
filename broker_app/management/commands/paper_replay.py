"""``manage.py paper_replay``: the Paper Broker alone on recorded data (no database).

See :mod:`ifns_paper.paper_replay` for the inputs and outputs.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ifns_paper import paper_replay
from ifns_paper.config.loader import ConfigError
from ifns_paper.engine.marketdata import MarketDataError


class Command(BaseCommand):
    help = "Replay recorded market data and scripted orders through the Paper Broker (engine only)."
    requires_system_checks: list = []  # no database needed

    def add_arguments(self, parser) -> None:
        paper_replay.build_parser(parser)

    def handle(self, *args, **options) -> None:
        args = type("Args", (), options)
        try:
            summary = paper_replay.run_from_args(args)
        except (paper_replay.ReplayInputError, MarketDataError, ConfigError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(paper_replay.format_summary(summary, args.out))
