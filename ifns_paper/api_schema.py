"""The OpenAPI schema (drf-spectacular): the error shape every endpoint may answer with, a
decorator that documents an endpoint's query, body, response and errors in one line, and
the hook that keeps the schema to ``/api/v1/``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from ifns_paper.governance import RequestKind, RequestStatus

ERROR_MEANINGS = {
    400: "invalid input: `fields` names each bad field (path) with its messages",
    401: "not signed in, or no valid API token (`WWW-Authenticate: Token`)",
    403: "signed in, but the role this needs is missing (the message names it)",
    404: "no such object (the message names it)",
    409: "well formed, but the current state forbids it (illegal transition, four eyes, a gate)",
    429: "too many writes: retry after the Retry-After header's seconds",
}
ANY_OBJECT = OpenApiTypes.OBJECT
LIST_OF_OBJECTS = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
SWITCH_STATES = ["active", "reducing", "halted"]  # one enum in the schema (engine.controls.SwitchState)
# One named enum each in the schema (ENUM_NAME_OVERRIDES): the values of the choices they stand for.
PROMOTION_KINDS = [k.value for k in RequestKind]
PROMOTION_STATUSES = [s.value for s in RequestStatus]
BACKTEST_KINDS = ["shadow", "imported", "live"]
BACKTEST_STATUSES = ["running", "completed", "failed"]


class ErrorBody(serializers.Serializer):
    code = serializers.CharField(help_text="stable: invalid, not_authenticated, authentication_failed, "
                                           "permission_denied, not_found, conflict, method_not_allowed, "
                                           "parse_error, unsupported_media_type, throttled")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="field path → messages; empty when not about a field")


class ErrorResponse(serializers.Serializer):
    error = ErrorBody()


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", location=OpenApiParameter.HEADER, required=False,
    type={"type": "string", "pattern": "^[ -~]{1,200}$"},
    description="repeat the write safely: the same key with the same request within 24 h answers with the first "
                "response (header Idempotent-Replayed: true); with another request, 409")


def documented(*, operation_id: str, response=ANY_OBJECT, query=None, request=None, errors=(),
               status: int = 200, description: str | None = None, idempotent: bool = False,
               public: bool = False):
    """``extend_schema`` for one endpoint method: ``query`` (a serializer of the query
    parameters), ``request`` (the body's serializer), ``response``, the error statuses it
    can answer with beyond 401 and 403 (always possible), and whether it takes an
    ``Idempotency-Key`` (``sessions_app.idempotency``); ``public``: open to anyone."""
    responses = {status: response}
    for code in sorted({401, 403, *errors, *((400, 409, 429) if idempotent else ())}):
        responses[code] = OpenApiResponse(ErrorResponse, description=ERROR_MEANINGS[code])
    parameters = ([query] if query is not None else []) + ([IDEMPOTENCY_KEY] if idempotent else [])
    if public:
        responses = {status: response}
    return extend_schema(operation_id=operation_id, parameters=parameters or None, request=request,
                         responses=responses, description=description, auth=[] if public else None)


def only_v1(endpoints):
    """The schema documents ``/api/v1/`` only (not the old aliases, not the admin)."""
    return [e for e in endpoints if e[0].startswith("/api/v1/")]
