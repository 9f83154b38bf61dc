from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "clientarea.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from clientarea.accounts.permissions import Perm
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from .selectors import invoice_unpaid_count

        register_nav(NavItem("Billing", "billing:invoice_list", Perm.INVOICES.value, order=30))
        register_tile(
            Tile(
                "Unpaid invoices",
                "billing:invoice_list",
                Perm.INVOICES.value,
                invoice_unpaid_count,
                order=30,
            )
        )
