"""What the Mirror pages show, gathered from the apps' selectors (reads only): the
overview's rows with their metrics and sparklines, the drill-down's figures, chart data
and tables. A fixed number of queries per page whatever the number of sessions."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import cached_property
from html import escape

from broker_app.selectors import fills_for_session, orders_for_session, positions_for_session
from ifns_paper.engine.lifecycle import SessionStatus
from mirror_app import formatting as fmt
from sessions_app import dispatch, selectors
from sessions_app.models import PaperSession
from sessions_app.services.lanes import ENVELOPE_FIELDS
from telemetry_app.choices import EventType
from telemetry_app.selectors import (
    chart_series,
    event_payloads,
    events_for_session,
    summaries_latest,
    summary_latest,
)

EVENT_PAGE = 50
CHART_POINTS = 2000  # the most equity points a drill-down draws (older ones downsampled)
CHART_FILLS = 1000  # the newest fills drawn as markers (a day of trading has tens of thousands)
LIVE = (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED)
# the parts of a summary the overview shows (``SessionRow``)
# what an overview row reads of a session (no more: a hundred rows of unused dates and JSON add up)
OVERVIEW_FIELDS = ("session_id", "status", "owner", "tags", "symbols", "feed", "last_event_seq", "last_fault",
                   "last_fault_at", "lane__name", "lane__currency", "lane__capital_amount", "strategy__registry_id",
                   "strategy__version", "execution_policy__policy_id")
OVERVIEW_PARTS = ("pnl", "returns__max_drawdown", "execution__slippage", "risk", "benchmark__tracking_error",
                  "incidents__count")


def risk_usage(summary: dict | None) -> tuple[float | None, str]:
    """The highest envelope utilisation (peak as a fraction of its limit) and which limit."""
    if not summary:
        return None, ""
    best, which = None, ""
    for name, u in (summary.get("risk") or {}).items():
        items = u.items() if name == "position_per_symbol" else [(name, u)]
        for label, v in items:
            if isinstance(v, dict) and v.get("peak") is not None and (best is None or v["peak"] > best):
                best, which = v["peak"], label if name != "position_per_symbol" else f"position {label}"
    return best, which


@functools.cache
def _detail_url() -> str:
    """``/sessions/__id__/``, reversed once (a hundred ``{% url %}`` per page add up)."""
    from django.urls import reverse

    return reverse("mirror:session-detail", args=["__id__"])


@dataclass
class SessionRow:
    session: PaperSession
    health: dict
    summary: dict | None
    spark: list[float] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return self.session.lane.currency

    @cached_property
    def pnl(self):
        """Live P&L (the last step's book) when the session has stepped in this worker's
        view, else the summary's."""
        if self.health.get("pnl") is not None:
            return self.health["pnl"]
        return (self.summary or {}).get("pnl", {}).get("total")

    @cached_property
    def return_pct(self):
        pnl = self.pnl
        capital = (self.summary or {}).get("pnl", {}).get("starting_capital") or float(self.session.lane.capital_amount)
        return None if pnl is None or not capital else pnl / capital * 100

    @cached_property
    def max_dd_pct(self):
        dd = ((self.summary or {}).get("returns") or {}).get("max_drawdown") or {}
        return None if dd.get("depth") is None else dd["depth"] * 100

    @cached_property
    def slippage(self) -> dict:
        return ((self.summary or {}).get("execution") or {}).get("slippage") or {}

    @cached_property
    def risk(self) -> tuple[float | None, str]:
        return risk_usage(self.summary)

    @cached_property
    def tracking_error(self):
        return ((self.summary or {}).get("benchmark") or {}).get("tracking_error")

    @cached_property
    def incidents(self) -> int | None:
        return None if self.summary is None else self.summary.get("incidents", {}).get("count")

    @cached_property
    def spark_points(self) -> str:
        """The sparkline as SVG polyline points in a 120 × 28 box."""
        return _spark_points(tuple(self.spark))

    @cached_property
    def spark_up(self) -> bool:
        return len(self.spark) >= 2 and self.spark[-1] >= self.spark[0]

    @property
    def url(self) -> str:
        return _detail_url().replace("__id__", self.session.session_id)

    @cached_property
    def html(self) -> str:
        """The overview's ``<tr>`` of this session. Built here rather than in the template:
        a hundred rows of template lookups cost more than all the page's queries
        (bench.pages_bench). The markup is the template's: ``live.js`` updates it in place."""
        from django.utils.safestring import SafeData, mark_safe

        def h(x) -> str:  # Django's escaping, without its lazy-string wrappers (30 values a row)
            return x if isinstance(x, SafeData) else escape(str(x), quote=True)

        def v(x) -> str:  # a sort key: the raw number
            return "" if fmt.is_missing(x) else repr(float(x))

        s, c = self.session, self.cells
        lane = s.lane
        tags = "".join(f' · <span class="tag">{h(t)}</span>' for t in s.tags)
        spark = (f'<svg class="spark {"up" if self.spark_up else "down"}" viewBox="0 0 120 28" width="120" '
                 f'height="28" role="img" aria-label="equity over the last hour"><polyline '
                 f'points="{self.spark_points}"/></svg>'
                 if self.spark_points else '<span class="muted small">no data yet</span>')
        sid = h(s.session_id)
        return mark_safe(  # noqa: S308 - every value above and below is escaped by h() or is a number
            f'<tr data-session="{sid}" data-last-seq="{int(s.last_event_seq)}" data-currency="{h(lane.currency)}" '
            f'data-capital="{h(lane.capital_amount)}">'
            f'<td><a href="{h(self.url)}">{sid}</a><div class="muted small">{h(s.owner)}{tags}</div></td>'
            f'<td><span class="status status-{h(s.status)}" data-role="status">{h(s.status)}</span></td>'
            f'<td class="small">{h(s.strategy)}<div class="muted">{h(s.execution_policy.policy_id)} · '
            f'{h(" ".join(s.symbols))}</div></td><td>{spark}</td>'
            f'<td class="num {c["pnl_class"]}" data-role="pnl" data-value="{v(self.pnl)}">{h(c["pnl"])}</td>'
            f'<td class="num {c["return_class"]}" data-role="return" data-value="{v(self.return_pct)}">'
            f'{h(c["return"])}</td>'
            f'<td class="num" data-value="{v(self.max_dd_pct)}">{h(c["max_dd"])}</td>'
            f'<td class="num" data-value="{v(self.slippage.get("mean_bps"))}">{h(c["slippage"])}</td>'
            f'<td class="num" data-value="{v(self.risk[0])}" title="{h(c["risk_of"])}">{h(c["risk"])}</td>'
            f'<td class="num" data-value="{v(self.tracking_error)}">{h(c["te"])}</td>'
            f'<td class="num" data-value="{v(self.incidents)}">{h(c["incidents"])}</td>'
            f'<td class="health-cell small"><span data-role="lag" title="step lag">{h(c["lag"])}</span> '
            f'<span data-role="switch">{h(c["switch"])}</span> <span data-role="cooldown">{h(c["cooldown"])}</span> '
            f'<span data-role="fault">{h(c["fault"])}</span></td></tr>')

    @cached_property
    def cells(self) -> dict:
        """The row's figures as shown (units, separators), computed once: a hundred rows of
        template filters cost more than the queries behind them."""
        from mirror_app.templatetags.health import cooldown_badge, fault_badge, lag_ms, switch_badge

        def sign(x) -> str:
            return "flat" if fmt.is_missing(x) else "up" if x > 0 else "down" if x < 0 else "flat"

        slip, (risk, risk_of), h = self.slippage, self.risk, self.health
        return {
            "pnl": fmt.money(self.pnl, self.currency, signed=True), "pnl_class": sign(self.pnl),
            "return": fmt.pct(self.return_pct, places=3, signed=True), "return_class": sign(self.return_pct),
            "max_dd": fmt.pct(self.max_dd_pct),
            "slippage": f"{slip['mean_bps']:,.1f} / {slip['p90_bps']:,.1f} bps" if slip.get("count") else fmt.DASH,
            "risk": fmt.DASH if risk is None else fmt.pct(risk * 100, places=1), "risk_of": risk_of,
            "te": fmt.DASH if self.tracking_error is None else fmt.pct(self.tracking_error * 100),
            "incidents": fmt.DASH if self.incidents is None else f"{self.incidents:,d}",
            "lag": lag_ms(h["step_lag_ms"]), "switch": switch_badge(h), "cooldown": cooldown_badge(h),
            "fault": fault_badge(h),
        }


@functools.lru_cache(maxsize=4096)
def _spark_points(ys: tuple[float, ...]) -> str:
    """A sparkline changes once a minute; the overview is drawn far more often."""
    if len(ys) < 2:
        return ""
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    step = 120 / (len(ys) - 1)
    return " ".join(f"{i * step:.1f},{26 - (y - lo) / span * 24:.1f}" for i, y in enumerate(ys))


@dataclass
class LaneBlock:
    lane: object
    rows: list[SessionRow]


def overview(*, lane: str | None = None, status: str | None = None, owner: str | None = None,
             tag: str | None = None) -> list[LaneBlock]:
    """Every lane with its sessions (filtered), each with health and its latest summary
    (with the sparkline stored beside it: the last hour of whole minutes)."""
    lanes = list(selectors.lanes_overview().prefetch_related(None))  # the sessions come filtered, below
    sessions = list(selectors.session_list(lane=lane, status=status, owner=owner, tag=tag).prefetch_related(None)
                    .only(*OVERVIEW_FIELDS))
    health = selectors.session_health(sessions, client=dispatch.redis_client())
    ids = [s.session_id for s in sessions]
    summaries = summaries_latest(session_ids=ids, parts=OVERVIEW_PARTS)
    by_lane: dict[str, list[SessionRow]] = {}
    for s in sessions:
        by_lane.setdefault(s.lane.name, []).append(
            SessionRow(s, health[s.session_id], summaries.get(s.session_id),
                       (summaries.get(s.session_id) or {}).get("spark") or []))
    return [LaneBlock(ln, by_lane.get(ln.name, [])) for ln in lanes if lane in (None, ln.name)]


# --- drill-down -----------------------------------------------------------------------------

ANNOTATED = ["incident", "risk_breach", "kill_switch_change", "cooldown_state_change",
             "paper_session_state_change"]


def chart_data(session: PaperSession) -> dict:
    """Everything the drill-down's charts draw, JSON-safe, times in epoch seconds (UTC):
    equity, drawdown (%), gross/net exposure, marks per symbol (the price line), fills
    (markers), annotations (incidents, breaches, controls) and, when there is one, the
    backtest the comparison uses (its equity drawn over the session's)."""
    points = chart_series(session_id=session.session_id, max_points=CHART_POINTS)
    lots = (session.sizing or {}).get("lot_sizes") or {}
    sec = 1e9
    marks: dict[str, list] = {}
    for ts, *_, sample_marks in points:
        for sym, mid in sample_marks.items():
            if mid == mid and mid is not None:
                marks.setdefault(sym, []).append([ts // 1_000_000_000, round(mid, 6)])
    fills = [{"t": f["event_time"].timestamp(), "symbol": f["symbol"], "side": f["side"], "qty": f["quantity"],
              "price": f["price"], "label": f"{f['side'].upper()} {fmt.qty(f['quantity'], lots.get(f['symbol']))}"}
             for f in reversed(fills_for_session(session_id=session.session_id).order_by("-event_time", "-id")
                               .values("event_time", "symbol", "side", "quantity", "price")[:CHART_FILLS])]
    notes = event_payloads(session_id=session.session_id, event_types=ANNOTATED)
    annotations = [{"t": e["ts"] / sec, "kind": kind, "symbol": e.get("symbol"),
                    "text": fmt.describe_event(kind, e, lots=lots, currency=session.lane.currency)}
                   for kind, items in notes.items() for e in items]
    annotations.sort(key=lambda a: a["t"])
    # whole seconds (the sample grid), amounts to the cent: half the bytes of full floats
    equity = [[p[0] // 1_000_000_000, round(p[1], 2)] for p in points]
    book = selectors.session_book(session_id=session.session_id)  # the last recorded step, as the summary has it
    if book is not None and points and book[0] >= points[-1][0]:
        point = [book[0] // 1_000_000_000, round(book[1], 2)]
        equity[-1:] = [point] if equity[-1][0] == point[0] else [equity[-1], point]
    return {
        "currency": session.lane.currency,
        "equity": equity,
        "drawdown": [[p[0] // 1_000_000_000, round(-p[2] * 100, 4)] for p in points],
        "gross": [[p[0] // 1_000_000_000, round(p[3], 2)] for p in points],
        "net": [[p[0] // 1_000_000_000, round(p[4], 2)] for p in points],
        "marks": marks,
        "fills": fills,
        "annotations": annotations,
        "backtest": backtest_overlay(session),
        "lots": lots,
        "fills_capped": len(fills) == CHART_FILLS,
    }


def backtest_overlay(session: PaperSession) -> dict | None:
    """The backtest the comparison uses by default (the rolling shadow, else the newest
    shadow), its equity as ``[[t, equity], ...]``; None when there is none."""
    from ifns_paper.exceptions import NotFound
    from sessions_app.services.comparisons import backtest_equity

    try:
        bt = backtest_equity(session_id=session.session_id)
    except NotFound:
        return None
    return {"backtest_id": bt["backtest_id"], "kind": bt["kind"],
            "equity": [[p["ts"] / 1e9, p["equity"]] for p in bt["points"]]}


def event_rows(session: PaperSession, *, after: int | None = None, before: int | None = None,
               event_type: str | None = None, symbol: str | None = None, limit: int = EVENT_PAGE) -> list[dict]:
    """A page of the session's events as readable rows, newest first: those after ``after``
    (live: what came since the page's newest row) or before ``before`` (paging back)."""
    qs = events_for_session(session_id=session.session_id, event_type=event_type, symbol=symbol)
    if after is not None:
        qs = qs.filter(sequence__gt=after)
    if before is not None:
        qs = qs.filter(sequence__lt=before)
    lots = (session.sizing or {}).get("lot_sizes") or {}
    rows = []
    for e in qs.order_by("-sequence")[:limit]:
        rows.append({"sequence": e.sequence, "type": e.event_type, "time": e.event_time,
                     "symbol": e.payload.get("symbol", ""), "text": fmt.describe_event(e.event_type, e.payload, lots=lots,
                                                                     currency=session.lane.currency),
                     "payload": e.payload})
    return rows


def tables(session: PaperSession) -> dict:
    """Positions, working orders and the latest fills, ready to show."""
    lots = (session.sizing or {}).get("lot_sizes") or {}
    positions = [{**p, "qty_text": fmt.qty(p["quantity"], lots.get(p["symbol"]))}
                 for p in positions_for_session(session_id=session.session_id).values(
                     "symbol", "quantity", "avg_cost", "realized", "unrealized", "fees", "mark")
                 if p["quantity"] or p["realized"]]
    working = [{**o, "qty_text": fmt.qty(o["quantity"], lots.get(o["symbol"])),
                "filled_text": fmt.qty(o["filled_quantity"], lots.get(o["symbol"]))}
               for o in orders_for_session(session_id=session.session_id)
               .filter(status__in=["new", "accepted", "partially_filled"])
               .order_by("-id").values("client_order_id", "symbol", "side", "quantity", "filled_quantity",
                                       "order_type", "limit_price", "status", "route_id")[:50]]
    fills = [{**f, "qty_text": fmt.qty(f["quantity"], lots.get(f["symbol"]))}
             for f in fills_for_session(session_id=session.session_id).order_by("-id").values(
                 "event_time", "symbol", "side", "quantity", "price", "slippage_bps", "fee", "liquidity",
                 "route_id")[:50]]
    return {"positions": positions, "working": working, "fills": fills}


def drilldown(session: PaperSession, *, events: int = EVENT_PAGE) -> dict:
    """Everything the session drill-down (and its tearsheet) shows, but the controls."""
    from ifns_paper.engine.lifecycle import allowed_actions
    from ifns_paper.exceptions import ApplicationError
    from sessions_app.services.comparisons import comparison_stored

    summary = summary_latest(session_id=session.session_id)
    try:
        comparison = comparison_stored(session_id=session.session_id)
    except ApplicationError:
        comparison = None  # no backtest yet: the page says how to make one
    data = summary.data if summary else None
    return {
        "session": session,
        "health": selectors.session_health([session], client=dispatch.redis_client())[session.session_id],
        "summary": data,
        "summary_at": summary.created_at if summary else None,
        "risk": risk_usage(data),
        "charts": chart_data(session),
        "tables": tables(session),
        "events": event_rows(session, limit=events),
        "event_types": [t.value for t in EventType],
        "comparison": comparison,
        "changes": selectors.changelog_for(target_type="paper_session", target_id=session.session_id),
        "allowed_actions": [a.value for a in allowed_actions(session.status)],
    }


def tearsheet_html(session: PaperSession, *, now=None) -> str:
    """The drill-down as one HTML document that needs nothing else: its CSS and the charting
    code (vendored, with their licences' notices) inlined, the data embedded, no socket."""
    from django.contrib.staticfiles import finders
    from django.template.loader import render_to_string
    from django.utils import timezone

    def static(path: str) -> str:
        found = finders.find(path)
        if not found:
            raise FileNotFoundError(f"static file {path} not found")
        with open(found, encoding="utf-8") as fh:
            return fh.read()

    return render_to_string("mirror/tearsheet.html", {
        **drilldown(session, events=200),
        "generated_at": now or timezone.now(),
        "css": static("css/ifns.css") + static("vendor/uplot-1.6.32/uPlot.min.css"),
        "scripts": [static("vendor/lightweight-charts-5.2.1/lightweight-charts.standalone.production.js"),
                    static("vendor/uplot-1.6.32/uPlot.iife.min.js"), static("js/session.js")],
    })


# --- lane forms ------------------------------------------------------------------------------

LANE_THRESHOLDS = ("min_sharpe", "min_hit_rate", "max_drawdown_pct", "max_mean_slippage_bps", "max_tracking_error_bps",
              "min_psr", "max_incidents", "max_slippage_vs_backtest_bps", "min_reconciliation_correlation",
              "max_reconciliation_dtw")
# the lane's automatic cooldown rules: form field → label
COOLDOWN_RULES = {"cooldown_max_breaches": "cooldown after breaches", "cooldown_window_s": "cooldown window (s)",
                  "cooldown_duration_s": "cooldown duration (s)", "cooldown_max_loss": "cooldown after loss"}


def lane_forms(lane, thresholds: dict, envelope_refused: dict | None, rules_refused: dict | None) -> dict:
    """The two forms' rows ``(input name, label, value shown, problems)``: the current values,
    or after a refused change what was typed with every field's problem."""
    def rows(fields, refused):
        typed, problems = (refused or {}).get("values"), (refused or {}).get("fields", {})
        return [(name, label, typed.get(name, "") if typed else ("" if current is None else current),
                 [m for key, msgs in problems.items() if key == error_key or key.startswith(error_key + ".")
                  for m in msgs])
                for name, label, current, error_key in fields]

    p = lane.policy
    envelope = [(f, f, getattr(lane.risk_envelope, f), f) for f in ENVELOPE_FIELDS]
    rules = [(f, f, getattr(p, f), f"promotion.{f}") for f in ("promotes_to", "min_days", "min_trades", "max_breaches")]
    rules += [(f"t_{t}", t, thresholds.get(t), f"promotion.thresholds.{t}") for t in LANE_THRESHOLDS]
    rules += [(f, f, ", ".join(getattr(p, f)), f) for f in ("allowed_strategies", "allowed_models")]
    rules += [(f, label, getattr(p, f), f"cooldown.{f.removeprefix('cooldown_')}") for f, label in COOLDOWN_RULES.items()]
    known = {key for *_, key in envelope + rules}
    return {"envelope_rows": rows(envelope, envelope_refused), "rules_rows": rows(rules, rules_refused),
            "form_problems": [f"{k}: {'; '.join(v)}" for refused in (envelope_refused, rules_refused) if refused
                              for k, v in refused["fields"].items()
                              if not any(k == key or k.startswith(key + ".") for key in known)]}
