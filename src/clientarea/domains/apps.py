from django.apps import AppConfig


class DomainsConfig(AppConfig):
    name = "clientarea.domains"
    label = "domains"
