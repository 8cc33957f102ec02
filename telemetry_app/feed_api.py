"""Feed health over REST: the latest report of every feed (read-only)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.api_schema import documented
from telemetry_app.selectors import feed_health_latest


class FeedHealthOutput(serializers.Serializer):
    feed = serializers.CharField()
    env = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    event_time = serializers.DateTimeField()
    last_tick_age_ms = serializers.IntegerField(allow_null=True)
    rows_total = serializers.IntegerField()
    gaps = serializers.IntegerField()
    restarts = serializers.IntegerField()
    glitches = serializers.JSONField()
    detail = serializers.CharField()


class FeedHealthListApi(APIView):
    """GET: one object per feed that has reported, by feed name."""

    http_method_names = ["get", "head", "options"]

    @documented(operation_id="feeds_list", response=FeedHealthOutput(many=True))
    def get(self, request):
        return Response(FeedHealthOutput(feed_health_latest(), many=True).data)
