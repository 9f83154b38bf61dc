from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "clientarea.support"
    label = "support"
