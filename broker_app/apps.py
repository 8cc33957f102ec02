from django.apps import AppConfig


class BrokerAppConfig(AppConfig):
    name = "broker_app"
    verbose_name = "Paper broker"
