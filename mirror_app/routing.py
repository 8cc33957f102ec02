from django.urls import path

from mirror_app.consumers import PaperEventsConsumer

websocket_urlpatterns = [
    path("ws/paper/overview/", PaperEventsConsumer.as_asgi()),
    path("ws/paper/", PaperEventsConsumer.as_asgi()),  # the overview's first path, kept
    path("ws/paper/lanes/<slug:lane>/", PaperEventsConsumer.as_asgi()),
    path("ws/paper/sessions/<slug:session_id>/", PaperEventsConsumer.as_asgi()),
]
