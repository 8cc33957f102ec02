"""API wiring shared by the apps: the one place application errors become HTTP."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ifns_paper.exceptions import ApplicationError


def exception_handler(exc, context):
    """Map :class:`ApplicationError` (and subclasses) to ``{"detail", ...extra}``."""
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
    return drf_exception_handler(exc, context)
