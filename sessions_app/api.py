"""REST endpoints for lanes and sessions (automation). Thin: parse, call, render.

Who may call what: ``ifns_paper.permissions.HasCapability`` (reads need the viewer role, writes the
operator role unless a view's ``capabilities`` says otherwise)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.api import StrictInput
from ifns_paper.api_schema import LIST_OF_OBJECTS, documented
from ifns_paper.engine.controls import SwitchState
from ifns_paper.engine.lifecycle import OPERATOR_ACTIONS, SessionStatus, allowed_actions
from ifns_paper.exceptions import NotFound
from sessions_app import dispatch, selectors, services
from sessions_app.idempotency import idempotent
from sessions_app.registry import session_links
from telemetry_app.choices import EventType
from telemetry_app.selectors import (
    events_for_session,
    series_for_session,
    summary_latest,
)

MAX_EVENTS_PAGE = 1000


class LaneOutput(serializers.Serializer):
    name = serializers.CharField()
    env = serializers.CharField()
    description = serializers.CharField()
    capital_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    currency = serializers.CharField()
    telemetry_tags = serializers.JSONField()
    risk_envelope = serializers.SerializerMethodField()
    policy = serializers.SerializerMethodField()
    n_sessions = serializers.IntegerField()
    n_running = serializers.IntegerField()
    n_faulted = serializers.IntegerField()

    def get_risk_envelope(self, lane) -> dict:
        e = lane.risk_envelope
        return {
            "max_order_notional": str(e.max_order_notional),
            "max_position_notional_per_symbol": str(e.max_position_notional_per_symbol),
            "max_gross_exposure": str(e.max_gross_exposure),
            "max_net_exposure": str(e.max_net_exposure),
            "max_daily_loss": str(e.max_daily_loss),
            "max_drawdown_pct": e.max_drawdown_pct,
            "max_orders_per_minute": e.max_orders_per_minute,
            "price_collar_bps": e.price_collar_bps,
        }

    def get_policy(self, lane) -> dict:
        p = lane.policy
        return {
            "allowed_strategies": p.allowed_strategies,
            "allowed_models": p.allowed_models,
            "promotes_to": p.promotes_to,
            "min_days": p.min_days,
            "min_trades": p.min_trades,
            "max_breaches": p.max_breaches,
            "thresholds": p.thresholds,
            "cooldown": {
                "max_breaches": p.cooldown_max_breaches,
                "window_s": p.cooldown_window_s,
                "duration_s": p.cooldown_duration_s,
                "max_loss": None if p.cooldown_max_loss is None else str(p.cooldown_max_loss),
            },
        }


class SessionOutput(serializers.Serializer):
    session_id = serializers.CharField()
    env = serializers.CharField()
    lane = serializers.CharField(source="lane.name")
    status = serializers.CharField()
    owner = serializers.CharField()
    objective = serializers.CharField()
    strategy = serializers.CharField(source="strategy.__str__")
    models = serializers.SerializerMethodField()
    portfolio_id = serializers.CharField()
    execution_policy = serializers.CharField(source="execution_policy.policy_id")
    feed = serializers.CharField()
    symbols = serializers.JSONField()
    start_at = serializers.DateTimeField(allow_null=True)
    initial_portfolio = serializers.JSONField(allow_null=True)
    end_duration_s = serializers.IntegerField(allow_null=True)
    end_target = serializers.JSONField(allow_null=True)
    benchmark = serializers.CharField()
    tags = serializers.JSONField()
    started_at = serializers.DateTimeField(allow_null=True)
    paused_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    last_event_seq = serializers.IntegerField()
    last_fault = serializers.CharField()
    last_fault_at = serializers.DateTimeField(allow_null=True)
    allowed_actions = serializers.SerializerMethodField()
    health = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_models(self, session) -> list[dict]:
        return [{"model": str(link.entry), "weight": link.weight} for link in session.model_links.all()]

    def get_allowed_actions(self, session) -> list[str]:
        return [a.value for a in allowed_actions(session.status)]

    def get_health(self, session) -> dict | None:
        """Step lag, last step, steps per minute, last fault, kill switch and cooldown in force
        (``selectors.session_health``); computed by the view for all listed sessions at once."""
        return self.context.get("health", {}).get(session.session_id)

    def get_links(self, session) -> dict:
        return session_links(session.session_id)


def _when(value) -> str | None:
    """A time as DRF's DateTimeField renders it (ISO 8601, UTC as ``Z``)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def session_records(sessions, health: dict, models: dict[int, list[dict]] | None = None) -> list[dict]:
    """``SessionOutput`` of many sessions, built directly: the same fields and values (a test
    holds the two equal), at a tenth of the cost — DRF's field machinery took most of a
    200-session list's time (bench.api_bench)."""
    return [{
        "session_id": s.session_id, "env": s.env, "lane": s.lane.name, "status": s.status, "owner": s.owner,
        "objective": s.objective, "strategy": str(s.strategy),
        "models": models[s.pk] if models is not None else
        [{"model": str(link.entry), "weight": link.weight} for link in s.model_links.all()],
        "portfolio_id": s.portfolio_id, "execution_policy": s.execution_policy.policy_id, "feed": s.feed,
        "symbols": s.symbols, "start_at": _when(s.start_at), "initial_portfolio": s.initial_portfolio,
        "end_duration_s": s.end_duration_s, "end_target": s.end_target, "benchmark": s.benchmark, "tags": s.tags,
        "started_at": _when(s.started_at), "paused_at": _when(s.paused_at), "ended_at": _when(s.ended_at),
        "last_event_seq": s.last_event_seq, "last_fault": s.last_fault, "last_fault_at": _when(s.last_fault_at),
        "allowed_actions": [a.value for a in allowed_actions(s.status)], "health": health.get(s.session_id),
        "links": session_links(s.session_id),
    } for s in sessions]


class KillSwitchOutput(serializers.Serializer):
    scope = serializers.CharField(help_text="global, lane:<name> or session:<id>")
    state = serializers.ChoiceField(choices=[s.value for s in SwitchState],
                                    help_text="its own state (active when never set)")
    effective = serializers.ChoiceField(choices=[s.value for s in SwitchState],
                                        help_text="the strictest of global, the lane's and its own")
    effective_scope = serializers.CharField(help_text="where the effective state comes from")
    actor = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class KillSwitchSetOutput(serializers.Serializer):
    scope = serializers.CharField()
    state = serializers.ChoiceField(choices=[s.value for s in SwitchState])
    actor = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)


class EventOutput(serializers.Serializer):
    sequence = serializers.IntegerField()
    env = serializers.CharField()
    lane = serializers.CharField()
    session_id = serializers.CharField()
    type = serializers.CharField()
    event_time = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField(allow_null=True)
    payload = serializers.JSONField()


class EventsOutput(serializers.Serializer):
    session_id = serializers.CharField()
    env = serializers.CharField()
    events = EventOutput(many=True)
    next_after = serializers.IntegerField(help_text="pass as ?after= for the next page")


def _health_of(sessions) -> dict:
    return selectors.session_health(list(sessions), client=dispatch.redis_client())


class LaneListApi(APIView):
    """GET: every lane with its capital, risk envelope, policy (promotion rules, cooldown) and
    session counts."""

    @documented(operation_id="lanes_list", response=LaneOutput(many=True))
    def get(self, request):
        return Response(LaneOutput(selectors.lanes_overview(), many=True).data)


class SessionListApi(APIView):
    """GET ``?lane=&status=&owner=&tag=&strategy=<id>[@<version>]&q=<text>``: the sessions
    (all filters optional, combined), with health and links. An unknown lane or strategy is a
    400 naming it."""

    class Query(serializers.Serializer):
        lane = serializers.SlugField(required=False, max_length=64)
        status = serializers.ChoiceField(choices=[s.value for s in SessionStatus], required=False)
        owner = serializers.CharField(required=False, max_length=100)
        tag = serializers.SlugField(required=False, max_length=64)
        strategy = serializers.RegexField(r"^[\w.\-]+(@[\w.\-]+)?$", required=False, max_length=200,
                                          help_text="registry id, optionally @version")
        q = serializers.CharField(required=False, max_length=200, help_text="text in id, owner or objective")

        def validate_lane(self, value: str) -> str:
            lanes = selectors.lane_names()
            if value not in lanes:
                raise serializers.ValidationError(f"no lane {value!r} (lanes: {', '.join(lanes)})")
            return value

        def validate_strategy(self, value: str) -> str:
            if not selectors.strategy_exists(value):
                raise serializers.ValidationError(f"no strategy {value!r} in the registry")
            return value

    @documented(operation_id="sessions_list", query=Query, response=SessionOutput(many=True), errors=(400,))
    def get(self, request):
        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        p = query.validated_data
        sessions = list(selectors.session_list_rows(lane=p.get("lane"), status=p.get("status"), owner=p.get("owner"),
                                                    tag=p.get("tag"), strategy=p.get("strategy"), text=p.get("q")))
        models = selectors.session_models([s.pk for s in sessions])
        return Response(session_records(sessions, _health_of(sessions), models))


class SessionDetailApi(APIView):
    """GET: one session, with health (step lag, kill switch, cooldown) and registry links."""

    @documented(operation_id="sessions_detail", response=SessionOutput, errors=(404,))
    def get(self, request, session_id: str):
        session = selectors.session_get(session_id=session_id)
        if session is None:
            raise NotFound(f"no paper session {session_id!r}")
        return Response(SessionOutput(session, context={"health": _health_of([session])}).data)


class SessionActionApi(APIView):
    """POST ``{"action": "start|pause|resume|stop|abort", "reason": "..."}``."""

    class Input(StrictInput):
        class Meta:
            ref_name = "SessionAction"

        action = serializers.ChoiceField(choices=[a.value for a in OPERATOR_ACTIONS])
        reason = serializers.CharField(allow_blank=True, max_length=2000, required=False, default="")

    @idempotent
    @documented(operation_id="sessions_action", idempotent=True, request=Input, response=SessionOutput, errors=(400, 404, 409))
    def post(self, request, session_id: str):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_transition(
            session_id=session_id,
            action=data.validated_data["action"],
            actor=f"api:{request.user.username}",
            reason=data.validated_data["reason"],
        )
        session = selectors.session_get(session_id=session_id)
        return Response(SessionOutput(session, context={"health": _health_of([session])}).data)


class KillSwitchApi(APIView):
    """GET: every scope (global, each lane, each live session) with its own and its effective
    state (the strictest in force; ``active`` when never set). POST ``{"scope", "state",
    "reason"}`` (operators)."""

    class Input(StrictInput):
        class Meta:
            ref_name = "KillSwitchSet"

        scope = serializers.CharField(max_length=120)
        state = serializers.ChoiceField(choices=[s.value for s in SwitchState])
        reason = serializers.CharField(allow_blank=True, max_length=2000, required=False, default="")

    @documented(operation_id="killswitches_list", response=KillSwitchOutput(many=True))
    def get(self, request):
        return Response([v.as_dict() for v in selectors.kill_switch_states()])

    @idempotent
    @documented(operation_id="killswitches_set", idempotent=True, request=Input, response=KillSwitchSetOutput, errors=(400, 404, 409))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        switch = services.kill_switch_set(scope=data.validated_data["scope"], state=data.validated_data["state"],
                                          actor=f"api:{request.user.username}",
                                          reason=data.validated_data["reason"])
        return Response({"scope": switch.scope, "state": switch.state, "actor": switch.actor,
                         "reason": switch.reason})


class SessionEventsApi(APIView):
    """GET ``?after=<sequence>&until=<sequence>&type=&symbol=&since=&before=&limit=``: a
    session's telemetry, oldest first, keyset-paged by sequence (``next_after`` goes in the
    next request's ``after``: every page costs the same however deep). ``symbol`` matches
    the payload's symbol; ``since`` / ``before`` bound the event time (ISO 8601 with a time
    zone). A client that missed pushed events backfills with ``after``."""

    class Query(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, max_value=2**62, required=False, default=0)
        until = serializers.IntegerField(min_value=0, max_value=2**62, required=False,
                                         help_text="the last sequence wanted (inclusive)")
        type = serializers.ChoiceField(choices=EventType.choices, required=False)
        symbol = serializers.RegexField(r"^[A-Za-z0-9._:/-]{1,32}$", required=False)
        since = serializers.DateTimeField(required=False, help_text="event time at or after")
        before = serializers.DateTimeField(required=False, help_text="event time before")
        limit = serializers.IntegerField(min_value=1, max_value=MAX_EVENTS_PAGE, required=False,
                                         default=MAX_EVENTS_PAGE)

    @documented(operation_id="sessions_events", query=Query, response=EventsOutput, errors=(400, 404))
    def get(self, request, session_id: str):
        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        if selectors.session_get(session_id=session_id) is None:
            raise NotFound(f"no paper session {session_id!r}")
        p = query.validated_data
        events = list(events_for_session(session_id=session_id, after=p["after"], event_type=p.get("type"),
                                         until=p.get("until"), symbol=p.get("symbol"), since=p.get("since"),
                                         before=p.get("before"))[: p["limit"]])
        return Response({"session_id": session_id, "env": "paper",
                         "events": [e.as_record(session_id) for e in events],
                         "next_after": events[-1].sequence if events else p["after"]})


class SessionSeriesApi(APIView):
    """GET ``?from=<ISO time or epoch ns>&to=...&every=<seconds>``: the session's equity and
    exposure samples (equity, cash, realized, unrealized, fees, gross, net, drawdown,
    positions; account currency, drawdown a fraction), oldest first; ``every`` keeps the last
    sample of each bucket."""

    class Query(serializers.Serializer):
        from_ = serializers.CharField(required=False)
        to = serializers.CharField(required=False)
        every = serializers.FloatField(required=False, min_value=1.0, max_value=10 * 366 * 86400.0)

        def get_fields(self):
            fields = super().get_fields()
            fields["from"] = fields.pop("from_")
            return fields

        @staticmethod
        def _ns(value: str, name: str) -> int:
            from datetime import datetime

            if value.lstrip("-").isdigit():
                if not len(value) <= 20 or not -(2**63) <= int(value) < 2**63:
                    raise serializers.ValidationError({name: "epoch ns out of range"})
                return int(value)
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise serializers.ValidationError({name: f"expected an ISO 8601 time or epoch ns, got {value!r}"}) \
                    from None
            if moment.tzinfo is None:
                raise serializers.ValidationError({name: "a time zone is needed (e.g. 2026-11-29T12:00:00Z)"})
            return int(moment.timestamp() * 1e9)

        def validate(self, data):
            return {"from_ns": self._ns(data["from"], "from") if "from" in data else None,
                    "to_ns": self._ns(data["to"], "to") if "to" in data else None,
                    "every_ns": int(data["every"] * 1e9) if "every" in data else None}

    @documented(operation_id="sessions_series", query=Query, errors=(400, 404))
    def get(self, request, session_id: str):
        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        if selectors.session_get(session_id=session_id) is None:
            raise NotFound(f"no paper session {session_id!r}")
        points = series_for_session(session_id=session_id, **query.validated_data)
        return Response({"session_id": session_id, "env": "paper", "units": {
            "money": "account currency", "drawdown": "fraction of the running peak equity",
            "ts_ns": "market-data time, epoch ns"}, "points": points})


class SessionSummaryApi(APIView):
    """GET: the session's newest summary (spec §6.2: P&L, returns, trades, execution,
    benchmark, risk usage, incidents; conventions inside), refreshed once a minute while it
    runs and final once it ended. 404 before its first summary."""

    @documented(operation_id="sessions_summary", errors=(404,))
    def get(self, request, session_id: str):
        if selectors.session_get(session_id=session_id) is None:
            raise NotFound(f"no paper session {session_id!r}")
        summary = summary_latest(session_id=session_id)
        if summary is None:
            raise NotFound(f"no summary of {session_id!r} yet: it is written once a minute while the session runs")
        return Response(summary.data)


class SessionComparisonApi(APIView):
    """GET ``?backtest=<id>``: the session against a backtest (default: its rolling shadow
    backtest) — curves (correlation, tracking error, annualised DTW, equity deviation),
    execution deviations, decision agreement and the first divergence, flags — as stored
    (``computed_at``; a rolling shadow's is recomputed every minute), or computed now with
    ``?refresh=true`` or when none is stored. 404 without a session or a backtest."""

    class Query(serializers.Serializer):
        backtest = serializers.SlugField(required=False, max_length=120)
        refresh = serializers.BooleanField(required=False, default=False)

    @documented(operation_id="sessions_comparison", query=Query, errors=(400, 404))
    def get(self, request, session_id: str):
        from sessions_app.services.comparisons import comparison_refresh, comparison_stored

        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        fetch = comparison_refresh if query.validated_data["refresh"] else comparison_stored
        return Response(fetch(session_id=session_id, backtest_id=query.validated_data.get("backtest")))


class SessionSelEvaluationsApi(APIView):
    """GET: the session's SEL evaluations (spec §9), newest first: recommendation, each
    criterion's value, threshold and pass/fail, the evidence and its hash."""

    @documented(operation_id="sessions_sel_evaluations", errors=(404,))
    def get(self, request, session_id: str):
        from sessions_app.models import SelEvaluation

        if selectors.session_get(session_id=session_id) is None:
            raise NotFound(f"no paper session {session_id!r}")
        rows = SelEvaluation.objects.filter(session__session_id=session_id).select_related("session")
        return Response({"session_id": session_id, "evaluations": [r.as_record() for r in rows]})


class SessionIncidentsApi(APIView):
    """GET: the session's incidents (``incident`` events: faults, and the kinds the metrics
    raise), oldest first, each with its sequence number to find it in the telemetry."""

    @documented(operation_id="sessions_incidents", errors=(404,))
    def get(self, request, session_id: str):
        if selectors.session_get(session_id=session_id) is None:
            raise NotFound(f"no paper session {session_id!r}")
        events = events_for_session(session_id=session_id, event_type=EventType.INCIDENT)
        return Response({"session_id": session_id, "env": "paper",
                         "incidents": [e.as_record(session_id) for e in events]})


class LaneSummaryApi(APIView):
    """GET ``?hours=<n>``: the lane's sessions aggregated from their newest summaries (written
    within the last ``n`` hours; all when omitted): P&L, trades, hit rate, slippage, breaches,
    incidents, and each session's key figures."""

    class Query(serializers.Serializer):
        hours = serializers.FloatField(required=False, min_value=0.01, max_value=24 * 366 * 10)

    @documented(operation_id="lanes_summary", query=Query, errors=(400, 404))
    def get(self, request, lane: str):
        from datetime import timedelta

        from django.utils import timezone

        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        hours = query.validated_data.get("hours")
        since = timezone.now() - timedelta(hours=hours) if hours else None
        evidence = selectors.lane_evidence(lane=lane, since=since)
        if evidence is None:
            raise NotFound(f"no lane {lane!r}")
        return Response(evidence)


class PromotionFunnelApi(APIView):
    """GET: per lane, the strategies and models it allows (with their registry status), its
    sessions by status, and each session's progress against the lane's promotion rules."""

    @documented(operation_id="promotion_funnel", response=LIST_OF_OBJECTS)
    def get(self, request):
        return Response(selectors.promotion_funnel())
