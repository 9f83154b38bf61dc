from django.apps import AppConfig


class DomainsConfig(AppConfig):
    name = "clientarea.domains"
    label = "domains"
    verbose_name = "Domains"

    def ready(self) -> None:
        from clientarea.accounts.permissions import Perm
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from .selectors import domain_count_live

        register_nav(NavItem("Domains", "domains:list", Perm.DOMAINS.value, order=30))
        register_tile(Tile("Domains", "domains:list", Perm.DOMAINS.value, domain_count_live, 30))
