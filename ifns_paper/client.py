"""A small client of the IFNS Paper API for scripts — and the recipe for following a session
live without losing anything (the Mirror pages do the same in ``static/js/live.js``).

    from ifns_paper.client import PaperApi, follow_session

    api = PaperApi("http://127.0.0.1:8000", token)          # manage.py paper_token create USER
    api.post(f"/api/v1/sessions/{sid}/actions/", {"action": "start", "reason": "script"})
    for event in follow_session(api, sid):                   # every event, in order, once
        print(event["sequence"], event["type"])

The recipe (``follow_session``): open the session's WebSocket first, then fetch from the
REST API everything after the last sequence seen; then read the socket, skipping what the
fetch already gave and, when a message's sequence jumps (a message the socket lost),
fetching the missing ones before it. When the socket drops, reconnect after a pause and
do the same. Plain Python (standard library and ``websockets``), no Django.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

PAGE = 1000


class ApiError(Exception):
    """An error answer: ``status`` and the API's error object (``code``, ``message``, ``fields``)."""

    def __init__(self, status: int, error: dict) -> None:
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status, self.error = status, error


class PaperApi:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout

    def request(self, method: str, path: str, body: dict | None = None, *,
                idempotency_key: str | None = None) -> dict | list:
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310 - the caller's URL
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": exc.reason, "fields": {}}
            raise ApiError(exc.code, error) from None

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: dict | None = None, **kw):
        return self.request("POST", path, body or {}, **kw)

    def events_after(self, session_id: str, after: int, *, until: int | None = None) -> list[dict]:
        """The session's events with a sequence above ``after`` (up to ``until``), in order."""
        out: list[dict] = []
        while True:
            page = self.get(f"/api/v1/sessions/{session_id}/events/?after={after}&limit={PAGE}")
            for event in page["events"]:
                if until is not None and event["sequence"] > until:
                    return out
                out.append(event)
            if len(page["events"]) < PAGE:
                return out
            after = page["next_after"]

    def socket_url(self, path: str) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{path}?token={self.token}"


def follow_session(api: PaperApi, session_id: str, *, after: int = 0, reconnect_after_s: float = 1.0,
                   idle_timeout_s: float | None = None) -> Iterator[dict]:
    """Every telemetry event of ``session_id`` with a sequence above ``after``, in order, each
    once, live (the module docstring's recipe). Stops when the socket has been quiet for
    ``idle_timeout_s`` (None: never); a refusal (4401/4403/4404) is raised as ``ApiError``."""
    last = after
    while True:
        try:
            with connect(api.socket_url(f"/ws/paper/sessions/{session_id}/"), origin=api.base_url,
                         open_timeout=api.timeout) as ws:
                for event in api.events_after(session_id, last):  # what came before the socket
                    last = event["sequence"]
                    yield event
                while True:
                    try:
                        raw = ws.recv(timeout=idle_timeout_s)
                    except TimeoutError:
                        return
                    message = json.loads(raw)
                    sequence = message.get("sequence")
                    if sequence is None or message.get("session_id") != session_id or sequence <= last:
                        continue  # health records, pongs, or an event the fetch already gave
                    if sequence > last + 1:  # the socket lost some: fetch them first
                        for event in api.events_after(session_id, last, until=sequence - 1):
                            last = event["sequence"]
                            yield event
                    last = sequence
                    yield message
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in (4401, 4403, 4404):
                raise ApiError(code, {"code": "socket_refused", "message": exc.rcvd.reason or str(code),
                                      "fields": {}}) from None
        except (OSError, InvalidHandshake, InvalidStatus):
            pass  # the server is away: try again
        time.sleep(reconnect_after_s)
