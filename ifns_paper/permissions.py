"""Who may call what in the API: each method of a view needs a capability (``roles``)."""

from __future__ import annotations

from rest_framework import permissions

from ifns_paper.roles import NEEDED_ROLE, Capability, user_can

SAFE = ("GET", "HEAD", "OPTIONS")


def capability_for(view, method: str) -> Capability | None:
    """What ``method`` on ``view`` needs: the view's ``capabilities`` entry for it, else
    READ for a safe method and OPERATE otherwise. None: open to anyone."""
    declared = getattr(view, "capabilities", {})
    if method in declared:
        return declared[method]
    if method in ("HEAD", "OPTIONS") and "GET" in declared:
        return declared["GET"]
    return Capability.READ if method in SAFE else Capability.OPERATE


class HasCapability(permissions.BasePermission):
    """The request's user has the capability its method needs on the view (``capability_for``).
    Anonymous requests are refused with 401 (DRF asks the first authenticator for the
    ``WWW-Authenticate`` header), authenticated ones without the role with 403."""

    def has_permission(self, request, view) -> bool:
        needed = capability_for(view, request.method)
        if needed is None:
            return True
        if user_can(request.user, needed):
            return True
        self.message = f"{request.method} {request.path} needs the {NEEDED_ROLE[needed]} role"
        return False
