"""REST endpoints for governance: promotion requests (request → SEL evaluation → four-eyes
decision → applied), their history, and on-demand SEL evaluations. Thin: parse, call a
service (``services.promotions``, ``services.sel``), render. The acting user is the
signed-in one; four eyes is enforced by the service (a requester deciding: 409)."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.api import StrictInput
from ifns_paper.api_schema import documented
from ifns_paper.exceptions import NotFound
from ifns_paper.governance import RequestKind, RequestStatus
from ifns_paper.roles import Capability
from sessions_app import selectors
from sessions_app.idempotency import idempotent
from sessions_app.models import PromotionRequest
from sessions_app.services.promotions import promotion_decide, promotion_request
from sessions_app.services.sel import sel_evaluate


class PromotionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=[k.value for k in RequestKind])
    status = serializers.ChoiceField(choices=[s.value for s in RequestStatus])
    session_id = serializers.CharField()
    target = serializers.JSONField()
    direction = serializers.CharField()
    evaluation_id = serializers.IntegerField()
    recommendation = serializers.CharField()
    evidence_hash = serializers.CharField()
    requested_by = serializers.CharField()
    reason = serializers.CharField()
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_reason = serializers.CharField(allow_null=True)
    override_reason = serializers.CharField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()


class HistoryEntry(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    reason = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class PromotionDetailOutput(PromotionOutput):
    history = HistoryEntry(many=True)


def _record(row: PromotionRequest) -> dict:
    return {**row.as_record(), "id": row.pk}


def _history(row: PromotionRequest) -> list[dict]:
    return selectors.promotion_history(row.pk)


def _rows():
    return selectors.promotion_requests()


class PromotionListApi(APIView):
    """GET ``?status=&session=``: promotion requests, newest first. POST (operator): open one
    — ``kind`` lane_transition (``target: {"to_lane"}``), model_status (``{"registry_id",
    "version", "to_status"}``), risk_envelope (``{"lane", "changes"}``) or execution_policy
    (``{"policy_id", "changes"}``) — with a fresh SEL evaluation of its evidence session."""

    class Query(serializers.Serializer):
        status = serializers.ChoiceField(choices=[s.value for s in RequestStatus], required=False)
        session = serializers.SlugField(required=False, max_length=64)

    class Input(StrictInput):
        class Meta:
            ref_name = "PromotionRequestCreate"

        kind = serializers.ChoiceField(choices=[k.value for k in RequestKind])
        session_id = serializers.SlugField(max_length=64, help_text="the evidence session")
        target = serializers.DictField(help_text="what is asked for; its keys depend on kind")
        reason = serializers.CharField(max_length=2000)

    @documented(operation_id="promotions_list", query=Query, response=PromotionOutput(many=True), errors=(400,))
    def get(self, request):
        query = self.Query(data=request.query_params.dict())  # "?x=" is a value, not "no x"
        query.is_valid(raise_exception=True)
        rows = selectors.promotion_requests(status=query.validated_data.get("status"),
                                            session=query.validated_data.get("session"))
        return Response([_record(r) for r in rows])

    @idempotent
    @documented(operation_id="promotions_create", idempotent=True, request=Input, response=PromotionOutput, status=201,
                errors=(400, 404, 409))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        row = promotion_request(requested_by=request.user.username, **data.validated_data)
        return Response(_record(row), status=status.HTTP_201_CREATED)


class PromotionDetailApi(APIView):
    """GET: one request with its history (the change log: who asked, who decided, when, why)."""

    @documented(operation_id="promotions_detail", response=PromotionDetailOutput, errors=(404,))
    def get(self, request, request_id: int):
        row = _rows().filter(pk=request_id).first()
        if row is None:
            raise NotFound(f"no promotion request #{request_id}")
        return Response({**_record(row), "history": _history(row)})


class DecisionInput(StrictInput):
    reason = serializers.CharField(max_length=2000)
    override_reason = serializers.CharField(max_length=2000, required=False, default="",
                                            help_text="approve against failing evidence, saying why")


def _decide(request, request_id: int, action: str) -> Response:
    data = DecisionInput(data=request.data)
    data.is_valid(raise_exception=True)
    row = promotion_decide(request_id=request_id, action=action, actor=request.user.username,
                           reason=data.validated_data["reason"], override_reason=data.validated_data["override_reason"])
    return Response({**_record(row), "history": _history(row)})


class PromotionApproveApi(APIView):
    """POST (approver, never the requester): approve and apply; against failing evidence only
    with an ``override_reason``."""

    capabilities = {"POST": Capability.APPROVE}

    @idempotent
    @documented(operation_id="promotions_approve", idempotent=True, request=DecisionInput, response=PromotionDetailOutput,
                errors=(400, 404, 409))
    def post(self, request, request_id: int):
        return _decide(request, request_id, "approve")


class PromotionRejectApi(APIView):
    """POST (approver, never the requester): reject."""

    capabilities = {"POST": Capability.APPROVE}

    @idempotent
    @documented(operation_id="promotions_reject", idempotent=True, request=DecisionInput, response=PromotionDetailOutput,
                errors=(400, 404, 409))
    def post(self, request, request_id: int):
        return _decide(request, request_id, "reject")


class PromotionWithdrawApi(APIView):
    """POST (its requester, an operator): withdraw it."""

    @idempotent
    @documented(operation_id="promotions_withdraw", idempotent=True, request=DecisionInput, response=PromotionDetailOutput,
                errors=(400, 404, 409))
    def post(self, request, request_id: int):
        return _decide(request, request_id, "withdraw")


class SessionSelEvaluateApi(APIView):
    """POST (operator): evaluate the session against its lane's promotion criteria now."""

    @idempotent
    @documented(operation_id="sessions_sel_evaluate", idempotent=True, request=None, status=201, errors=(404, 409))
    def post(self, request, session_id: str):
        row = sel_evaluate(session_id=session_id, actor=request.user.username, trigger="on_demand")
        return Response(row.as_record(), status=status.HTTP_201_CREATED)
