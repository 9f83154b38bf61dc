from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "clientarea.accounts"
    label = "accounts"
    verbose_name = "Identity and access"
