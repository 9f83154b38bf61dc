from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientarea.core"
    label = "core"

    def ready(self) -> None:
        from django.core import checks

        from . import attention
        from .checks import outside_call_settings_check

        checks.register(outside_call_settings_check)

        attention.register()  # the shell's own dashboard items: invitations, two-factor
