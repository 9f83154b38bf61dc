from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientarea.core"
    label = "core"
