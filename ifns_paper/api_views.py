"""Views of the API itself: the ``/api/v1/`` root, the old ``/api/...`` aliases, and 404s
under ``/api/`` in the API's error shape."""

from __future__ import annotations

from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.views.defaults import page_not_found
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.api import error_body
from ifns_paper.api_schema import documented


def legacy_redirect(request, rest: str):
    """``/api/<rest>`` → ``/api/v1/<rest>`` (308: the method and body are kept)."""
    query = request.META.get("QUERY_STRING")
    response = HttpResponsePermanentRedirect(f"/api/v1/{rest}" + (f"?{query}" if query else ""))
    response.status_code = 308
    return response


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)
    return page_not_found(request, exception)


def api_resources() -> dict[str, str]:
    """Every route of the ``api`` namespace by name, as a path template."""
    resolver = next(r for r in get_resolver().url_patterns
                    if isinstance(r, URLResolver) and r.namespace == "api")
    out = {}
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLPattern) and pattern.name and pattern.name != "root":
            out[pattern.name] = reverse("api:root") + str(pattern.pattern)
    return out


class ApiRootView(APIView):
    """The API's resources (name → path template, ``<slug:session_id>`` placeholders), the
    schema and the docs. Open to anyone."""

    capabilities = {"GET": None}

    @documented(operation_id="api_root", public=True, response=inline_serializer("ApiRoot", {
        "version": serializers.CharField(), "schema": serializers.CharField(), "docs": serializers.CharField(),
        "resources": serializers.DictField(child=serializers.CharField())}))
    def get(self, request):
        return Response({"version": "v1", "schema": reverse("api-schema"), "docs": reverse("api-docs"),
                         "resources": api_resources()})
