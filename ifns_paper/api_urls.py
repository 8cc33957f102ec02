from django.urls import path

from ifns_paper.api_views import ApiRootView
from sessions_app.api import (
    KillSwitchApi,
    LaneListApi,
    LaneSummaryApi,
    PromotionFunnelApi,
    SessionActionApi,
    SessionComparisonApi,
    SessionDetailApi,
    SessionEventsApi,
    SessionIncidentsApi,
    SessionSelEvaluationsApi,
    SessionSeriesApi,
    SessionSummaryApi,
)
from sessions_app.api_backtests import (
    BacktestDetailApi,
    BacktestImportApi,
    BacktestListApi,
    BacktestShadowApi,
)
from sessions_app.api_manage import (
    ChangeLogApi,
    LaneDetailApi,
    LaneEnvelopeApi,
    LanePolicyApi,
    SessionCloneApi,
    SessionCooldownApi,
    SessionFillsApi,
    SessionOrdersApi,
    SessionPositionsApi,
    SessionsApi,
    SessionTagApi,
    SystemHealthApi,
)
from sessions_app.api_promotions import (
    PromotionApproveApi,
    PromotionDetailApi,
    PromotionListApi,
    PromotionRejectApi,
    PromotionWithdrawApi,
    SessionSelEvaluateApi,
)
from telemetry_app.feed_api import FeedHealthListApi

app_name = "api"

urlpatterns = [
    path("", ApiRootView.as_view(), name="root"),
    path("lanes/", LaneListApi.as_view(), name="lane-list"),
    path("lanes/<slug:lane>/", LaneDetailApi.as_view(), name="lane-detail"),
    path("lanes/<slug:lane>/envelope/", LaneEnvelopeApi.as_view(), name="lane-envelope"),
    path("lanes/<slug:lane>/policy/", LanePolicyApi.as_view(), name="lane-policy"),
    path("lanes/<slug:lane>/summary/", LaneSummaryApi.as_view(), name="lane-summary"),
    path("funnel/", PromotionFunnelApi.as_view(), name="promotion-funnel"),
    path("feeds/", FeedHealthListApi.as_view(), name="feed-list"),
    path("killswitches/", KillSwitchApi.as_view(), name="killswitches"),
    path("sessions/", SessionsApi.as_view(), name="session-list"),
    path("sessions/<slug:session_id>/", SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<slug:session_id>/actions/", SessionActionApi.as_view(), name="session-action"),
    path("sessions/<slug:session_id>/events/", SessionEventsApi.as_view(), name="session-events"),
    path("sessions/<slug:session_id>/series/", SessionSeriesApi.as_view(), name="session-series"),
    path("sessions/<slug:session_id>/summary/", SessionSummaryApi.as_view(), name="session-summary"),
    path("sessions/<slug:session_id>/comparison/", SessionComparisonApi.as_view(), name="session-comparison"),
    path("sessions/<slug:session_id>/sel/", SessionSelEvaluationsApi.as_view(), name="session-sel-evaluations"),
    path("sessions/<slug:session_id>/sel/evaluate/", SessionSelEvaluateApi.as_view(), name="session-sel-evaluate"),
    path("promotions/", PromotionListApi.as_view(), name="promotion-list"),
    path("promotions/<int:request_id>/", PromotionDetailApi.as_view(), name="promotion-detail"),
    path("promotions/<int:request_id>/approve/", PromotionApproveApi.as_view(), name="promotion-approve"),
    path("promotions/<int:request_id>/reject/", PromotionRejectApi.as_view(), name="promotion-reject"),
    path("promotions/<int:request_id>/withdraw/", PromotionWithdrawApi.as_view(), name="promotion-withdraw"),
    path("sessions/<slug:session_id>/incidents/", SessionIncidentsApi.as_view(), name="session-incidents"),
    path("sessions/<slug:session_id>/orders/", SessionOrdersApi.as_view(), name="session-orders"),
    path("sessions/<slug:session_id>/fills/", SessionFillsApi.as_view(), name="session-fills"),
    path("sessions/<slug:session_id>/positions/", SessionPositionsApi.as_view(), name="session-positions"),
    path("sessions/<slug:session_id>/clone/", SessionCloneApi.as_view(), name="session-clone"),
    path("sessions/<slug:session_id>/tags/", SessionTagApi.as_view(), name="session-tag"),
    path("sessions/<slug:session_id>/cooldown/", SessionCooldownApi.as_view(), name="session-cooldown"),
    path("changelog/", ChangeLogApi.as_view(), name="changelog"),
    path("backtests/", BacktestListApi.as_view(), name="backtest-list"),
    path("backtests/shadow/", BacktestShadowApi.as_view(), name="backtest-shadow"),
    path("backtests/import/", BacktestImportApi.as_view(), name="backtest-import"),
    path("backtests/<slug:backtest_id>/", BacktestDetailApi.as_view(), name="backtest-detail"),
    path("system/health/", SystemHealthApi.as_view(), name="system-health"),
]
