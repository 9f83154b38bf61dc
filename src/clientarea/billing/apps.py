from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "clientarea.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from clientarea.accounts.closing import register_closure_hook
        from clientarea.accounts.permissions import Perm
        from clientarea.accounts.signals import ownership_transferred
        from clientarea.core.registry import (
            NavItem,
            Tile,
            register_nav,
            register_periodic_job,
            register_tile,
        )

        from . import checks
        from .ownership import payment_methods_on_transfer, unpaid_invoices_block_closing
        from .selectors import invoice_unpaid_count
        from .services import payments_reconcile_due

        checks.register()  # the Stripe settings checks of manage.py check --deploy
        from .purchases import register as register_purchases

        # Other apps' invoices (domain renewals), Add Funds and combined payments.
        register_purchases()
        register_closure_hook(unpaid_invoices_block_closing)
        # Card payments whose processor answer was lost are settled by asking it.
        register_periodic_job("billing.payments_reconcile", payments_reconcile_due)
        # Card refunds left processing (an answer lost, pending at Stripe), the same way.
        from .refunds import refunds_reconcile_due

        register_periodic_job("billing.refunds_reconcile", refunds_reconcile_due)
        # The API's Idempotency-Key records, past RETENTION_PAYMENT_REQUEST_DAYS.
        from clientarea.core.registry import register_retention_job

        from .services import payment_requests_prune

        register_retention_job("payment idempotency keys", payment_requests_prune)
        ownership_transferred.connect(
            payment_methods_on_transfer, dispatch_uid="billing.payment_methods_on_transfer"
        )

        register_nav(NavItem("Billing", "billing:invoice_list", Perm.INVOICES.value, order=30))
        from clientarea.core.registry import AttentionProvider, register_attention

        from .attention import invoices_needing_payment

        register_attention(
            AttentionProvider("billing.invoices", Perm.INVOICES.value, invoices_needing_payment, 10)
        )
        register_tile(
            Tile(
                "Unpaid invoices",
                "billing:invoice_list",
                Perm.INVOICES.value,
                # Invoices are account-wide: a resource scope has no effect on them.
                lambda access: invoice_unpaid_count(access.account),
                order=30,
            )
        )
