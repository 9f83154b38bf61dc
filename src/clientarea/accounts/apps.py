from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "clientarea.accounts"
    label = "accounts"
    verbose_name = "Identity and access"

    def ready(self) -> None:
        from . import owner_emails, reauth  # noqa: F401  (reauth connects the login signal)

        owner_emails.connect()  # a new owner starts with every email
