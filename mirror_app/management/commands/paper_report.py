"""A session's summary in the terminal (spec §6.2).

    paper_report SESSION_ID            computed now from what the session stored
    paper_report SESSION_ID --json     the summary object (as in paper_summary.ndjson)
    paper_report --file PATH           a summary written by paper_replay --session (paper_summary.json)
    paper_report SESSION_ID --html FILE  the session's tearsheet: one self-contained HTML file
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.metrics.report import format_report
from sessions_app.services.summaries import summary_compute


class Command(BaseCommand):
    help = "Print a paper session's summary: P&L, returns, trades, execution, benchmark, risk usage, incidents."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session_id", nargs="?")
        parser.add_argument("--json", action="store_true", help="print the summary object")
        parser.add_argument("--file", type=Path, help="a summary file (paper_replay --session writes one)")
        parser.add_argument("--html", type=Path, metavar="FILE",
                            help="write the session's tearsheet (charts and tables, no network needed) to FILE")

    def handle(self, *args, session_id: str | None, json: bool, file: Path | None, html: Path | None,
               **options) -> None:
        if (session_id is None) == (file is None):
            raise CommandError("give a session id or --file")
        if html is not None:
            self._tearsheet(session_id, html)
            return
        if file is not None:
            try:
                summary = _json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"{file}: {exc}") from None
        else:
            summary = summary_compute(session_id=session_id, final=False)
            if summary is None:
                raise CommandError(f"no paper session {session_id!r}, or it has not stepped yet")
        self.stdout.write(_json.dumps(summary, indent=2) if json else format_report(summary))


    def _tearsheet(self, session_id: str | None, path: Path) -> None:
        from mirror_app.pages import tearsheet_html
        from sessions_app.selectors import session_get

        session = session_get(session_id=session_id) if session_id else None
        if session is None:
            raise CommandError(f"no paper session {session_id!r} (--html needs a session id)")
        try:
            path.write_text(tearsheet_html(session), encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from None
        self.stdout.write(self.style.SUCCESS(f"{path}: tearsheet of {session_id} ({path.stat().st_size:,} bytes)"))


_json = json
