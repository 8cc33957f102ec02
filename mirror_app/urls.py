from django.urls import path

from mirror_app import views

app_name = "mirror"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/<slug:session_id>/", views.session_detail, name="session-detail"),
]
