from django.apps import AppConfig


class HostingConfig(AppConfig):
    name = "clientarea.hosting"
    label = "hosting"
