"""The Paper Sessions Registry export, ``data/registry/paper_sessions.json`` (spec §5.2).

The database is the source of truth; this file is a snapshot rewritten
atomically after every change. Writers take an exclusive file lock and read
the database *inside* it, so of two concurrent exports the later one always
carries the later state.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from ifns_paper.atomic import write_atomic
from sessions_app.models import PaperSession

log = logging.getLogger(__name__)

REGISTRY_NAME = "paper_sessions.json"
SCHEMA_VERSION = 1


def registry_path() -> Path:
    return Path(settings.IFNS_REGISTRY_DIR) / REGISTRY_NAME


_LINKS = {"session": "mirror:session-detail", "telemetry": "api:session-events", "summary": "api:session-summary",
          "incidents": "api:session-incidents", "comparison": "api:session-comparison",
          "sel_evaluations": "api:session-sel-evaluations", "series": "api:session-series"}
_SLOT = "session-id-slot"


@functools.cache
def _link_templates(public_url: str) -> dict[str, tuple[str, str]]:
    """Each link's URL around the session id, reversed once (a list of many sessions would
    otherwise reverse seven URLs per session)."""
    out = {}
    for name, route in _LINKS.items():
        head, _, tail = f"{public_url}{reverse(route, args=[_SLOT])}".partition(_SLOT)
        out[name] = (head, tail)
    return out


def session_links(session_id: str) -> dict[str, str]:
    """Links of one registry entry, each answering with JSON or a page."""
    return {name: f"{head}{session_id}{tail}"
            for name, (head, tail) in _link_templates(settings.IFNS_PUBLIC_URL).items()}


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def registry_entries() -> list[dict]:
    sessions = (
        PaperSession.objects.select_related("lane", "strategy", "execution_policy")
        .prefetch_related("model_links__entry")
        .order_by("session_id")
    )
    return [
        {
            "session_id": s.session_id,
            "env": "paper",
            "lane": s.lane.name,
            "strategy_id": s.strategy.registry_id,
            "strategy_version": s.strategy.version,
            "model_ids": [f"{link.entry.registry_id}@{link.entry.version}" for link in s.model_links.all()],
            "portfolio_id": s.portfolio_id,
            "owner": s.owner,
            "status": s.status,
            "scheduled_start": _iso(s.start_at),
            "start_ts": _iso(s.started_at),
            "end_ts": _iso(s.ended_at),
            "links": session_links(s.session_id),
        }
        for s in sessions
    ]


def registry_export() -> Path:
    """Rewrite the registry file from the database; returns its path."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{REGISTRY_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = {
            "schema_version": SCHEMA_VERSION,
            "env": "paper",
            "generated_at": timezone.now().isoformat(),
            "sessions": registry_entries(),
        }
        write_atomic(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def registry_export_after_commit() -> None:
    """``on_commit`` hook: a failed export is logged; ``registry_sync`` heals it."""
    try:
        registry_export()
    except Exception:  # noqa: BLE001 - the change is committed; the file is an export
        log.exception("paper session registry export failed")


def registry_in_sync() -> bool:
    """True when the file on disk lists exactly what the database holds."""
    try:
        on_disk = json.loads(registry_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return on_disk.get("sessions") == registry_entries()
