"""First-run setup used by ``make run``: migrate, load the shipped config, demo admin.

Idempotent: running it again changes nothing that is already in place.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "paper-admin"  # dev only: refused unless DEBUG is on


class Command(BaseCommand):
    help = "Migrate, load the shipped configuration and (DEBUG only) create the demo admin user."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo-user", action="store_true")

    def handle(self, *args, no_demo_user: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        call_command("paper_config", "load", stdout=self.stdout, stderr=self.stderr)
        if no_demo_user:
            return
        if not settings.DEBUG:
            raise CommandError("the demo admin user is for development only (DEBUG is off)")
        users = get_user_model()
        if not users.objects.filter(username=DEMO_USERNAME).exists():
            users.objects.create_superuser(DEMO_USERNAME, "admin@example.invalid", DEMO_PASSWORD)
            self.stdout.write("demo admin user created")
        self.stdout.write(self.style.WARNING(
            f"demo admin (development only): username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}"
        ))
