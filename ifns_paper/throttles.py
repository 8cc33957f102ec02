"""API throttles (DRF): writes per signed-in user; reads are not throttled."""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle

from ifns_paper.permissions import SAFE


class WriteThrottle(UserRateThrottle):
    """``writes`` per user (``IFNS_API_WRITE_RATE``, default 120/min); a 429 says when to retry."""

    scope = "writes"

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE:
            return True
        return super().allow_request(request, view)
