"""API tokens for automation (``Authorization: Token <key>``).

    paper_token create USER [--name TEXT] [--actor NAME]   prints the key: the only time it is shown
    paper_token revoke TOKEN_ID [--reason TEXT]
    paper_token list [USER]                                 id, prefix, user, name, created, last used, state
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from ifns_paper.exceptions import ApplicationError
from sessions_app.models import ApiToken
from sessions_app.services.tokens import token_create, token_revoke


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


class Command(BaseCommand):
    help = "Create, revoke and list API tokens; a new token's key is printed once."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new token for USER (the key is printed once)")
        create.add_argument("username")
        create.add_argument("--name", default="automation", help="what the token is for")
        create.add_argument("--actor", default=None, help="who creates it (default: cli:<login>)")
        revoke = sub.add_parser("revoke", help="revoke a token by its id")
        revoke.add_argument("token_id", type=int)
        revoke.add_argument("--reason", default="")
        revoke.add_argument("--actor", default=None)
        listing = sub.add_parser("list", help="tokens, newest first")
        listing.add_argument("username", nargs="?")

    def handle(self, *args, action: str, **options) -> None:
        actor = options.get("actor") or f"cli:{getpass.getuser()}"
        try:
            if action == "create":
                token, key = token_create(username=options["username"], name=options["name"], actor=actor)
                self.stdout.write(f"API token #{token.pk} for {token.user.username} ({token.name}); the key, shown "
                                  f"only now:\n{key}\n")
                self.stdout.write("use it as: Authorization: Token <key>")
                return
            if action == "revoke":
                token = token_revoke(token_id=options["token_id"], actor=actor, reason=options["reason"])
                self.stdout.write(f"API token #{token.pk} ({token.prefix}…) of {token.user.username} revoked")
                return
        except ApplicationError as exc:
            raise CommandError(exc.described()) from None
        rows = ApiToken.objects.select_related("user")
        if options["username"]:
            rows = rows.filter(user__username=options["username"])
        for t in rows:
            state = f"revoked {_when(t.revoked_at)} by {t.revoked_by}" if t.revoked_at else "active"
            self.stdout.write(f"#{t.pk:<4} {t.prefix}…  {t.user.username:12} {t.name:30} created {_when(t.created_at)}  "
                              f"last used {_when(t.last_used_at)}  {state}")
