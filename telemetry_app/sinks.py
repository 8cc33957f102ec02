"""Where committed telemetry goes besides the database (spec §6.1 sinks).

* NDJSON: one file per session, ``<data dir>/telemetry/<session_id>.ndjson``,
  one event record a line, appended after commit.
* Channels: live pushes to the session, lane and all-sessions groups.
* Feed health: ``<data dir>/telemetry/feeds/<feed>.ndjson`` and the
  ``paper.feeds`` group.

Both run after the transaction commits; a failure is logged, and the
database (the source of truth) still has the events.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from django.conf import settings

from telemetry_app.broadcast import push_events, push_feed_health

log = logging.getLogger(__name__)


def telemetry_file(session_id: str) -> Path:
    return Path(settings.IFNS_DATA_DIR) / "telemetry" / f"{session_id}.ndjson"


def publish_committed(records: list[dict]) -> None:
    """Write committed event records to the NDJSON sink, then push them live."""
    by_session: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_session[record["session_id"]].append(record)
    for session_id, rows in by_session.items():
        path = telemetry_file(session_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as sink:
                sink.writelines(json.dumps(row) + "\n" for row in rows)
        except OSError:
            log.exception("telemetry NDJSON sink failed for %s", session_id)
    push_events(records)


def feed_health_file(feed: str) -> Path:
    return Path(settings.IFNS_DATA_DIR) / "telemetry" / "feeds" / f"{feed}.ndjson"


def publish_feed_health_committed(record: dict) -> None:
    """Append a committed feed health record to its NDJSON file, then push it live."""
    path = feed_health_file(record["feed"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as sink:
            sink.write(json.dumps(record) + "\n")
    except OSError:
        log.exception("feed health NDJSON sink failed for %s", record["feed"])
    push_feed_health(record)
