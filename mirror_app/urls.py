from django.urls import path

from mirror_app import controls, views

app_name = "mirror"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/new/", controls.session_new, name="session-new"),
    path("sessions/<slug:session_id>/", views.session_detail, name="session-detail"),
    path("sessions/<slug:session_id>/tearsheet/", views.session_tearsheet, name="session-tearsheet"),
    path("sessions/<slug:session_id>/events/", views.session_event_rows, name="session-event-rows"),
    path("sessions/<slug:session_id>/action/", controls.session_action, name="session-action"),
    path("sessions/<slug:session_id>/cooldown/", controls.session_cooldown, name="session-cooldown"),
    path("sessions/<slug:session_id>/clone/", controls.session_clone_view, name="session-clone"),
    path("sessions/<slug:session_id>/tag/", controls.session_tag_view, name="session-tag"),
    path("controls/killswitch/", controls.kill_switch, name="kill-switch"),
    path("controls/banner/", views.controls_banner, name="controls-banner"),
    path("lanes/<slug:lane>/", views.lane_dashboard, name="lane"),
    path("lanes/<slug:lane>/envelope/", controls.lane_envelope, name="lane-envelope"),
    path("lanes/<slug:lane>/rules/", controls.lane_rules, name="lane-rules"),
    path("promotions/", views.promotions, name="promotions"),
    path("promotions/new/", controls.promotion_create, name="promotion-create"),
    path("promotions/<int:request_id>/", views.promotion_detail, name="promotion-detail"),
    path("promotions/<int:request_id>/decision/", controls.promotion_decision, name="promotion-decision"),
    path("changelog/", views.changelog, name="changelog"),
]
