from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "clientarea.notifications"
    label = "notifications"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_outbox_claim
        from .demo_mail import check_demo_backend

        checks.register(check_demo_backend)  # the demo mail backend: DEMO_MODE only
        checks.register(check_outbox_claim)
