"""Kill switches from the shell.

    paper_killswitch set SCOPE STATE [--reason TEXT] [--actor NAME]   SCOPE: global | lane:<name> | session:<id>
    paper_killswitch list                                              STATE: active | reducing | halted
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.engine.controls import SwitchState
from ifns_paper.exceptions import ApplicationError
from sessions_app import selectors, services


class Command(BaseCommand):
    help = "Set or list kill switches (global, lane or session scope)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        setter = sub.add_parser("set")
        setter.add_argument("scope")
        setter.add_argument("state")
        setter.add_argument("--reason", default="")
        setter.add_argument("--actor", default=None)
        sub.add_parser("list")

    def handle(self, *args, command: str, **options) -> None:
        if command == "list":
            self._list()
            return
        actor = options["actor"] or f"cli:{getpass.getuser()}"
        try:
            switch = services.kill_switch_set(scope=options["scope"], state=options["state"], actor=actor,
                                              reason=options["reason"])
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None
        self.stdout.write(self.style.SUCCESS(f"{switch.scope}: {switch.state}"))

    def _list(self) -> None:
        """Every scope with its own and its effective state (``active`` when never set)."""
        rows = [("SCOPE", "OWN", "EFFECTIVE", "FROM", "SET BY", "REASON")]
        for v in selectors.kill_switch_states():
            rows.append((v.scope, v.state, v.effective, v.effective_scope if v.effective != SwitchState.ACTIVE else "-",
                         v.actor or "-", v.reason or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        self.stdout.write("PAPER kill switches (env=paper)")
        for row in rows:
            self.stdout.write("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
