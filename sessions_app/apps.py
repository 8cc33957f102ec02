from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Paper sessions and lanes"

    def ready(self) -> None:
        # Bind @shared_task functions to our Celery app in every Django process.
        import ifns_paper.celery  # noqa: F401
