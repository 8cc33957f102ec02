"""Telemetry backfill over REST: events of a session after a sequence number."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ifns_paper.exceptions import NotFound
from sessions_app.models import PaperSession
from telemetry_app.choices import EventType
from telemetry_app.selectors import events_for_session

MAX_PAGE = 1000


class SessionEventsApi(APIView):
    """GET ``?after=<sequence>&type=<event type>&limit=<n>``; oldest first."""

    class Query(serializers.Serializer):
        after = serializers.IntegerField(min_value=0, required=False, default=0)
        type = serializers.ChoiceField(choices=EventType.choices, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, default=MAX_PAGE)

    def get(self, request, session_id: str):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        if not PaperSession.objects.filter(session_id=session_id).exists():
            raise NotFound(f"no paper session {session_id!r}")
        params = query.validated_data
        events = list(
            events_for_session(session_id=session_id, after=params["after"], event_type=params.get("type"))[
                : params["limit"]
            ]
        )
        return Response(
            {
                "session_id": session_id,
                "env": "paper",
                "events": [e.as_record(session_id) for e in events],
                "next_after": events[-1].sequence if events else params["after"],
            }
        )
