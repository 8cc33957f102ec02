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

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "paper-admin"  # dev only: refused unless DEBUG is on
# A second person for four-eyes promotions in the demo: may approve requests, not its own.
DEMO_APPROVER, DEMO_APPROVER_PASSWORD = "approver", "paper-approver"


class Command(BaseCommand):
    help = "Migrate, load the shipped configuration and (DEBUG only) create the demo admin user."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo-user", action="store_true")
        parser.add_argument("--start-demo", action="store_true",
                            help="start the scheduled sessions tagged 'demo' (make run)")

    def handle(self, *args, no_demo_user: bool, start_demo: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
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
        if not users.objects.filter(username=DEMO_USERNAME).exists():
            users.objects.create_superuser(DEMO_USERNAME, "admin@example.invalid", DEMO_PASSWORD)
            self.stdout.write("demo admin user created")
        if not users.objects.filter(username=DEMO_APPROVER).exists():
            from django.contrib.auth.models import Permission

            approver = users.objects.create_user(DEMO_APPROVER, "approver@example.invalid", DEMO_APPROVER_PASSWORD)
            approver.user_permissions.add(Permission.objects.get(codename="approve_promotionrequest"))
            self.stdout.write("demo approver user created")
        self.stdout.write(self.style.WARNING(
            f"demo admin (development only): username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}; "
            f"demo approver: {DEMO_APPROVER!r}, password {DEMO_APPROVER_PASSWORD!r}"
        ))
