"""SEL evaluations (spec §9).

    paper_sel evaluate SESSION_ID [--json] [--actor NAME]
        apply the lane's promotion criteria to the session's evidence and record it
    paper_sel list SESSION_ID
        the session's evaluations, newest first
"""

from __future__ import annotations

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from sessions_app.models import SelEvaluation
from sessions_app.services.sel import sel_evaluate


def _value(c: dict) -> str:
    v = c["value"]
    if v is None:
        return "n/a"
    if c["unit"] in ("fraction", "probability"):
        return f"{v:.3f}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}"


class Command(BaseCommand):
    help = "Evaluate a session against its lane's promotion criteria (SEL); list evaluations."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ev = sub.add_parser("evaluate")
        ev.add_argument("session_id")
        ev.add_argument("--json", action="store_true")
        ev.add_argument("--actor", default=None, help="who asks (default: cli:<login>)")
        ls = sub.add_parser("list")
        ls.add_argument("session_id")

    def handle(self, *args, action: str, session_id: str, **options) -> None:
        if action == "list":
            for row in SelEvaluation.objects.filter(session__session_id=session_id):
                failed = [c["criterion"] for c in row.criteria if not c["pass"]]
                self.stdout.write(f"#{row.pk} {row.created_at:%Y-%m-%d %H:%M:%S}Z {row.recommendation:9} "
                                  f"{row.trigger:10} by {row.created_by}; failed: {', '.join(failed) or 'none'}; "
                                  f"evidence {row.evidence_hash[:12]}")
            return
        try:
            row = sel_evaluate(session_id=session_id, actor=options["actor"] or f"cli:{getpass.getuser()}")
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None
        if options["json"]:
            self.stdout.write(json.dumps(row.as_record(), indent=2))
            return
        lines = [f"SEL evaluation #{row.pk} of {session_id} ({row.lane}): {row.recommendation.upper()}",
                 f"  evidence: {', '.join(e['session_id'] for e in row.evidence)} (hash {row.evidence_hash[:16]})"]
        for c in row.criteria:
            lines.append(f"  {'pass' if c['pass'] else 'FAIL':4}  {c['criterion']:32} {_value(c):>14} "
                         f"{c['rule']} {c['threshold'] if c['threshold'] is not None else 'n/a'} {c['unit']}")
        self.stdout.write("\n".join(lines))
