"""Who may see and do what on the pages: signed-in users with a role see them, controls
need the operator role (lane changes the admin role), checked on every request whatever the
page showed; and the small helpers every control shares."""

from __future__ import annotations

import functools

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from ifns_paper.exceptions import ApplicationError
from ifns_paper.roles import Capability, user_can


def viewer_required(view):
    """Pages need a signed-in user with a role (viewer at least); others go to the sign-in page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.READ):
            raise PermissionDenied(f"{request.user.username} has no role: ask an admin for viewer at least")
        return view(request, *args, **kwargs)

    return wrapper


def operator_required(view):
    """Controls: the operator role, or 403 naming it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.OPERATE):
            raise PermissionDenied(f"{request.user.username} needs the operator role for this")
        return view(request, *args, **kwargs)

    return wrapper


def login_required_403(view):
    """Signed in at least; what the user may do is the service's to decide (promotions)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user_can(request.user, Capability.ADMINISTER):
            raise PermissionDenied(f"{request.user.username} needs the admin role to change a lane")
        return view(request, *args, **kwargs)

    return wrapper


def actor_of(request) -> str:
    return f"web:{request.user.username}"


def back(request, fallback: str):
    """Back to the page the form was on (same site only)."""
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else fallback)


def report(request, exc: ApplicationError) -> None:
    messages.error(request, exc.described())
