"""Billing: invoices and their lines, payments (transactions), stored payment methods and
the credit-balance ledger.

Money is always ``Decimal`` in the account's currency (two decimal places). An invoice's
subtotal, tax and total are stored for fast lists but only ever written by
``totals.invoice_totals`` through the service layer, so they cannot drift from the lines.
No card number or CVC is ever stored: a payment method is the gateway's token plus the
brand, last four digits and expiry.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from clientarea.core.validators import validate_multi_line, validate_single_line

ZERO = Decimal("0.00")


class InvoiceCounter(models.Model):
    """The installation's invoice-number counter: one row, locked only at the very end of
    the transaction that issues an invoice (``services.invoices.invoice_create``).

    A counter row rather than a database sequence: a sequence hands out numbers outside
    the transaction, so a rolled-back invoice would leave a gap, and SQLite has none. The
    number is taken by one ``UPDATE ... SET last_number = last_number + 1 RETURNING``
    (the row lock) as the last step of the invoice's transaction, after its lines, email
    and checks are written, so the lock is held from that instant to the commit: invoices
    are issued side by side and only their commits queue on the counter. Taken in the same
    transaction, the number is committed with the invoice or not at all: **no gaps**.
    ``Invoice.number`` is unique and invoices are never deleted, so a number is never
    reused.
    """

    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"last invoice number {self.last_number}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        UNPAID = "unpaid", "Unpaid"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"

    # Overdue is not stored: it is an unpaid invoice past its due date.
    OVERDUE = "overdue"
    DISPLAY_STATUSES = (
        ("unpaid", "Unpaid"),
        ("overdue", "Overdue"),
        ("paid", "Paid"),
        ("cancelled", "Cancelled"),
        ("refunded", "Refunded"),
    )

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="invoices"
    )
    # NULL only inside the transaction that issues the invoice, until it takes its number
    # as its last step (see InvoiceCounter): a committed invoice always has one, so code
    # reads it as an int.
    number: models.PositiveBigIntegerField[int | None, int] = models.PositiveBigIntegerField(
        unique=True,
        null=True,  # type: ignore[misc]
        editable=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNPAID)
    currency = models.CharField(max_length=3, editable=False)
    issue_date = models.DateField(default=timezone.localdate)
    due_date = models.DateField()
    notes = models.TextField(blank=True, validators=[validate_multi_line])
    subtotal = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    amount_paid = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    # Set while a bank transfer is announced and waits for staff to confirm it.
    awaiting_transfer_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Billing details as they were when the invoice was issued: an invoice never changes.
    billing_name = models.CharField(max_length=200, blank=True, editable=False)
    billing_address = models.TextField(blank=True, editable=False)
    # The account's VAT / tax number when issued ("" if it had none). NULL: issued before
    # numbers were recorded, so with none (an issued invoice never gains one later).
    tax_number = models.CharField(max_length=40, null=True, blank=True, editable=False)
    paid_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-issue_date", "-number"]
        indexes = [
            models.Index(fields=["account", "-issue_date", "-number"]),
            models.Index(fields=["account", "status", "due_date"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_paid__gte=0), name="invoice_paid_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice #{self.number}"

    @property
    def balance(self) -> Decimal:
        if self.status in (self.Status.CANCELLED, self.Status.REFUNDED):
            return ZERO
        return max(self.total - self.amount_paid, ZERO)

    @property
    def is_overdue(self) -> bool:
        return self.status == self.Status.UNPAID and self.due_date < timezone.localdate()

    @property
    def display_status(self) -> str:
        return self.OVERDUE if self.is_overdue else self.status

    @property
    def display_status_label(self) -> str:
        return dict(self.DISPLAY_STATUSES)[self.display_status]

    @property
    def bill_to_tax_number(self) -> str:
        """The tax number printed under "Bill to" (the page and the PDF): the one the
        invoice was issued with, never the account's of today."""
        return self.tax_number or ""

    @property
    def is_payable(self) -> bool:
        return self.status == self.Status.UNPAID and self.balance > 0


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(max_length=300, validators=[validate_single_line])
    quantity = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("1"))
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField("tax rate (%)", max_digits=5, decimal_places=2, default=ZERO)
    # Computed by totals.line_amounts when the invoice is created.
    net_amount = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    tax_amount = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO, editable=False)
    # What the line sells, for the app that sells it ("domains.renewal:12", "billing.funds",
    # "billing.invoice:7"; see core.billable); "" for a plain line.
    item = models.CharField(max_length=100, blank=True, default="", editable=False)

    class Meta:
        ordering = ["position", "id"]
        indexes = [
            models.Index(fields=["item"], name="billing_line_item"),
            # The lines of combined invoices (Pay several at once), by the invoice holding
            # them: the unpaid total and the dashboard leave those invoices out (selectors.
            # unpaid_invoices) by probing this small index, not every line of each unpaid
            # invoice (bench_scale: 700 unpaid invoices, 10 ms -> 1 ms).
            models.Index(
                fields=["invoice"],
                condition=models.Q(item__startswith="billing.invoice:"),
                name="billing_line_pays_invoice",
            ),
        ]

    def __str__(self) -> str:
        return self.description

    @property
    def line_total(self) -> Decimal:
        return self.net_amount + self.tax_amount

    @property
    def paid_invoice_id(self) -> int | None:
        """On a combined invoice (Pay several at once): the invoice this line pays."""
        kind, _, rest = self.item.partition(":")
        return int(rest) if kind == "billing.invoice" and rest.isdigit() else None


class PaymentMethod(models.Model):
    """A stored card: the gateway's token and what may be shown about it, nothing more."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="payment_methods"
    )
    gateway = models.CharField(max_length=30)
    token = models.CharField(max_length=100)
    brand = models.CharField(max_length=30)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "created_at"])]
        constraints = [
            # One card is stored once per account, whoever stores it first (the card
            # page's return or Stripe's setup_intent.succeeded webhook).
            models.UniqueConstraint(
                fields=["account", "gateway", "token"], name="billing_card_stored_once"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """What anyone but the owner may see: brand and last four."""
        return f"{self.brand} ending in {self.last4}"


class Transaction(models.Model):
    """One payment attempt or refund on an invoice, whatever the gateway.

    A card payment is recorded before the card processor is called, as "processing" (the
    committed intent; its idempotency key goes to the processor), and settled once the
    processor's answer is known: by the request that paid, or, when that answer was lost,
    by the reconciliation job asking the processor (see ``services``). At most one
    payment of an invoice is processing at a time.
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        # A bank transfer announced by the customer, awaiting staff's confirmation.
        PENDING = "pending", "Awaiting confirmation"
        # A card payment sent to the processor whose result is not known yet.
        PROCESSING = "processing", "Processing"
        DECLINED = "declined", "Declined"
        FAILED = "failed", "Failed"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="transactions")
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="billing_transactions"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PAYMENT)
    status = models.CharField(max_length=10, choices=Status.choices)
    gateway = models.CharField(max_length=30)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=300, blank=True)
    # Made when the pay page renders; unique, so one form submitted twice pays once.
    idempotency_key = models.CharField(max_length=64, unique=True)
    payer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payer_label = models.CharField(max_length=300, blank=True)
    method_label = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # A refund: the payment it gives money back from (card refunds through the processor;
    # None for refunds to credit or made outside, which concern the whole invoice).
    refund_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
        editable=False,
    )
    # A processing payment or refund: when the reconciliation job next asks the processor
    # about it, and how often it has asked.
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    check_attempts = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["invoice", "status"]),
            models.Index(
                fields=["next_check_at"],
                condition=models.Q(status="processing"),
                name="billing_tx_processing_due",
            ),
        ]
        constraints = [
            # Two people paying at once cannot both reach the card processor: the second
            # finds this invoice's payment already processing.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=models.Q(status="processing"),
                name="billing_one_processing_payment_per_invoice",
            ),
            # A processor's refund (re_...) is recorded once, whether the back office's
            # request or the processor's webhook records it first.
            models.UniqueConstraint(
                fields=["gateway", "reference"],
                condition=models.Q(kind="refund") & ~models.Q(reference=""),
                name="billing_refund_recorded_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.status})"


class CreditEntry(models.Model):
    """The credit-balance ledger: every change of ``Account.credit_balance`` is one row."""

    class Kind(models.TextChoices):
        ADDED = "added", "Added by staff"
        USED = "used", "Used to pay an invoice"
        REFUND = "refund", "Refund of an invoice"
        # A card payment confirmed after the invoice was paid another way (or cancelled):
        # the money that was no longer due is kept as credit.
        SURPLUS = "surplus", "Payment not needed by its invoice"
        # Add Funds: an invoice paid to put money on the credit balance.
        FUNDS = "funds", "Added funds"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="credit_entries"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ADDED)
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="Positive adds credit, negative uses it."
    )
    balance_after = models.DecimalField(max_digits=12, decimal_places=2, editable=False)
    reason = models.CharField(max_length=300, validators=[validate_single_line])
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.amount} ({self.get_kind_display()})"


class StripeEvent(models.Model):
    """A Stripe webhook event we processed: its id is unique, so an event Stripe sends
    again (it retries until it gets a 2xx, and may send one twice) is processed once."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    # The object the event is about (pi_..., ch_..., seti_...).
    object_id = models.CharField(max_length=255, blank=True)
    livemode = models.BooleanField(default=False)
    # When Stripe made the event (events may arrive in any order).
    created = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    # What processing it did, for staff ("payment 12 settled", "ignored"...).
    result = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["object_id", "created"])]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class StripeCustomer(models.Model):
    """An account's Customer at Stripe (cus_...), made the first time a card is saved and
    reused after. One per account and mode: test-mode customers do not exist in live mode,
    so an installation moving to live keys makes new ones."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="stripe_customers"
    )
    customer_id = models.CharField(max_length=255, unique=True)
    livemode = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Two requests making the customer at once record one (the other re-reads it).
            models.UniqueConstraint(
                fields=["account", "livemode"], name="billing_one_stripe_customer_per_account"
            ),
        ]

    def __str__(self) -> str:
        return self.customer_id


class PaymentRequest(models.Model):
    """A payment asked for with an idempotency key chosen by its caller (the API's
    Idempotency-Key header): a digest of the request it was first sent with, and the
    final answer it got. The same key sent again with the same request answers that
    again and pays nothing more (the payment's own key, ``Transaction.idempotency_key``,
    is this key); with another request it is refused (``services.payment_request_claim``)."""

    key = models.CharField(max_length=64, unique=True)
    digest = models.CharField(max_length=64)
    # None until a final answer (paid, declined, ...) was given.
    answer_status = models.PositiveSmallIntegerField(null=True, blank=True)
    answer = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Retention (payment_requests_prune): requests older than the cutoff.
        indexes = [models.Index(fields=["created_at"], name="billing_payreq_created")]

    def __str__(self) -> str:
        return self.key
