"""``@idempotent`` for API write methods: honours an ``Idempotency-Key`` header
(``services.idempotency``). A repeated key with the same request answers with the first
response (header ``Idempotent-Replayed: true``) and does nothing again; with another request,
409. Without the header the method runs as usual."""

from __future__ import annotations

import functools

from rest_framework.response import Response

from sessions_app.services.idempotency import idempotency_claim, idempotency_store, request_hash

HEADER = "Idempotency-Key"


def idempotent(method):
    @functools.wraps(method)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return method(view, request, *args, **kwargs)
        user = request.user
        digest = request_hash(request.method, request.path, request.body)
        replay = idempotency_claim(user=user, key=key, digest=digest)
        if replay is not None:
            response = Response(replay.response, status=replay.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = method(view, request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - answered here so that the answer is kept
            try:
                response = view.handle_exception(exc)  # a 4xx in the API's error shape
            except Exception:
                idempotency_store(user=user, key=key, status_code=500, response=None)  # releases the key
                raise
        idempotency_store(user=user, key=key, status_code=response.status_code, response=response.data)
        return response

    return wrapper
