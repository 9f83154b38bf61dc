from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "clientarea.audit"
    label = "audit"
