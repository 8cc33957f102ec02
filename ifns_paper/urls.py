from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "IFNS Paper — administration (PAPER: simulated capital)"
admin.site.site_title = "IFNS Paper admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("ifns_paper.api_urls")),
    path("", include("mirror_app.urls")),
]
