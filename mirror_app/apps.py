from django.apps import AppConfig


class MirrorAppConfig(AppConfig):
    name = "mirror_app"
    verbose_name = "Mirror"
