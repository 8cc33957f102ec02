"""The role groups of ``ifns_paper.roles`` in the database."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from ifns_paper.exceptions import ApplicationError, NotFound
from ifns_paper.roles import ROLE_CAPABILITIES, Role


def _permission(capability) -> Permission:
    app_label, codename = capability.value.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def roles_setup() -> dict[str, list[str]]:
    """Create or correct the role groups: each gets exactly its role's permissions.
    Idempotent. Returns each group's permissions."""
    out = {}
    with transaction.atomic():
        for role, capabilities in ROLE_CAPABILITIES.items():
            group, _ = Group.objects.get_or_create(name=role.value)
            group.permissions.set([_permission(c) for c in capabilities])
            out[role.value] = [c.value for c in capabilities]
    return out


def user_roles_set(*, username: str, roles: list[str]):
    """Put ``username`` in exactly the given role groups (other groups untouched)."""
    unknown = sorted(set(roles) - {r.value for r in Role})
    if unknown:
        raise ApplicationError(f"roles: unknown {', '.join(unknown)} (roles: {', '.join(r.value for r in Role)})")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    role_groups = Group.objects.filter(name__in=[r.value for r in Role])
    with transaction.atomic():
        user.groups.remove(*role_groups.exclude(name__in=roles))
        user.groups.add(*role_groups.filter(name__in=roles))
    return user
