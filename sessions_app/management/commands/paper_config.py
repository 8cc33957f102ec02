"""``paper_config check [DIR]`` validates the configuration; ``paper_config load [DIR]``
validates and then applies it to the database (idempotent)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ifns_paper.config import ConfigError, load_config_dir
from sessions_app.services import config_apply


class Command(BaseCommand):
    help = "Validate (check) or validate and apply (load) the paper configuration directory."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["check", "load"])
        parser.add_argument("directory", nargs="?", help="config directory (default: IFNS_CONFIG_DIR)")
        parser.add_argument("--actor", default="config-loader", help="name written to the change log")

    def handle(self, *args, action: str, directory: str | None, actor: str, **options) -> None:
        root = Path(directory) if directory else Path(settings.IFNS_CONFIG_DIR)
        try:
            bundle = load_config_dir(root, label_root=directory or _relative(root))
        except ConfigError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(exc.problems)} problem(s) found; nothing was written") from None
        summary = (
            f"{len(bundle.environment.lanes)} lanes, {len(bundle.registry.entries)} registry entries, "
            f"{len(bundle.routes.routes)} routes, {len(bundle.policies.policies)} policies, "
            f"{len(bundle.sessions)} sessions"
        )
        if action == "check":
            self.stdout.write(self.style.SUCCESS(f"OK: {summary}"))
            return
        report = config_apply(bundle=bundle, actor=actor)
        for item in report.created:
            self.stdout.write(f"created  {item}")
        for item in report.updated:
            self.stdout.write(f"updated  {item}")
        for item in report.skipped:
            self.stdout.write(self.style.WARNING(f"skipped  {item}"))
        self.stdout.write(self.style.SUCCESS(
            f"loaded {summary}: {len(report.created)} created, {len(report.updated)} updated, "
            f"{report.unchanged} unchanged"
        ))


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
