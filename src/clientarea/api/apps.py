from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "clientarea.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from clientarea.accounts.signals import (
            access_changed,
            access_ended,
            ownership_transferred,
        )

        from . import receivers, schema  # noqa: F401 (schema registers an extension)

        access_ended.connect(receivers.on_access_ended, dispatch_uid="api.tokens.access_ended")
        access_changed.connect(
            receivers.on_access_changed, dispatch_uid="api.tokens.access_changed"
        )
        ownership_transferred.connect(
            receivers.on_ownership_transferred, dispatch_uid="api.tokens.ownership_transferred"
        )
        receivers.connect_scope_kinds()
        # The rate limit's counts kept in the database (throttling.py), windows long past.
        from clientarea.core.registry import register_retention_job

        from .throttling import rate_windows_prune

        register_retention_job("api rate windows", rate_windows_prune)
