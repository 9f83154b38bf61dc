from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "clientarea.core"
    label = "core"

    def ready(self) -> None:
        from . import attention

        attention.register()  # the shell's own dashboard items: invitations, two-factor
