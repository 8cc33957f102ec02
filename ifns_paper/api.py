"""API wiring shared by the apps: the one place errors become HTTP (roles: ``permissions``).

Every error answers with one shape::

    {"error": {"code": "conflict", "message": "...", "fields": {"reason": ["..."]}, ...}}

``code`` is stable (``invalid``, ``not_authenticated``, ``permission_denied``,
``not_found``, ``conflict``, ``method_not_allowed``, ``parse_error``, ``throttled``,
``unsupported_media_type``, ``not_acceptable``, ``too_large``); ``fields`` maps a field path
(``sizing.lot_sizes.EURUSD``) to its messages and is empty when the error is not about a
field; other keys an application error carries (``allowed_actions``, ``problems``) follow.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, parsers, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ifns_paper.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed


def _fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as {"a.b.0": [messages]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            out |= _fields(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(detail, list) and detail and all(isinstance(d, (dict, list)) for d in detail):
        out = {}
        for i, value in enumerate(detail):
            out |= _fields(value, f"{prefix}.{i}" if prefix else str(i))
        return out
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(m) for m in messages]} if messages else {}


def error_body(code: str, message: str, fields: dict | None = None, **extra) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def _application_code(exc: ApplicationError) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Conflict):
        return "conflict"
    if exc.status_code == 403:
        return "permission_denied"
    return "invalid"


class StrictInput(serializers.Serializer):
    """A request body's serializer that refuses fields it does not know (a typo in a field
    name is a 400 naming it, not an ignored value)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise exceptions.ValidationError({k: ["unknown field"] for k in unknown})
        return super().to_internal_value(data)


def exception_handler(exc, context):
    """Application errors and DRF's own as the one error shape (module docstring)."""
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} "
                                                "bytes"), status=413)
    if isinstance(exc, ApplicationError):
        extra = dict(exc.extra)
        fields = extra.pop("errors", None) if isinstance(exc, ValidationFailed) else extra.pop("fields", None)
        return Response(error_body(_application_code(exc), exc.message, fields, **extra), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a defect: Django's 500 (logged with its traceback)
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        message = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or "invalid input"
        response.data = error_body("invalid", message, fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(exc, "default_code", "error")
        if isinstance(exc, exceptions.APIException) and hasattr(exc, "get_codes"):
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else code
        response.data = error_body(code, str(detail))
    return response


def _clean(value, path: str = "") -> str | None:
    """The path of the first string (key or value) PostgreSQL cannot store — a NUL character
    or half of a surrogate pair — or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return path or "(body)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(body)"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            bad = _clean(k, where) or _clean(v, where)
            if bad:
                return bad.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            bad = _clean(v, f"{path}.{i}" if path else str(i))
            if bad:
                return bad
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing text no database could store (NUL characters, lone
    surrogates) with a 400 naming where, before any view sees it."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        bad = _clean(data)
        if bad is not None:
            raise exceptions.ParseError(f"{bad}: a NUL character or an unpaired surrogate in the text")
        return data
