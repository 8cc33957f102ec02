"""Drive paper sessions from the shell.

    paper_session register FILE        validate a session file against the config dir and register it
    paper_session start|pause|resume|stop|abort SESSION_ID [--reason TEXT] [--actor NAME]
    paper_session cooldown SESSION_ID (--set SECONDS | --clear) --reason TEXT
    paper_session list [--lane LANE] [--status STATUS]
"""

from __future__ import annotations

import getpass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ifns_paper.config import ConfigError, load_config_dir
from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS, SessionStatus
from ifns_paper.exceptions import ApplicationError
from sessions_app import dispatch, selectors, services


class Command(BaseCommand):
    help = "Register, list and move paper sessions through their lifecycle."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        register = sub.add_parser("register", help="register a session definition file")
        register.add_argument("file")
        register.add_argument("--config-dir", default=None)
        register.add_argument("--reason", default="")
        register.add_argument("--actor", default=None)
        for action in OPERATOR_ACTIONS:
            move = sub.add_parser(action.value, help=f"{action.value} a session")
            move.add_argument("session_id")
            move.add_argument("--reason", default="")
            move.add_argument("--actor", default=None)
        clone = sub.add_parser("clone", help="a new scheduled session with another's definition")
        clone.add_argument("source_id")
        clone.add_argument("new_id")
        clone.add_argument("--lane", default=None, help="default: the source's lane")
        clone.add_argument("--reason", required=True)
        clone.add_argument("--actor", default=None)
        tag = sub.add_parser("tag", help="tag a session as promotion_evidence or ignore")
        tag.add_argument("session_id")
        tag.add_argument("tag", choices=["promotion_evidence", "ignore"])
        tag.add_argument("--remove", action="store_true")
        tag.add_argument("--reason", required=True)
        tag.add_argument("--actor", default=None)
        cool = sub.add_parser("cooldown", help="start or end a session's cooldown (no new risk)")
        cool.add_argument("session_id")
        which = cool.add_mutually_exclusive_group(required=True)
        which.add_argument("--set", type=float, metavar="SECONDS", dest="duration_s", help="cool down for SECONDS")
        which.add_argument("--clear", action="store_true", help="end the cooldown in force")
        cool.add_argument("--reason", required=True)
        cool.add_argument("--actor", default=None)
        listing = sub.add_parser("list", help="list sessions")
        listing.add_argument("--lane", default=None)
        listing.add_argument("--status", default=None, choices=[s.value for s in SessionStatus])

    def handle(self, *args, command: str, **options) -> None:
        actor = options.get("actor") or f"cli:{getpass.getuser()}"
        try:
            if command == "list":
                self._list(options["lane"], options["status"])
            elif command == "register":
                self._register(options["file"], options["config_dir"], actor, options["reason"])
            elif command == "clone":
                from sessions_app.services.promotions import session_clone

                s = session_clone(source_id=options["source_id"], new_id=options["new_id"], lane=options["lane"],
                                  actor=actor, reason=options["reason"])
                self.stdout.write(self.style.SUCCESS(f"{s.session_id}: {s.status} in {s.lane.name} "
                                                     f"(cloned from {options['source_id']})"))
            elif command == "tag":
                from sessions_app.services.promotions import session_tag

                s = session_tag(session_id=options["session_id"], tag=options["tag"], actor=actor,
                                reason=options["reason"], remove=options["remove"])
                self.stdout.write(self.style.SUCCESS(f"{s.session_id}: tags {', '.join(s.tags) or 'none'}"))
            elif command == "cooldown":
                from sessions_app.services.controls import cooldown_request

                cooldown_request(session_id=options["session_id"], active=not options["clear"],
                                 duration_s=options["duration_s"], actor=actor, reason=options["reason"])
                what = "end of the cooldown" if options["clear"] else f"cooldown of {options['duration_s']:,g} s"
                self.stdout.write(self.style.SUCCESS(f"{options['session_id']}: {what} requested; "
                                                     "the session's next step applies it"))
            else:
                session = services.session_transition(
                    session_id=options["session_id"], action=command, actor=actor, reason=options["reason"]
                )
                self.stdout.write(self.style.SUCCESS(f"{session.session_id}: {session.status}"))
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None

    def _register(self, file: str, config_dir: str | None, actor: str, reason: str) -> None:
        path = Path(file)
        root = Path(config_dir) if config_dir else Path(settings.IFNS_CONFIG_DIR)
        try:
            bundle = load_config_dir(root, extra_session_files=[path])
        except ConfigError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(exc.problems)} problem(s) found; nothing was written") from None
        session_id = next(sid for sid, (label, _) in bundle.sessions.items()
                          if Path(label).resolve() == path.resolve() or label == str(path))
        session = services.session_register(bundle=bundle, session_id=session_id, actor=actor, reason=reason)
        self.stdout.write(self.style.SUCCESS(f"registered {session.session_id} in {session.lane.name} (scheduled)"))

    def _list(self, lane: str | None, status: str | None) -> None:
        sessions = list(selectors.session_list(lane=lane, status=status))
        health = selectors.session_health(sessions, client=dispatch.redis_client())
        rows = [("SESSION", "LANE", "STATUS", "STRATEGY", "POLICY", "STARTED", "ENDED", "STEP LAG", "STEPS/MIN",
                 "KILL SWITCH", "COOLDOWN", "LAST FAULT")]
        for s in sessions:
            h = health[s.session_id]
            switch = h["kill_switch"]
            rows.append((s.session_id, s.lane.name, s.status, str(s.strategy), s.execution_policy.policy_id,
                         _ts(s.started_at), _ts(s.ended_at),
                         "-" if h["step_lag_ms"] is None else f"{h['step_lag_ms']:,.0f} ms",
                         "-" if h["steps_per_min"] is None else str(h["steps_per_min"]),
                         switch["state"] + (f" ({switch['scope']})" if switch["scope"] else ""),
                         _cooldown_cell(h["cooldown"]),
                         h["last_fault"] or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        self.stdout.write("PAPER sessions (env=paper)")
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cooldown_cell(cooldown: dict) -> str:
    cell = f"until {cooldown['until'][11:19]}Z" if cooldown["active"] else "-"
    if cooldown.get("requested"):
        cell += " (clear requested)" if not cooldown["requested"]["active"] else " (set requested)"
    return cell


def _ts(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"
