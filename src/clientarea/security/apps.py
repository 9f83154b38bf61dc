from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "clientarea.security"
    label = "security"
    verbose_name = "Account security"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (login, logout and failed-login hooks)
