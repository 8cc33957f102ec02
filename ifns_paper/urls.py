from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ifns_paper import api_views

admin.site.site_header = "IFNS Paper — administration (PAPER: simulated capital)"
admin.site.site_title = "IFNS Paper admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[]), name="api-docs"),
    path("api/v1/", include("ifns_paper.api_urls")),
    # the paths before /api/v1/ stay as aliases: a permanent redirect keeping method and body
    re_path(r"^api/(?!v1/|schema/|docs/)(?P<rest>.*)$", api_views.legacy_redirect, name="api-legacy"),
    path("", include("mirror_app.urls")),
]

handler404 = api_views.not_found
