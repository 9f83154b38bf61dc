from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "clientarea.notifications"
    label = "notifications"

    def ready(self) -> None:
        from django.core import checks

        from .demo_mail import check_demo_backend

        checks.register(check_demo_backend)  # the demo mail backend: DEMO_MODE only
