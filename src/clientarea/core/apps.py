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

        from django.db.models.signals import post_migrate

        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="core-cache-table")


def _create_cache_table(using: str = "default", **kwargs: object) -> None:
    """`migrate` also makes the database cache's table (CACHE_URL's default, dbcache://),
    so that no deployment step can be forgotten; nothing when the cache is elsewhere, or
    the table is there already."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
