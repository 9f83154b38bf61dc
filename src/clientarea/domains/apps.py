from django.apps import AppConfig


class DomainsConfig(AppConfig):
    name = "clientarea.domains"
    label = "domains"
    verbose_name = "Domains"

    def ready(self) -> None:
        from clientarea.accounts.closing import register_closure_hook, register_closure_sweep
        from clientarea.accounts.permissions import Perm
        from clientarea.accounts.signals import account_closed
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from . import scope, services
        from .closing import (
            auto_renew_of_closed_accounts_off_due,
            auto_renew_off_on_close,
            domains_on_closing,
        )
        from .selectors import domain_count_live

        register_nav(NavItem("Domains", "domains:list", Perm.DOMAINS.value, order=30))
        register_tile(Tile("Domains", "domains:list", Perm.DOMAINS.value, domain_count_live, 30))
        from clientarea.core.registry import AttentionProvider, register_attention

        from .attention import domains_expiring

        register_attention(
            AttentionProvider("domains.expiring", Perm.DOMAINS.value, domains_expiring, 20)
        )
        scope.register()
        services.register_reconcilers()
        from . import renewals

        renewals.register()  # renewal invoices (core.billable) and the worker's job
        from . import admin_renewals  # noqa: F401  (the price list and renewals in the back office)

        register_closure_hook(domains_on_closing)
        register_closure_sweep(auto_renew_of_closed_accounts_off_due)
        account_closed.connect(auto_renew_off_on_close, dispatch_uid="domains.auto_renew_off")

        from . import checks

        checks.register()  # the EPP settings checks of manage.py check --deploy
