"""Triangulation of a paper session against a backtest of the same definition (spec §7): the
equity curves on a common 1-minute grid (returns correlation, tracking error, annualised
DTW, equity deviation), execution (slippage, fill and reject rates per route, shortfall),
and decision agreement with the first divergence and its likely cause. The paper side is
cut at the backtest's last data time, so both cover the same stretch of market.

The functions are ``ifns_paper.metrics.compare``; this module only gathers their inputs."""

from __future__ import annotations

import json
import logging

from django.db.models import Q
from django.utils import timezone

from broker_app.selectors import fill_records, order_records
from ifns_paper.exceptions import NotFound
from ifns_paper.metrics.compare import (
    DECENT_DTW,
    GOOD_CORRELATION,
    compare_curves,
    decision_agreement,
)
from ifns_paper.metrics.execution import order_outcomes, slippage_by
from ifns_paper.paper_replay import minute_series
from sessions_app.models import Backtest, PaperSession, SessionComparison
from sessions_app.services.backtests import backtest_files
from sessions_app.services.summaries import conventions_for
from telemetry_app.choices import EventType
from telemetry_app.selectors import event_payloads, series_for_session

log = logging.getLogger(__name__)


def backtest_for(session: PaperSession, backtest_id: str | None) -> Backtest:
    """The named backtest; by default the session's rolling shadow backtest (it follows the
    session: the newest, once it has rolled), else its newest completed shadow backtest."""
    qs = Backtest.objects.filter(Q(status=Backtest.Status.COMPLETED)
                                 | Q(status=Backtest.Status.RUNNING, params__rolling=True, params__has_key="state"))
    if backtest_id is not None:
        row = qs.filter(backtest_id=backtest_id).first()
        if row is None:
            raise NotFound(f"no completed backtest {backtest_id!r}")
        return row
    shadows = qs.filter(session=session, kind=Backtest.Kind.SHADOW).order_by("-created_at", "-id")
    row = shadows.filter(params__has_key="rolls").first() or shadows.first()
    if row is None:
        raise NotFound(f"{session.session_id}: no shadow backtest yet (manage.py paper_backtest shadow "
                       f"{session.session_id})")
    return row


def backtest_equity(*, session_id: str, backtest_id: str | None = None) -> dict:
    """The equity samples (``ts`` epoch ns, ``equity``) of the backtest a comparison of the
    session uses (``backtest_for``): what the drill-down draws over the session's equity.
    ``NotFound`` without a session or a backtest."""
    session = PaperSession.objects.filter(session_id=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    backtest = backtest_for(session, backtest_id)
    return {"backtest_id": backtest.backtest_id, "kind": backtest.kind,
            "points": _equity_series(backtest_files(backtest))}


def _ndjson(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _equity_series(files) -> list[dict]:
    """A backtest's equity samples (``ts``, ``equity``): a shadow's whole minutes and last
    sample (the comparison's grid is a minute), an imported one's as imported."""
    if (files / "minutes.ndjson").is_file():
        return [{"ts": p["ts_ns"], "equity": p["equity"]} for p in minute_series(files)]
    return _ndjson(files / "series.ndjson")


def _by_route(summary: dict, key: str) -> dict[str, float | None]:
    return {route: stats.get(key) for route, stats in (summary["execution"].get("orders_by_route") or {}).items()}


def _deviation(paper: dict, other: dict) -> dict:
    return {k: (None if paper.get(k) is None or other.get(k) is None else paper[k] - other[k])
            for k in sorted(set(paper) | set(other))}


def comparison_compute(*, session_id: str, backtest_id: str | None = None) -> dict:
    """The comparison object (JSON-safe) of ``session_id`` against ``backtest_id`` (default:
    ``backtest_for``). ``NotFound`` without a session or a backtest."""
    session = PaperSession.objects.select_related("lane__policy").filter(session_id=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    backtest = backtest_for(session, backtest_id)
    files = backtest_files(backtest)
    until = backtest.params.get("last_ts")
    conv = conventions_for(session)

    paper_series = series_for_session(session_id=session_id, to_ns=until)
    other_series = _equity_series(files)
    thresholds = session.lane.policy.thresholds or {}  # the lane's, else QuantConnect's defaults
    curves = compare_curves([p["ts_ns"] for p in paper_series], [p["equity"] for p in paper_series],
                            [p["ts"] for p in other_series], [p["equity"] for p in other_series], conv,
                            min_correlation=thresholds.get("min_reconciliation_correlation", GOOD_CORRELATION),
                            max_dtw=thresholds.get("max_reconciliation_dtw", DECENT_DTW))

    events = event_payloads(session_id=session_id, event_types=[EventType.DRA_DECISION, EventType.INCIDENT])
    cut = (lambda rows: rows) if until is None else (lambda rows: [r for r in rows if int(r["ts"]) <= until])
    other_events = _ndjson(files / "events.ndjson")
    decisions = decision_agreement(
        cut(events[EventType.DRA_DECISION]),
        [{**e["payload"], "ts": e["ts"]} for e in other_events if e["type"] == "dra_decision"],
        paper_fills=cut(fill_records(session_id=session_id)), other_fills=_ndjson(files / "fills.ndjson"),
        gaps=[i for i in events[EventType.INCIDENT] + [{**e["payload"], "ts": e["ts"]} for e in other_events
                                                         if e["type"] == "incident"]
              if i.get("kind") in ("data_gap", "bad_quote")],
        latency=backtest.params.get("latency"))

    # execution on the same stretch: the paper side's fills and orders up to the backtest's end
    paper_fills = cut(fill_records(session_id=session_id))
    paper_orders = [o for o in order_records(session_id=session_id, fills=paper_fills)
                    if until is None or o["submitted_ns"] <= until]
    other_summary = backtest.summary or {}
    execution = None
    if other_summary:
        slip_p = {r: s["mean_bps"] for r, s in slippage_by(paper_fills, "route_id").items()}
        slip_o = {r: s.get("mean_bps") for r, s in other_summary["execution"]["slippage_by_route"].items()}
        outcomes = order_outcomes(paper_orders)
        rates = {k: ({r: v[k] for r, v in outcomes.items()}, _by_route(other_summary, k))
                 for k in ("fill_rate", "reject_rate")}
        start = other_summary["pnl"]["starting_capital"]
        paper_pnl = paper_series[-1]["equity"] - start if paper_series else None
        other_pnl = other_series[-1]["equity"] - start if other_series else None
        execution = {
            "slippage_mean_bps": {"paper": slip_p, "backtest": slip_o, "deviation": _deviation(slip_p, slip_o)},
            **{k: {"paper": p, "backtest": o, "deviation": _deviation(p, o)} for k, (p, o) in rates.items()},
            "pnl": {"paper": paper_pnl, "backtest": other_pnl,
                    "deviation": None if None in (paper_pnl, other_pnl) else paper_pnl - other_pnl,
                    "how": "each side's last equity sample up to the backtest's end, minus the starting capital"},
        }
    flags = list(curves["flags"])
    if decisions["first_divergence"] is not None:
        flags.append("decisions_diverge")
    return {"session_id": session_id, "backtest_id": backtest.backtest_id, "backtest_kind": backtest.kind,
            "rolling": bool(backtest.params.get("rolling")) and backtest.status == Backtest.Status.RUNNING,
            "latency": backtest.params.get("latency"), "until_ns": until, "conventions": conv.as_dict(),
            "curves": curves, "execution": execution, "decisions": decisions, "flags": flags}


def comparison_refresh(*, session_id: str, backtest_id: str | None = None) -> dict:
    """Compute the comparison (``comparison_compute``) and store it; returns it with its
    ``computed_at``."""
    result = comparison_compute(session_id=session_id, backtest_id=backtest_id)
    now = timezone.now()
    result["computed_at"] = now.isoformat()
    SessionComparison.objects.update_or_create(
        session=PaperSession.objects.get(session_id=session_id),
        backtest=Backtest.objects.get(backtest_id=result["backtest_id"]),
        defaults={"result": result, "flags": result["flags"], "computed_at": now})
    return result


def comparison_stored(*, session_id: str, backtest_id: str | None = None) -> dict:
    """The stored comparison of ``session_id`` with ``backtest_id`` (default: its newest
    shadow backtest), computed and stored now when there is none yet."""
    session = PaperSession.objects.filter(session_id=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    backtest = backtest_for(session, backtest_id)
    row = SessionComparison.objects.filter(session=session, backtest=backtest).first()
    if row is not None:
        return row.result
    return comparison_refresh(session_id=session_id, backtest_id=backtest.backtest_id)


def comparisons_roll(*, session_id: str | None = None) -> int:
    """Roll the rolling shadow backtests (of ``session_id`` only, when given) and store each
    one's comparison with its session afresh. Returns how many comparisons were stored."""
    from sessions_app.services.backtests import shadows_roll

    stored = 0
    for row in shadows_roll(session_id=session_id):
        if row.status == Backtest.Status.FAILED or "state" not in row.params:
            continue
        try:
            comparison_refresh(session_id=row.session.session_id, backtest_id=row.backtest_id)
        except Exception:  # noqa: BLE001 - one session's comparison does not stop the others'
            log.warning("comparison of %s with %s failed", row.session.session_id, row.backtest_id, exc_info=True)
            continue
        stored += 1
    return stored
