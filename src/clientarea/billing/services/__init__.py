"""State-changing actions of billing. Each is one transaction that locks what it changes,
validates, writes, records its audit event and queues its email; except a card payment,
which calls the card processor and so is recorded in two short transactions around that
call, never inside one (see ``invoice_pay`` and ``clientarea.core.outside``).

One module per concern; import from this package, never from its modules:

- ``invoices``: invoices issued, cancelled and refunded by staff
- ``payments``: ``invoice_pay`` (credit, bank transfer, card), a bank transfer confirmed,
  credit added
- ``cards``: card payments' steps, the return from 3-D Secure and its cancellation, the
  card a payment kept
- ``reconcile``: the worker's loop settling transactions left processing
- ``payment_methods``: stored cards (owner only)
- ``outcomes``: what a payment is paid with, what came of it, ``BillingError``
- ``_common``: helpers the modules share (private)

Lock order, everywhere: the invoice row first, then the account row (credit balance), so
two actions never wait on each other in opposite orders. Card refunds through the
processor are ``clientarea.billing.refunds``.
"""

from ..models import ZERO
from ..totals import LineInput  # what invoice_create takes
from ._common import (
    COMBINED_ITEM,
    FUNDS_ITEM,
    IDEMPOTENCY_KEY_RE,
    INVOICE_EMAIL_KIND,
    adds_funds,
    is_combined,
)

# Private helpers that billing's other modules share with the services (purchases and
# refunds lock and pay invoices the same way; ownership asks which gateway holds a card).
from ._common import _apply_payment as _apply_payment
from ._common import _end_awaited_transfers as _end_awaited_transfers
from ._common import _lock_account as _lock_account
from ._common import _lock_invoice as _lock_invoice
from ._common import _stored_card_gateway as _stored_card_gateway
from .cards import (
    PROCESSOR_REFERENCE_RE,
    card_for_saving,
    card_payment_begin,
    card_payment_cancel,
    card_payment_record,
    card_payment_return,
    payment_card_keep,
    payment_kept_card,
    payment_kept_card_store,
)
from .invoices import invoice_cancel, invoice_create, invoice_refund
from .outcomes import (
    ALREADY_PROCESSING,
    AWAITING_AUTHENTICATION,
    CARD_UNAVAILABLE,
    GAVE_UP_MESSAGE,
    NEVER_RECEIVED_MESSAGE,
    NOT_CHARGED,
    PROCESSING_MESSAGE,
    BillingError,
    IdempotencyKeyReused,
    PayByBankTransfer,
    PaymentOutcome,
    PaySource,
    PayWithCredit,
    PayWithNewCard,
    PayWithStoredMethod,
)
from .payment_methods import (
    CARD_NOT_REMOVED,
    CardSaved,
    card_store_once,
    payment_method_add,
    payment_method_remove,
    payment_method_save_return,
    payment_method_store,
)
from .payments import (
    bank_transfer_confirm,
    credit_add,
    invoice_pay,
    payment_request_answered,
    payment_request_claim,
    payment_requests_prune,
)
from .reconcile import payment_reconcile, payments_reconcile_due, processing_transactions_settle_due

__all__ = [
    "ALREADY_PROCESSING",
    "AWAITING_AUTHENTICATION",
    "CARD_NOT_REMOVED",
    "CARD_UNAVAILABLE",
    "COMBINED_ITEM",
    "FUNDS_ITEM",
    "GAVE_UP_MESSAGE",
    "IDEMPOTENCY_KEY_RE",
    "INVOICE_EMAIL_KIND",
    "NEVER_RECEIVED_MESSAGE",
    "NOT_CHARGED",
    "PROCESSING_MESSAGE",
    "PROCESSOR_REFERENCE_RE",
    "ZERO",
    "BillingError",
    "CardSaved",
    "IdempotencyKeyReused",
    "LineInput",
    "PayByBankTransfer",
    "PaySource",
    "PayWithCredit",
    "PayWithNewCard",
    "PayWithStoredMethod",
    "PaymentOutcome",
    "adds_funds",
    "bank_transfer_confirm",
    "card_for_saving",
    "card_payment_begin",
    "card_payment_cancel",
    "card_payment_record",
    "card_payment_return",
    "card_store_once",
    "credit_add",
    "invoice_cancel",
    "invoice_create",
    "invoice_pay",
    "invoice_refund",
    "is_combined",
    "payment_card_keep",
    "payment_kept_card",
    "payment_kept_card_store",
    "payment_method_add",
    "payment_method_remove",
    "payment_method_save_return",
    "payment_method_store",
    "payment_reconcile",
    "payment_request_answered",
    "payment_request_claim",
    "payment_requests_prune",
    "payments_reconcile_due",
    "processing_transactions_settle_due",
]
