"""First-run setup used by ``make run``: migrate, load the shipped config, demo admin; with
``--start-demo``, start the demo sessions, each followed by a rolling shadow backtest.

Idempotent: running it again changes nothing that is already in place.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ifns_paper.engine.lifecycle import SessionStatus
from sessions_app.models import PaperSession
from sessions_app.services import session_transition
from sessions_app.services.backtests import shadow_backtest
from sessions_app.services.roles import roles_setup, user_roles_set

# One demo user per role (ifns_paper/roles.py), development only: refused unless DEBUG is on.
# "admin" is also a Django superuser (the Django admin); "approver" approves promotion
# requests, never its own (four eyes).
DEMO_USERS = {"viewer": "paper-viewer", "operator": "paper-operator", "approver": "paper-approver",
              "admin": "paper-admin"}


class Command(BaseCommand):
    help = "Migrate, create the role groups, load the shipped configuration and (DEBUG only) the demo users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo-user", action="store_true")
        parser.add_argument("--start-demo", action="store_true",
                            help="start the scheduled sessions tagged 'demo' (make run)")

    def handle(self, *args, no_demo_user: bool, start_demo: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        roles_setup()
        self.stdout.write("role groups ready: viewer, operator, approver, admin")
        call_command("paper_config", "load", stdout=self.stdout, stderr=self.stderr)
        if start_demo:
            for session in PaperSession.objects.filter(status=SessionStatus.SCHEDULED):
                if "demo" in session.tags:
                    session_transition(session_id=session.session_id, action="start", actor="make-run",
                                       reason="demo session started by make run")
                    self.stdout.write(f"started demo session {session.session_id}")
                    if settings.IFNS_RECORD_FEEDS:  # "what the backtest would have said", kept up to date
                        row = shadow_backtest(session_id=session.session_id, actor="make-run", rolling=True)
                        self.stdout.write(f"rolling shadow backtest {row.backtest_id} follows it")
        if no_demo_user:
            return
        if not settings.DEBUG:
            raise CommandError("the demo admin user is for development only (DEBUG is off)")
        users = get_user_model()
        for role, password in DEMO_USERS.items():
            if users.objects.filter(username=role).exists():
                continue
            if role == "admin":
                users.objects.create_superuser(role, "admin@example.invalid", password)
            else:
                users.objects.create_user(role, f"{role}@example.invalid", password)
            user_roles_set(username=role, roles=[role])
            self.stdout.write(f"demo {role} user created")
        self.stdout.write(self.style.WARNING(
            "demo users (development only), one per role — username / password: "
            + ", ".join(f"{u} / {p}" for u, p in DEMO_USERS.items())
        ))
