from django.apps import AppConfig


class HostingConfig(AppConfig):
    name = "clientarea.hosting"
    label = "hosting"
    verbose_name = "Products & Services"

    def ready(self) -> None:
        from clientarea.accounts.permissions import Perm
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from .selectors import service_count_active

        register_nav(NavItem("Services", "hosting:list", Perm.PRODUCTS.value, order=20))
        register_tile(
            Tile("Active services", "hosting:list", Perm.PRODUCTS.value, service_count_active, 20)
        )
