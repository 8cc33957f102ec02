"""REST endpoints for backtests beside the sessions: list and detail (status, params,
summary, error), a shadow backtest of a session run as an asynchronous job (202, then poll
its status) or registered rolling, and the import of a results folder in the canonical
format from under ``IFNS_IMPORTS_DIR``. Thin: parse, call ``services.backtests``, render."""

from __future__ import annotations

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.api import StrictInput
from ifns_paper.api_schema import documented
from ifns_paper.exceptions import NotFound
from sessions_app import dispatch
from sessions_app.idempotency import idempotent
from sessions_app.models import Backtest
from sessions_app.services.backtests import (
    LATENCY_MODES,
    imports_folder,
    results_import,
    shadow_backtest,
    shadow_register,
)


class BacktestOutput(serializers.Serializer):
    backtest_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=Backtest.Kind.values)
    status = serializers.ChoiceField(choices=Backtest.Status.values)
    session_id = serializers.CharField(source="session.session_id", allow_null=True, default=None)
    strategy = serializers.CharField(source="strategy.__str__", allow_null=True, default=None)
    params = serializers.JSONField()
    summary = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def _rows():
    return Backtest.objects.select_related("session", "strategy").order_by("-created_at", "-id")


class BacktestListApi(APIView):
    """GET ``?session=&kind=&status=``: registered backtests, newest first."""

    class Query(serializers.Serializer):
        session = serializers.SlugField(required=False, max_length=64)
        kind = serializers.ChoiceField(choices=Backtest.Kind.values, required=False)
        status = serializers.ChoiceField(choices=Backtest.Status.values, required=False)

    @documented(operation_id="backtests_list", query=Query, response=BacktestOutput(many=True), errors=(400,))
    def get(self, request):
        query = self.Query(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        p = query.validated_data
        rows = _rows()
        if "session" in p:
            rows = rows.filter(session__session_id=p["session"])
        for key in ("kind", "status"):
            if key in p:
                rows = rows.filter(**{key: p[key]})
        return Response(BacktestOutput(rows, many=True).data)


class BacktestDetailApi(APIView):
    """GET: one backtest (poll it after a shadow run was queued: ``running`` → ``completed``
    or ``failed`` with its error)."""

    @documented(operation_id="backtests_detail", response=BacktestOutput, errors=(404,))
    def get(self, request, backtest_id: str):
        row = _rows().filter(backtest_id=backtest_id).first()
        if row is None:
            raise NotFound(f"no backtest {backtest_id!r}")
        return Response(BacktestOutput(row).data)


class ShadowInput(StrictInput):
    session_id = serializers.SlugField(max_length=64)
    latency = serializers.ChoiceField(choices=list(LATENCY_MODES), required=False, default="zero")
    rolling = serializers.BooleanField(required=False, default=False,
                                       help_text="follow the live session, rolled every minute")


class BacktestShadowApi(APIView):
    """POST (operator) ``{"session_id", "latency", "rolling"}``: a shadow backtest of the
    session over its recorded data. One-shot: registered and queued for a worker — 202 with
    the backtest (``running``); poll ``/api/v1/backtests/<id>/``. Rolling: registered (and
    rolled once if the session has read data) — 201."""

    @idempotent
    @documented(operation_id="backtests_shadow", request=ShadowInput, response=BacktestOutput, status=202,
                errors=(400, 404, 409), idempotent=True)
    def post(self, request):
        data = ShadowInput(data=request.data)
        data.is_valid(raise_exception=True)
        p, actor = data.validated_data, f"api:{request.user.username}"
        if p["rolling"]:
            row = shadow_backtest(session_id=p["session_id"], actor=actor, latency=p["latency"], rolling=True)
            return Response(BacktestOutput(row).data, status=status.HTTP_201_CREATED)
        row = shadow_register(session_id=p["session_id"], actor=actor, latency=p["latency"])
        transaction.on_commit(lambda: dispatch.shadow_enqueue(row.backtest_id))
        return Response(BacktestOutput(_rows().get(pk=row.pk)).data, status=status.HTTP_202_ACCEPTED)


class ImportInput(StrictInput):
    folder = serializers.RegexField(r"^[\w.\-]+(/[\w.\-]+)*$", max_length=300,
                                    help_text="a results folder under IFNS_IMPORTS_DIR (data/imports)")
    live = serializers.BooleanField(required=False, default=False, help_text="an imported live run (Stage 07)")


class BacktestImportApi(APIView):
    """POST (operator) ``{"folder", "live"}``: register a results folder (canonical format:
    summary.json, equity.csv, fills.csv, optional decisions.ndjson) found under
    ``IFNS_IMPORTS_DIR``; every problem named as ``file:line`` (400), nothing written then."""

    @idempotent
    @documented(operation_id="backtests_import", request=ImportInput, response=BacktestOutput, status=201,
                errors=(400, 404, 409), idempotent=True)
    def post(self, request):
        data = ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        folder = imports_folder(data.validated_data["folder"])
        row = results_import(folder=folder, actor=f"api:{request.user.username}", live=data.validated_data["live"])
        return Response(BacktestOutput(_rows().get(pk=row.pk)).data, status=status.HTTP_201_CREATED)
