from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "clientarea.accounts"
    label = "accounts"
    verbose_name = "Identity and access"

    def ready(self) -> None:
        from . import reauth  # noqa: F401  (connects the login signal)
