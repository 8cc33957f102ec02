"""REST endpoints to run the desk: a lane (detail; its envelope and policy, admins only,
validated like ``paper.yaml``), sessions (create from a definition, clone, tag), a
session's orders, fills and positions, the change log, and system health. Thin: parse,
call a service or selector, render."""

from __future__ import annotations

import json

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_app.selectors import fills_for_session, orders_for_session, positions_for_session
from ifns_paper.api import StrictInput
from ifns_paper.api_schema import LIST_OF_OBJECTS, documented
from ifns_paper.exceptions import NotFound
from ifns_paper.paging import keyset_page
from ifns_paper.roles import Capability
from sessions_app import dispatch, selectors
from sessions_app.api import LaneOutput, SessionOutput, _health_of
from sessions_app.api import SessionListApi as SessionListApiBase
from sessions_app.idempotency import idempotent
from sessions_app.services.config import session_register_text
from sessions_app.services.controls import cooldown_request
from sessions_app.services.lanes import lane_policy_patch, risk_envelope_patch
from sessions_app.services.promotions import TAGS, session_clone, session_tag
from telemetry_app.selectors import feed_health_latest

MAX_PAGE = 1000


def _lane(lane: str):
    row = selectors.lanes_overview().filter(name=lane).first()
    if row is None:
        raise NotFound(f"no lane {lane!r}")
    return row


def _session_out(session_id: str) -> dict:
    session = selectors.session_get(session_id=session_id)
    return SessionOutput(session, context={"health": _health_of([session])}).data


class LaneDetailApi(APIView):
    """GET: one lane with its capital, risk envelope, policy (promotion rules, cooldown) and
    session counts."""

    @documented(operation_id="lanes_detail", response=LaneOutput, errors=(404,))
    def get(self, request, lane: str):
        return Response(LaneOutput(_lane(lane)).data)


class LaneChangeInput(StrictInput):
    values = serializers.DictField(help_text="the fields to change, by name; the rest stay")
    reason = serializers.CharField(max_length=2000)


class _LaneChangeApi(APIView):
    """PATCH (admin) ``{"values": {field: value}, "reason"}`` through ``change`` (a
    ``services.lanes`` patch: validated whole like ``paper.yaml``, logged before and after)."""

    capabilities = {"PATCH": Capability.ADMINISTER}
    change = None

    def _patch(self, request, lane: str):
        data = LaneChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        type(self).change(lane=lane, changes=data.validated_data["values"], actor=f"api:{request.user.username}",
                          reason=data.validated_data["reason"])
        return Response(LaneOutput(_lane(lane)).data)


class LaneEnvelopeApi(_LaneChangeApi):
    """PATCH (admin): change fields of the lane's risk envelope (400 naming each bad field)."""

    change = risk_envelope_patch

    @idempotent
    @documented(operation_id="lanes_envelope_update", request=LaneChangeInput, response=LaneOutput,
                errors=(400, 404), idempotent=True)
    def patch(self, request, lane: str):
        return self._patch(request, lane)


class LanePolicyApi(_LaneChangeApi):
    """PATCH (admin): change fields of the lane's policy (allowed strategies and models,
    promotion rules and thresholds, cooldown)."""

    change = lane_policy_patch

    @idempotent
    @documented(operation_id="lanes_policy_update", request=LaneChangeInput, response=LaneOutput,
                errors=(400, 404), idempotent=True)
    def patch(self, request, lane: str):
        return self._patch(request, lane)


class SessionCreateInput(StrictInput):
    definition = serializers.JSONField(help_text="a session definition: YAML or JSON text, or the object itself "
                                                 "(the fields of config/paper_trading/session_<name>.yaml)")
    reason = serializers.CharField(max_length=2000, required=False, default="")

    def validate_definition(self, value):
        if isinstance(value, dict):
            return json.dumps(value, indent=2)  # one field a line: problems name their line
        if isinstance(value, str) and value.strip():
            return value
        raise serializers.ValidationError("give the definition as YAML or JSON text, or as an object")


class SessionCreateApi(APIView):
    """POST (operator) ``{"definition", "reason"}``: register a new ``scheduled`` session,
    validated exactly like ``paper_session register`` (400: ``problems`` as ``request
    body:LINE: path: message`` and ``fields`` by path; 409 if the id exists)."""

    @idempotent
    @documented(operation_id="sessions_create", request=SessionCreateInput, response=SessionOutput, status=201,
                errors=(400, 409), idempotent=True)
    def post(self, request):
        data = SessionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        session = session_register_text(text=data.validated_data["definition"], actor=f"api:{request.user.username}",
                                        reason=data.validated_data["reason"])
        return Response(_session_out(session.session_id), status=status.HTTP_201_CREATED)


class SessionCloneInput(StrictInput):
    new_id = serializers.SlugField(max_length=64)
    lane = serializers.SlugField(max_length=64, required=False, allow_null=True, default=None,
                                 help_text="default: the source's lane")
    reason = serializers.CharField(max_length=2000)


class SessionCloneApi(APIView):
    """POST (operator) ``{"new_id", "lane", "reason"}``: a new ``scheduled`` session with this
    one's definition, in the same or another lane, its provenance recorded."""

    @idempotent
    @documented(operation_id="sessions_clone", request=SessionCloneInput, response=SessionOutput, status=201,
                errors=(400, 404, 409), idempotent=True)
    def post(self, request, session_id: str):
        data = SessionCloneInput(data=request.data)
        data.is_valid(raise_exception=True)
        clone = session_clone(source_id=session_id, new_id=data.validated_data["new_id"],
                              lane=data.validated_data["lane"], actor=f"api:{request.user.username}",
                              reason=data.validated_data["reason"])
        return Response(_session_out(clone.session_id), status=status.HTTP_201_CREATED)


class SessionTagInput(StrictInput):
    tag = serializers.ChoiceField(choices=list(TAGS))
    remove = serializers.BooleanField(required=False, default=False)
    reason = serializers.CharField(max_length=2000)


class SessionTagApi(APIView):
    """POST (operator) ``{"tag": "promotion_evidence"|"ignore", "remove", "reason"}``: tag or
    untag the session as evidence for promotions, logged."""

    @idempotent
    @documented(operation_id="sessions_tag", request=SessionTagInput, response=SessionOutput,
                errors=(400, 404, 409), idempotent=True)
    def post(self, request, session_id: str):
        data = SessionTagInput(data=request.data)
        data.is_valid(raise_exception=True)
        session_tag(session_id=session_id, actor=f"api:{request.user.username}", **data.validated_data)
        return Response(_session_out(session_id))


class CooldownInput(StrictInput):
    class Meta:
        ref_name = "SessionCooldownChange"

    action = serializers.ChoiceField(choices=["set", "clear"],
                                     help_text="set: no new risk for duration_s seconds; clear: end the cooldown now")
    duration_s = serializers.FloatField(required=False, min_value=0, help_text="seconds; only with set")
    reason = serializers.CharField(max_length=2000, help_text="goes to the change log")


class CooldownOutput(serializers.Serializer):
    active = serializers.BooleanField()
    until = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    requested = serializers.JSONField(allow_null=True, help_text="a set/clear the next step will apply")


class SessionCooldownApi(APIView):
    """GET: the session's cooldown as its engine last reported it, and any operator request
    waiting for the next step. POST (operator) ``{"action": "set"|"clear", "duration_s",
    "reason"}``: start a cooldown (no new risk; risk-reducing orders pass) or end it; the
    session's next step applies it (a running session is stepped at once) and its events
    show a ``cooldown_state_change`` naming you. 409 for a finished session, or a clear with
    no cooldown in force."""

    @documented(operation_id="sessions_cooldown_get", response=CooldownOutput, errors=(404,))
    def get(self, request, session_id: str):
        _known(session_id)
        return Response(_cooldown_out(session_id))

    @idempotent
    @documented(operation_id="sessions_cooldown_set", request=CooldownInput, response=CooldownOutput,
                errors=(400, 404, 409), idempotent=True)
    def post(self, request, session_id: str):
        data = CooldownInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        cooldown_request(session_id=session_id, active=v["action"] == "set", duration_s=v.get("duration_s"),
                         actor=f"api:{request.user.username}", reason=v["reason"])
        return Response(_cooldown_out(session_id))


def _cooldown_out(session_id: str) -> dict:
    """The session's cooldown as its health shows it (``selectors.session_health``)."""
    return _health_of([selectors.session_get(session_id=session_id)])[session_id]["cooldown"]


def _known(session_id: str) -> None:
    if selectors.session_get(session_id=session_id) is None:
        raise NotFound(f"no paper session {session_id!r}")


class PageQuery(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, max_value=2**62, required=False, default=0,
                                     help_text="the last id seen (keyset paging)")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, default=MAX_PAGE)


def _page(qs, query: PageQuery, fields: tuple[str, ...]) -> dict:
    return keyset_page(qs, after=query.validated_data["after"], limit=query.validated_data["limit"], fields=fields)


PAGED = {"type": "object", "properties": {"items": LIST_OF_OBJECTS, "next_after": {"type": "integer"}},
         "required": ["items", "next_after"]}


class SessionOrdersApi(APIView):
    """GET ``?after=<id>&limit=``: the session's paper orders (final state), by id."""

    fields = ("client_order_id", "decision_id", "symbol", "side", "quantity", "order_type", "time_in_force",
              "limit_price", "stop_price", "route_id", "policy_id", "status", "filled_quantity", "average_price",
              "reason", "submitted_at", "updated_at")

    @documented(operation_id="sessions_orders", query=PageQuery, response=PAGED, errors=(400, 404))
    def get(self, request, session_id: str):
        query = PageQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        _known(session_id)
        return Response(_page(orders_for_session(session_id=session_id), query, self.fields))


class SessionFillsApi(APIView):
    """GET ``?after=<id>&limit=``: the session's simulated fills (price, arrival mid, slippage
    in bp, fee in account currency, liquidity, route), by id."""

    fields = ("fill_id", "order__client_order_id", "symbol", "side", "quantity", "price", "arrival_mid",
              "slippage_bps", "fee", "liquidity", "route_id", "event_time")

    @documented(operation_id="sessions_fills", query=PageQuery, response=PAGED, errors=(400, 404))
    def get(self, request, session_id: str):
        query = PageQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        _known(session_id)
        return Response(_page(fills_for_session(session_id=session_id), query, self.fields))


class SessionPositionsApi(APIView):
    """GET: the session's paper positions (quantity, average cost, realized and unrealized
    P&L and fees in account currency, last mark)."""

    @documented(operation_id="sessions_positions", response=LIST_OF_OBJECTS, errors=(404,))
    def get(self, request, session_id: str):
        _known(session_id)
        rows = positions_for_session(session_id=session_id).values(
            "symbol", "quantity", "avg_cost", "realized", "unrealized", "fees", "mark", "updated_at")
        return Response([{**r, "updated_at": r["updated_at"].isoformat()} for r in rows])


class ChangeLogApi(APIView):
    """GET ``?target_type=&target_id=&actor=&action=&after=<id>&limit=``: the change log (who,
    what, why, before, after), oldest first, keyset-paged by id."""

    class Query(PageQuery):
        target_type = serializers.CharField(required=False, max_length=64)
        target_id = serializers.CharField(required=False, max_length=200)
        actor = serializers.CharField(required=False, max_length=150)
        action = serializers.CharField(required=False, max_length=64)

    @documented(operation_id="changelog_list", query=Query, response=PAGED, errors=(400,))
    def get(self, request):
        query = self.Query(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        filters = {k: query.validated_data[k] for k in ("target_type", "target_id", "actor", "action")
                   if k in query.validated_data}
        return Response(_page(selectors.changelog_entries(**filters), query,
                              ("created_at", "actor", "action", "target_type", "target_id", "reason", "before",
                               "after")))


class SystemHealthApi(APIView):
    """GET: feeds (latest health report each), live sessions' step health (lag, steps per
    minute, last fault, kill switch, cooldown), and the workers and queues (Celery ping
    replies; queued tasks per queue)."""

    @documented(operation_id="system_health")
    def get(self, request):
        from telemetry_app.feed_api import FeedHealthOutput

        live = list(selectors.session_list().filter(status__in=["running", "paused", "faulted"]))
        return Response({"feeds": FeedHealthOutput(feed_health_latest(), many=True).data,
                         "sessions": _health_of(live),
                         "workers": dispatch.workers_status()})


class SessionsApi(SessionListApiBase, SessionCreateApi):
    """GET: the sessions (filters below); POST (operator): register a new one."""
