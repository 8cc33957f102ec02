"""Reads of the telemetry store."""

from __future__ import annotations

from django.db.models import F, Max, QuerySet
from django.db.models.functions import JSONObject

from telemetry_app.models import EquitySample, FeedHealthEvent, SessionSummary, TelemetryEvent

MINUTE_NS = 60_000_000_000


def events_for_session(*, session_id: str, after: int = 0, event_type: str | None = None, until: int | None = None,
                       symbol: str | None = None, since=None, before=None) -> QuerySet[TelemetryEvent]:
    """Events of one session with a sequence number above ``after`` (up to ``until``), of
    ``event_type``, about ``symbol`` (the payload's), in [``since``, ``before``), oldest first."""
    # The session's row id first: filtered on a constant, PostgreSQL walks the (session,
    # sequence) index in order and stops at the page's end, however many events there are
    # (through a join on the session's name it sorted all of them: 375 ms for the first page
    # of a million, in bench.api_bench).
    sessions = TelemetryEvent._meta.get_field("session").related_model.objects
    pk = sessions.filter(session_id=session_id).values_list("pk", flat=True).first()
    qs = TelemetryEvent.objects.filter(session_id=pk, sequence__gt=after)
    if until is not None:
        qs = qs.filter(sequence__lte=until)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if symbol:
        qs = qs.filter(payload__symbol=symbol)
    if since is not None:
        qs = qs.filter(event_time__gte=since)
    if before is not None:
        qs = qs.filter(event_time__lt=before)
    return qs.order_by("sequence")


def feed_health_latest() -> QuerySet[FeedHealthEvent]:
    """The latest health report of every feed that has reported, by feed name (one query)."""
    latest = FeedHealthEvent.objects.values("feed").annotate(last=Max("id")).values("last")
    return FeedHealthEvent.objects.filter(id__in=latest).order_by("feed")


def series_for_session(*, session_id: str, from_ns: int | None = None, to_ns: int | None = None,
                       every_ns: int | None = None) -> list[dict]:
    """A session's equity samples in [from_ns, to_ns], oldest first; with ``every_ns``, only
    the last sample of each ``every_ns`` bucket (downsampling for long ranges)."""
    qs = EquitySample.objects.filter(session__session_id=session_id)
    if from_ns is not None:
        qs = qs.filter(ts_ns__gte=from_ns)
    if to_ns is not None:
        qs = qs.filter(ts_ns__lte=to_ns)
    rows = [s.as_record() for s in qs.order_by("ts_ns")]
    if every_ns:
        kept: dict[int, dict] = {}
        for r in rows:
            kept[r["ts_ns"] // every_ns] = r
        rows = list(kept.values())
    return rows


def chart_series(*, session_id: str, max_points: int) -> list[tuple]:
    """A session's samples for charts, oldest first, at most ``max_points`` (the newest kept,
    the rest thinned evenly): ``(ts_ns, equity, drawdown, gross, net, marks)``. One query;
    the marks come as JSON text and only the kept samples' are decoded."""
    import json

    from django.db.models import TextField
    from django.db.models.functions import Cast

    rows = list(EquitySample.objects.filter(session__session_id=session_id).order_by("ts_ns")
                .values_list("ts_ns", "equity", "drawdown", "gross", "net", Cast("marks", TextField())))
    if len(rows) > max_points:
        step = len(rows) / max_points
        rows = [rows[int(i * step)] for i in range(max_points - 1)] + [rows[-1]]
    return [(*r[:5], json.loads(r[5]) if r[5] else {}) for r in rows]


def minute_series_for_session(*, session_id: str, after_ns: int | None = None) -> list[dict]:
    """The samples summaries use: whole minutes (after ``after_ns`` when given), plus the
    newest (``metrics.summary.thin_to_minutes``)."""
    qs = EquitySample.objects.filter(session__session_id=session_id).order_by("ts_ns")
    whole = qs if after_ns is None else qs.filter(ts_ns__gt=after_ns)
    minutes = [s.as_record() for s in whole.annotate(rest=F("ts_ns") % MINUTE_NS).filter(rest=0)]
    last = qs.last()
    if last is not None and (not minutes or minutes[-1]["ts_ns"] != last.ts_ns):
        minutes.append(last.as_record())
    return minutes


def event_payloads(*, session_id: str, event_types: list[str], after: int = 0) -> dict[str, list[dict]]:
    """A session's events of ``event_types`` with a sequence number above ``after``, as their
    payloads plus ``ts`` (event time, epoch ns at microsecond precision) and ``sequence``, by
    type, oldest first."""
    out: dict[str, list[dict]] = {t: [] for t in event_types}
    rows = (TelemetryEvent.objects.filter(session__session_id=session_id, event_type__in=event_types,
                                          sequence__gt=after)
            .order_by("sequence").values_list("event_type", "event_time", "payload", "sequence"))
    for kind, when, payload, seq in rows:
        payload.update(ts=_ns(when), event_type=kind, sequence=seq)
        out[kind].append(payload)
    return out


def _ns(moment) -> int:
    from datetime import UTC, datetime, timedelta

    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def summary_exists(*, session_id: str, as_of_ns: int | None, final: bool) -> bool:
    return as_of_ns is not None and SessionSummary.objects.filter(
        session__session_id=session_id, as_of_ns=as_of_ns, final=final).exists()


def summary_latest(*, session_id: str) -> SessionSummary | None:
    """The newest summary of a session (a final one wins over a refresh of the same time)."""
    return (SessionSummary.objects.filter(session__session_id=session_id)
            .order_by("-as_of_ns", "-final", "-id").first())


def summaries_latest(*, session_ids: list[str], since=None, parts: tuple[str, ...] | None = None) -> dict[str, dict]:
    """The newest summary of each of ``session_ids`` (written at or after ``since``, a
    datetime), by session id: two queries whatever their number. With ``parts`` (paths such
    as ``"pnl"`` or ``"execution__slippage"``), only those are read from the database, as a
    nested dict of the same shape (a page's hundred summaries are mostly histograms and
    per-route tables it does not show)."""
    qs = SessionSummary.objects.filter(session__session_id__in=session_ids)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    newest = qs.values("session_id").annotate(last=Max("id")).values("last")
    rows = SessionSummary.objects.filter(id__in=newest)
    if parts is None:
        return {row.session.session_id: row.data for row in rows.select_related("session")}
    # one JSON object a row (decoded once, not once per part)
    picked = JSONObject(spark=F("spark"), **{f"p{i}": F(f"data__{path}") for i, path in enumerate(parts)})
    out = {}
    for sid, value in rows.values_list("session__session_id", picked):
        row = _decoded(value)
        data: dict = {"spark": _decoded(row["spark"])}  # the sparkline stored beside the summary (JSON text on SQLite)
        for i, path in enumerate(parts):
            keys = path.split("__")
            node = data
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = _decoded(row.get(f"p{i}"))
        out[sid] = data
    return out


def _decoded(value):
    """A JSON key read through the ORM: decoded already, or JSON text on some backends."""
    import json

    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
