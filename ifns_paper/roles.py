"""Roles of IFNS Paper users, as Django groups bundling permissions.

=========  ==============================================================================
viewer     reads everything (sessions, lanes, telemetry, metrics, comparisons, promotions)
operator   + session actions, kill switches, cooldowns, promotion requests, tags, clones,
           shadow backtests and imports
approver   + approves or rejects promotion requests (never their own: four eyes, enforced
           in ``sessions_app.services.promotions``)
admin      + lane policies and risk envelopes, execution policies, API tokens of any user
=========  ==============================================================================

Capabilities are Django permissions, so ``user.has_perm`` answers them everywhere (API,
commands, services, admin) and a superuser has them all. ``manage.py paper_roles setup``
creates the groups with these permissions (idempotent; ``make run`` runs it).
"""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    READ = "sessions_app.view_papersession"
    OPERATE = "sessions_app.operate_papersession"
    APPROVE = "sessions_app.approve_promotionrequest"
    ADMINISTER = "sessions_app.change_lanepolicy"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


ROLE_CAPABILITIES: dict[Role, tuple[Capability, ...]] = {
    Role.VIEWER: (Capability.READ,),
    Role.OPERATOR: (Capability.READ, Capability.OPERATE),
    Role.APPROVER: (Capability.READ, Capability.APPROVE),
    Role.ADMIN: (Capability.READ, Capability.OPERATE, Capability.APPROVE, Capability.ADMINISTER),
}

# What each capability is called in messages ("needs the operator role").
NEEDED_ROLE = {Capability.READ: "viewer", Capability.OPERATE: "operator", Capability.APPROVE: "approver",
               Capability.ADMINISTER: "admin"}


def user_can(user, capability: Capability) -> bool:
    """Whether an authenticated user has ``capability`` (through a role, or as superuser)."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.has_perm(capability.value))
