from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "clientarea.notifications"
    label = "notifications"
