"""Reads of broker_app's tables."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from broker_app.models import ExecutionPolicy, ExecutionRoute, PaperFill, PaperOrder, PaperPosition


def policy_get(*, policy_id: str) -> ExecutionPolicy | None:
    return ExecutionPolicy.objects.select_related("route").filter(policy_id=policy_id).first()


def route_configs(*, route_ids: list[str]) -> dict[str, dict]:
    """Routes as the engine's ``routes_from_mapping`` takes them (the config file's shape)."""
    return {r.route_id: {"simulation": r.simulation, "latency": r.latency, "fees": r.fees,
                         "stale_quote_ms": r.stale_quote_ms, "failures": r.failures,
                         "trading_hours": r.trading_hours, "extreme_slippage_bps": r.extreme_slippage_bps}
            for r in ExecutionRoute.objects.filter(route_id__in=route_ids)}


def orders_for_session(*, session_id: str) -> QuerySet[PaperOrder]:
    return PaperOrder.objects.filter(session__session_id=session_id).order_by("submitted_at", "id")


def fills_for_session(*, session_id: str) -> QuerySet[PaperFill]:
    return PaperFill.objects.filter(session__session_id=session_id).order_by("event_time", "id")


def positions_for_session(*, session_id: str) -> QuerySet[PaperPosition]:
    return PaperPosition.objects.filter(session__session_id=session_id).order_by("symbol")


def _ns(moment) -> int:
    from datetime import UTC, datetime, timedelta

    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def fill_records(*, session_id: str, after_pk: int = 0) -> list[dict]:
    """A session's fills as the metrics read them (``metrics.summary``), oldest first; with
    ``after_pk``, only those stored after that row (``pk``: where the next read goes on)."""
    rows = (PaperFill.objects.filter(session__session_id=session_id, pk__gt=after_pk).order_by("event_time", "id")
            .values_list("pk", "symbol", "side", "quantity", "price", "fee", "event_time", "slippage_bps",
                         "route_id", "arrival_mid", "order__client_order_id"))
    return [{"pk": pk, "symbol": sym, "side": side, "quantity": q, "price": px, "fee": fee, "ts": _ns(at),
             "slippage_bps": slip, "route_id": route, "arrival_mid": mid, "client_order_id": coid}
            for pk, sym, side, q, px, fee, at, slip, route, mid, coid in rows]


FINAL_ORDER_STATUSES = ("filled", "cancelled", "rejected", "expired")


def order_records(*, session_id: str, fills: list[dict] | None = None, after_pk: int = 0,
                  client_order_ids: list[str] | None = None) -> list[dict]:
    """A session's orders as the metrics read them, with the time of their first fill (from
    ``fills``, the session's ``fill_records``, when given: no second pass over the fills).
    Incremental reads: orders stored after ``after_pk``, plus those of ``client_order_ids``
    (orders still open at the last read: their status and filled quantity move)."""
    if fills is None:
        fills = fill_records(session_id=session_id)
    first: dict[str, int] = {}
    for f in fills:
        first.setdefault(f["client_order_id"], f["ts"])
    qs = PaperOrder.objects.filter(session__session_id=session_id)
    if after_pk or client_order_ids:
        qs = qs.filter(Q(pk__gt=after_pk) | Q(client_order_id__in=client_order_ids or []))
    rows = qs.order_by("submitted_at", "id").values_list(
        "pk", "client_order_id", "decision_id", "route_id", "status", "reason", "quantity", "filled_quantity",
        "submitted_at")
    return [{"pk": pk, "client_order_id": c, "decision_id": d, "route_id": r, "status": st, "reason": why,
             "quantity": q, "filled_quantity": fq, "submitted_ns": _ns(at), "first_fill_ns": first.get(c)}
            for pk, c, d, r, st, why, q, fq, at in rows]
