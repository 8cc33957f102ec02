"""The user roles (``ifns_paper/roles.py``) as groups.

    paper_roles setup              create or correct the groups viewer, operator, approver, admin
    paper_roles grant USER ROLE... put USER in exactly these role groups
    paper_roles list               each role's members
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from ifns_paper.roles import Role
from sessions_app.services.roles import roles_setup, user_roles_set


class Command(BaseCommand):
    help = "Create the role groups (viewer, operator, approver, admin); grant roles; list members."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("setup", help="create or correct the role groups (idempotent)")
        grant = sub.add_parser("grant", help="put a user in exactly these role groups")
        grant.add_argument("username")
        grant.add_argument("roles", nargs="*", choices=[r.value for r in Role])
        sub.add_parser("list", help="each role's members")

    def handle(self, *args, action: str, **options) -> None:
        if action == "setup":
            for role, perms in roles_setup().items():
                self.stdout.write(f"role {role}: {', '.join(perms)}")
            return
        if action == "grant":
            try:
                user = user_roles_set(username=options["username"], roles=options["roles"])
            except ApplicationError as exc:
                raise CommandError(exc.described()) from None
            self.stdout.write(f"{user.username}: {', '.join(options['roles']) or 'no role'}")
            return
        for role in Role:
            group = Group.objects.filter(name=role.value).first()
            members = sorted(group.user_set.values_list("username", flat=True)) if group else None
            self.stdout.write(f"{role.value:9} " + ("(group missing: paper_roles setup)" if members is None
                                                     else ", ".join(members) or "-"))
