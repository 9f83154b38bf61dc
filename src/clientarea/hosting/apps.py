from django.apps import AppConfig


class HostingConfig(AppConfig):
    name = "clientarea.hosting"
    label = "hosting"
    verbose_name = "Products & Services"

    def ready(self) -> None:
        from clientarea.accounts.closing import register_closure_hook, register_closure_sweep
        from clientarea.accounts.permissions import Perm
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from . import checks, scope, services
        from .closing import services_of_closed_accounts_cancel_due, services_on_closing
        from .selectors import service_count_active

        register_nav(NavItem("Services", "hosting:list", Perm.PRODUCTS.value, order=20))
        register_tile(
            Tile("Active services", "hosting:list", Perm.PRODUCTS.value, service_count_active, 20)
        )
        from clientarea.core.registry import AttentionProvider, register_attention

        from .attention import services_suspended

        register_attention(
            AttentionProvider("hosting.suspended", Perm.PRODUCTS.value, services_suspended, 30)
        )
        scope.register()
        services.register_reconcilers()
        checks.register()  # manage.py check --deploy: WHM servers' tokens and TLS
        register_closure_hook(services_on_closing)
        register_closure_sweep(services_of_closed_accounts_cancel_due)
