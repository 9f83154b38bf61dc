"""State-changing actions of billing. Each is one transaction that locks what it changes,
validates, writes, records its audit event and queues its email; except a card payment,
which calls the card processor and so is recorded in two short transactions around that
call, never inside one (see ``invoice_pay`` and ``clientarea.core.outside``).

Lock order, everywhere: the invoice row first, then the account row (credit balance), so
two actions never wait on each other in opposite orders.
"""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.policy import may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.core import billable
from clientarea.core.outside import (
    OutsideError,
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    assert_no_transaction,
    outside_call,
)
from clientarea.notifications.services import notify

from . import gateways
from .gateways import CardRejected, ChargeResult, ChargeStatus, GatewayError
from .models import (
    ZERO,
    CreditEntry,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    PaymentMethod,
    Transaction,
)
from .totals import LineInput, invoice_totals

INVOICE_EMAIL_KIND = "invoice"
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

logger = logging.getLogger(__name__)


class BillingError(Exception):
    """An action refused for a reason the user should read; nothing was changed."""


# --- paying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayWithCredit:
    pass


@dataclass(frozen=True)
class PayWithStoredMethod:
    payment_method_id: int


@dataclass(frozen=True)
class PayWithNewCard:
    """A card the browser handed to the card processor: its token, never its number."""

    token: str
    save: bool = False


@dataclass(frozen=True)
class PayByBankTransfer:
    pass


PaySource = PayWithCredit | PayWithStoredMethod | PayWithNewCard | PayByBankTransfer


@dataclass(frozen=True)
class PaymentOutcome:
    # processing: a card payment whose result the processor has not confirmed yet;
    # requires_action: the card holder's bank wants them to authenticate (3-D Secure):
    # send the browser to `redirect_url`, the processor sends it back to the return page.
    status: Literal[
        "paid", "partial", "pending", "processing", "requires_action", "declined", "failed"
    ]
    message: str
    transaction: Transaction | None = None
    redirect_url: str = ""


def _invoice_url(invoice: Invoice) -> str:
    return f"{settings.SITE_URL}{reverse('billing:invoice_detail', args=[invoice.pk])}"


def _next_invoice_number() -> int:
    """Take the next number under the counter's row lock (see InvoiceCounter)."""
    InvoiceCounter.objects.get_or_create(pk=1)
    counter = InvoiceCounter.objects.select_for_update().get(pk=1)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _billing_address(account: Account) -> str:
    parts = [
        account.address_line1,
        account.address_line2,
        " ".join(p for p in (account.postcode, account.city) if p),
        account.country.name,  # "Ireland", not "IE"
    ]
    return "\n".join(p for p in parts if p)


@transaction.atomic
def invoice_create(
    *,
    account: Account,
    lines: Sequence[LineInput],
    due_date: datetime.date,
    issue_date: datetime.date | None = None,
    notes: str = "",
    actor: User | None = None,
    request: HttpRequest | None = None,
    items: Sequence[str] | None = None,
) -> Invoice:
    """Issue an invoice with its lines and email it to the owner and invoice contacts.
    `items` gives each line what it sells (see ``core.billable``), "" for a plain line."""
    if not lines:
        raise BillingError("An invoice needs at least one line.")
    items = list(items) if items is not None else [""] * len(lines)
    if len(items) != len(lines):
        raise BillingError("Each line needs its item.")
    issue_date = issue_date or timezone.localdate()
    if due_date < issue_date:
        raise BillingError("The due date cannot be before the issue date.")
    for line in lines:
        if line.quantity <= 0 or line.unit_price < 0 or not 0 <= line.tax_rate <= 100:
            raise BillingError(
                "Each line needs a positive quantity, a price of 0 or more and a tax rate "
                "between 0 and 100."
            )
    totals = invoice_totals(lines)
    # Nothing to pay (free lines only): the invoice is settled from the start, never
    # "unpaid" and later "overdue".
    settled = totals.total == ZERO
    invoice = Invoice.objects.create(
        status=Invoice.Status.PAID if settled else Invoice.Status.UNPAID,
        paid_at=timezone.now() if settled else None,
        account=account,
        number=_next_invoice_number(),
        currency=account.currency,
        issue_date=issue_date,
        due_date=due_date,
        notes=notes,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        billing_name=account.display_name[:200],
        billing_address=_billing_address(account),
        tax_number=account.tax_number,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=i,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            tax_rate=line.tax_rate,
            net_amount=amounts.net,
            tax_amount=amounts.tax,
            item=item,
        )
        for i, (line, amounts, item) in enumerate(zip(lines, totals.lines, items, strict=True))
    )
    audit_record(
        action="invoice.created",
        actor=actor,
        account=account,
        target=invoice,
        changes={"total": str(invoice.total), "currency": invoice.currency},
        request=request,
        is_staff_action=bool(actor and actor.is_staff),
    )
    notify(
        account=account,
        kind=INVOICE_EMAIL_KIND,
        template="billing/email/invoice_created",
        context={"invoice": invoice, "invoice_url": _invoice_url(invoice)},
    )
    if settled:
        _invoice_paid(invoice)
    return invoice


def _invoice_paid(invoice: Invoice) -> None:
    """The invoice has just become paid (in this transaction): what its lines sell is
    handed over by the apps that sell it (``core.billable``), committed with the payment."""
    _release_combined(invoice, "paid")
    lines = [line for line in invoice.lines.all() if line.item]
    if not lines:
        return
    billable.items_paid(
        [
            billable.PaidItem(
                invoice_id=invoice.pk,
                invoice_number=invoice.number,
                account_id=invoice.account_id,
                item=line.item,
                amount=line.line_total,
            )
            for line in lines
        ]
    )


def _release_combined(invoice: Invoice, how: str) -> None:
    """`invoice` was just paid or cancelled on its own: an unpaid combined invoice that
    would pay it (Pay several at once) is cancelled, so it no longer asks for money not
    owed, unless money is already on its way to it (paid in part, a card payment being
    processed, a bank transfer awaited): then its share of it goes to the credit balance
    once it is paid. One being paid right now (locked) is left to that payment."""
    holders = (
        Invoice.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(
            account_id=invoice.account_id,
            status=Invoice.Status.UNPAID,
            lines__item=f"{COMBINED_ITEM}:{invoice.pk}",
            amount_paid=ZERO,
            awaiting_transfer_since__isnull=True,
        )
        .exclude(pk=invoice.pk)
    )
    for combined in holders:
        if _processing_payment(combined) is not None:
            continue
        combined.status = Invoice.Status.CANCELLED
        combined.notes = (
            f"{combined.notes}\nCancelled: invoice #{invoice.number} was {how} on its own; "
            "choose the invoices to pay together again."
        ).strip()
        combined.save(update_fields=["status", "notes"])
        audit_record(
            action="invoice.cancelled",
            actor=None,
            account=combined.account,
            target=combined,
            changes={"reason": f"invoice #{invoice.number} was {how} on its own"},
        )


def _lock_invoice(invoice_id: int, account: Account | None = None) -> Invoice:
    qs = Invoice.objects.select_for_update(of=("self",)).select_related("account__owner")
    if account is not None:
        qs = qs.filter(account=account)
    invoice = qs.filter(pk=invoice_id).first()
    if invoice is None:
        raise BillingError("No such invoice.")
    return invoice


def _lock_account(account_id: int) -> Account:
    return Account.objects.select_for_update().get(pk=account_id)


def _end_awaited_transfers(invoice: Invoice, why: str) -> None:
    Transaction.objects.filter(invoice=invoice, status=Transaction.Status.PENDING).update(
        status=Transaction.Status.FAILED, message=why
    )
    invoice.awaiting_transfer_since = None


def _apply_payment(invoice: Invoice, amount: Decimal) -> None:
    """Record a payment. `awaiting_transfer_since` stays true to the PENDING transfer: a
    partial payment leaves an announced transfer awaited; paying in full ends it."""
    invoice.amount_paid += amount
    fields = ["amount_paid", "awaiting_transfer_since"]
    if invoice.total - invoice.amount_paid <= ZERO:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = timezone.now()
        fields += ["status", "paid_at"]
        _end_awaited_transfers(invoice, "The invoice was paid another way.")
        invoice.save(update_fields=fields)
        _invoice_paid(invoice)
        return
    elif not Transaction.objects.filter(
        invoice=invoice, status=Transaction.Status.PENDING
    ).exists():
        invoice.awaiting_transfer_since = None
    invoice.save(update_fields=fields)


def _send_receipt(invoice: Invoice, tx: Transaction, payer: User | None) -> None:
    # The payer is copied only while their access still covers invoices: someone revoked
    # since they announced a bank transfer is not sent its receipt.
    notify(
        account=invoice.account,
        kind=INVOICE_EMAIL_KIND,
        template="billing/email/payment_receipt",
        context={"invoice": invoice, "transaction": tx, "invoice_url": _invoice_url(invoice)},
        people=[payer] if payer is not None else [],
    )


def _card_expired(exp_month: int, exp_year: int) -> bool:
    today = timezone.localdate()
    return (exp_year, exp_month) < (today.year, today.month)


PROCESSING_MESSAGE = (
    "Your payment is being processed; the invoice will update when the card processor "
    "confirms it. You will not be charged twice."
)
ALREADY_PROCESSING = (
    "A payment for this invoice is already being processed: the invoice will update when "
    "the card processor confirms it."
)
NOT_CHARGED = "The payment could not be processed and you were not charged."


def _replayed(invoice: Invoice, idempotency_key: str) -> PaymentOutcome | None:
    """The outcome of the payment already made with this form (the same form submitted
    again: nothing more is charged), or None for a fresh key. Raises for a used form."""
    previous = Transaction.objects.filter(idempotency_key=idempotency_key).first()
    if previous is None:
        return None
    unsettled = (Transaction.Status.FAILED, Transaction.Status.DECLINED)
    if previous.invoice_id != invoice.pk or previous.status in unsettled:
        raise BillingError("This payment form was already used: reload the page to try again.")
    if previous.status == Transaction.Status.PROCESSING:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, previous)
    if previous.status == Transaction.Status.PENDING:
        return PaymentOutcome("pending", "This payment was already made.", previous)
    status: Literal["paid", "partial"] = (
        "paid" if invoice.status == Invoice.Status.PAID else "partial"
    )
    return PaymentOutcome(status, "This payment was already made.", previous)


def _check_payable(invoice: Invoice, source: PaySource) -> None:
    if invoice.status == Invoice.Status.PAID:
        raise BillingError("This invoice is already paid.")
    if not invoice.is_payable:
        raise BillingError(f"A {invoice.get_status_display().lower()} invoice cannot be paid.")
    if _processing_payment(invoice) is not None:
        raise BillingError(ALREADY_PROCESSING)
    if invoice.awaiting_transfer_since is not None and isinstance(source, PayByBankTransfer):
        raise BillingError("A bank transfer for this invoice is already awaited.")
    if isinstance(source, PayWithCredit) and adds_funds(invoice):
        raise BillingError("Funds added to the credit balance cannot be paid with credit.")


FUNDS_ITEM = "billing.funds"
COMBINED_ITEM = "billing.invoice"


def is_combined(invoice: Invoice) -> bool:
    """Whether the invoice pays several others at once (Pay several at once)."""
    return invoice.lines.filter(item__startswith=f"{COMBINED_ITEM}:").exists()


_is_combined = is_combined


def adds_funds(invoice: Invoice) -> bool:
    """Whether paying the invoice puts money on the credit balance (Add Funds)."""
    return invoice.lines.filter(item=FUNDS_ITEM).exists()


def _processing_payment(invoice: Invoice) -> Transaction | None:
    return Transaction.objects.filter(invoice=invoice, status=Transaction.Status.PROCESSING).first()


def _tx_fields(invoice: Invoice, payer: User, idempotency_key: str) -> dict[str, object]:
    return {
        "invoice": invoice,
        "account": invoice.account,
        "currency": invoice.currency,
        "idempotency_key": idempotency_key,
        "payer": payer,
        "payer_label": f"{payer.get_full_name()} <{payer.email}>"[:300],
    }


def _paid_outcome(invoice: Invoice, tx: Transaction, applied: Decimal) -> PaymentOutcome:
    surplus = tx.amount - applied
    kept = (
        f" The invoice no longer needed {surplus} {tx.currency} of it: that was added to "
        "your credit balance."
        if surplus > 0
        else ""
    )
    if invoice.status == Invoice.Status.PAID:
        return PaymentOutcome("paid", f"Thank you: invoice #{invoice.number} is paid.{kept}", tx)
    return PaymentOutcome(
        "partial",
        f"Thank you: {applied} {invoice.currency} was paid; "
        f"{invoice.balance} {invoice.currency} is still due.{kept}",
        tx,
    )


def invoice_pay(
    *,
    invoice_id: int,
    account: Account,
    payer: User,
    source: PaySource,
    idempotency_key: str,
    apply_credit_first: bool = False,
    return_url: str = "",
    request: HttpRequest | None = None,
) -> PaymentOutcome:
    """Pay the balance of an invoice of `account`.

    Credit and bank transfer call nothing outside: one transaction, holding the invoice
    row lock. A card payment calls the card processor, which never happens inside a
    transaction or under a lock (``core.outside``), so it takes three steps:

    A. one short transaction locks the invoice, validates, and records the payment as
       "processing" with its idempotency key (at most one per invoice: a second payer
       is told a payment is already being processed), then commits;
    B. the processor is asked to charge, with that key (a retry charges at most once);
    C. a second short transaction locks the invoice again and records the answer, once.

    If the answer never comes (a timeout, a crash between B and C), the payment stays
    processing; the customer is told so, and ``payments_reconcile_due`` later asks the
    processor and settles it. The idempotency key (made when the pay page rendered,
    unique among transactions) makes a form submitted twice pay once.

    A card is paid while its holder is on the page (`return_url`, where the processor
    sends the browser back after 3-D Secure): the outcome may be "requires_action", with
    the bank's page to send the browser to; ``card_payment_return`` then settles it.

    `apply_credit_first`: the credit balance pays what it can first (committed on its
    own), and `source` pays the rest; the customer chose this in so many words, so a card
    refused afterwards leaves the credit applied and says so.
    """
    if not IDEMPOTENCY_KEY_RE.match(idempotency_key or ""):
        raise BillingError("This payment form has expired: reload the page and try again.")
    if apply_credit_first and not isinstance(source, PayWithCredit):
        credit = _apply_credit_first(invoice_id, account, payer, idempotency_key, request)
        if credit is not None and credit.status == "paid":
            return credit  # the credit covered the whole balance after all
        outcome = invoice_pay(
            invoice_id=invoice_id,
            account=account,
            payer=payer,
            source=source,
            idempotency_key=idempotency_key,
            return_url=return_url,
            request=request,
        )
        if credit is None or credit.transaction is None:
            return outcome
        applied = f"Your credit of {credit.transaction.amount} {credit.transaction.currency} "
        if outcome.status in ("declined", "failed"):
            return replace(outcome, message=f"{applied}was applied; {outcome.message}")
        return replace(outcome, message=f"{applied}was applied. {outcome.message}")

    if isinstance(source, PayWithCredit | PayByBankTransfer):
        with transaction.atomic():
            invoice = _lock_invoice(invoice_id, account)
            replay = _replayed(invoice, idempotency_key)
            if replay is not None:
                return replay
            _check_payable(invoice, source)
            fields = _tx_fields(invoice, payer, idempotency_key)
            if isinstance(source, PayWithCredit):
                return _pay_with_credit(invoice, payer, fields, request)
            return _announce_transfer(invoice, payer, fields, request)

    # Outside calls before anything is recorded: what the card is, and (for a stored card
    # or one to keep) the processor's customer it belongs to.
    new_card: gateways.CardToken | None = None
    save = False
    if isinstance(source, PayWithNewCard):
        gateway = _new_card_gateway()
        new_card = _card_from_token(gateway, source.token)
        # Only the owner stores cards: a forged "save" from anyone else is ignored.
        save = source.save and may_use_owner_power(
            payer, account, OwnerPower.MANAGE_PAYMENT_METHODS
        )
    else:
        gateway = _gateway_of_stored_card(account, source.payment_method_id)
    customer = _customer(gateway, account) if save or new_card is None else ""
    begun = card_payment_begin(
        invoice_id=invoice_id,
        account=account,
        payer=payer,
        source=source,
        new_card_token=new_card,
        idempotency_key=idempotency_key,
    )
    if isinstance(begun, PaymentOutcome):
        return begun
    tx, gateway, token = begun
    result = _charge(gateway, tx, token, return_url=return_url, customer=customer, save=save)
    if result is None:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    return card_payment_record(
        tx.pk, result, card_to_save=new_card if save else None, request=request
    )


def _apply_credit_first(
    invoice_id: int,
    account: Account,
    payer: User,
    idempotency_key: str,
    request: HttpRequest | None,
) -> PaymentOutcome | None:
    """The credit part of "apply credit, then pay the rest": its outcome, or None when
    this form's credit was applied already (the same form submitted again)."""
    credit_key = f"{idempotency_key[:57]}-credit"
    with transaction.atomic():
        invoice = _lock_invoice(invoice_id, account)
        if _replayed(invoice, idempotency_key) is not None:
            return None  # the form's payment was made: its credit part was applied before
        applied = Transaction.objects.filter(idempotency_key=credit_key).first()
        if applied is not None:
            if applied.invoice_id != invoice.pk:
                raise BillingError(
                    "This payment form was already used: reload the page to try again."
                )
            return None
        _check_payable(invoice, PayWithCredit())
        if _is_combined(invoice):
            raise BillingError(
                "Credit cannot pay part of a combined payment: pay it in full by card or "
                "bank transfer, or pay the invoices one by one."
            )
        return _pay_with_credit(invoice, payer, _tx_fields(invoice, payer, credit_key), request)


def _pay_with_credit(
    invoice: Invoice, payer: User, fields: dict[str, object], request: HttpRequest | None
) -> PaymentOutcome:
    acct = _lock_account(invoice.account_id)
    amount = min(acct.credit_balance, invoice.balance)
    if amount <= 0:
        raise BillingError("There is no credit balance to pay with.")
    if amount < invoice.balance and _is_combined(invoice):
        # Paid in part, it would pay none of its invoices and hold the money meanwhile.
        raise BillingError(
            f"Your credit balance ({acct.credit_balance} {invoice.currency}) does not cover "
            "this combined payment: pay it by card or bank transfer, or pay the invoices "
            "one by one."
        )
    acct.credit_balance -= amount
    acct.save(update_fields=["credit_balance"])
    invoice.account.credit_balance = acct.credit_balance
    entry = CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.USED,
        amount=-amount,
        balance_after=acct.credit_balance,
        reason=f"Payment of invoice #{invoice.number}",
        invoice=invoice,
        actor=payer,
    )
    tx = Transaction.objects.create(
        **fields,
        status=Transaction.Status.SUCCEEDED,
        gateway=gateways.CREDIT,
        amount=amount,
        reference=f"credit-{entry.pk}",
        method_label="Credit balance",
    )
    _apply_payment(invoice, amount)
    _payment_recorded(invoice, tx, actor=payer, request=request)
    return _paid_outcome(invoice, tx, amount)


def _announce_transfer(
    invoice: Invoice, payer: User, fields: dict[str, object], request: HttpRequest | None
) -> PaymentOutcome:
    # Nothing moves at a bank: the invoice waits for staff to see the money arrive.
    amount = invoice.balance
    tx = Transaction.objects.create(
        **fields,
        status=Transaction.Status.PENDING,
        gateway=gateways.BANK_TRANSFER.code,
        amount=amount,
        reference=f"INV-{invoice.number}",
        method_label="Bank transfer",
    )
    invoice.awaiting_transfer_since = timezone.now()
    invoice.save(update_fields=["awaiting_transfer_since"])
    audit_record(
        action="invoice.bank_transfer_announced",
        actor=payer,
        account=invoice.account,
        target=invoice,
        changes={"amount": str(amount)},
        request=request,
    )
    return PaymentOutcome(
        "pending", "Thank you: the invoice is marked as awaiting your bank transfer.", tx
    )


def _new_card_gateway() -> gateways.PaymentGateway:
    gateway = gateways.card_gateway()
    if gateway is None:
        raise BillingError("Card payments are not offered here: pay by credit or bank transfer.")
    return gateway


CARD_UNAVAILABLE = "Card payments are not available right now and nothing was charged; try again."


def _card_from_token(gateway: gateways.PaymentGateway, token: str) -> gateways.CardToken:
    """Ask the card processor what the card the browser gave it is (an outside call)."""
    if not token or len(token) > 100 or not token.isprintable():
        raise BillingError("Enter the card details again: they did not reach the card processor.")
    try:
        # Reading a token changes nothing: safe to retry.
        return outside_call(lambda: gateway.card_from_token(token), retry_uncertain=True)
    except CardRejected as exc:
        raise BillingError(str(exc)) from None
    except OutsideError:
        raise BillingError(
            "The card could not be checked right now and nothing was charged; try again."
        ) from None


def card_for_saving(token: str) -> gateways.CardToken:
    """What the card processor says of the card `token` a payment will keep (asked again
    when the browser returns from the card holder's bank)."""
    return _card_from_token(_new_card_gateway(), token)


def _gateway_of_stored_card(account: Account, payment_method_id: int) -> gateways.PaymentGateway:
    code = (
        PaymentMethod.objects.filter(account=account, pk=payment_method_id)
        .values_list("gateway", flat=True)
        .first()
    )
    if code is None:
        raise BillingError("Choose one of this account's stored cards.")
    try:
        return gateways.get_gateway(code)
    except GatewayError:  # a card from a gateway no longer configured
        raise BillingError("This card can no longer be used: choose another way to pay.") from None


def _customer(gateway: gateways.PaymentGateway, account: Account) -> str:
    """The processor's customer of the account (made at the first need: an outside call)."""
    try:
        return outside_call(lambda: gateway.customer_for(account), retry_uncertain=True)
    except OutsideError:
        raise BillingError(CARD_UNAVAILABLE) from None


def card_payment_begin(
    *,
    invoice_id: int,
    account: Account,
    payer: User,
    source: PayWithStoredMethod | PayWithNewCard,
    new_card_token: gateways.CardToken | None,
    idempotency_key: str,
) -> PaymentOutcome | tuple[Transaction, gateways.PaymentGateway, str]:
    """Step A: record the card payment as processing, committed, before any charge."""
    gateway: gateways.PaymentGateway
    with transaction.atomic():
        invoice = _lock_invoice(invoice_id, account)
        replay = _replayed(invoice, idempotency_key)
        if replay is not None:
            return replay
        _check_payable(invoice, source)
        if isinstance(source, PayWithStoredMethod):
            method = PaymentMethod.objects.filter(
                account=invoice.account, pk=source.payment_method_id
            ).first()
            if method is None:
                raise BillingError("Choose one of this account's stored cards.")
            if _card_expired(method.exp_month, method.exp_year):
                raise BillingError(f"The {method.label} has expired.")
            if method.gateway == gateways.SANDBOX.code and not gateways.is_sandbox():
                # A test card kept from a demonstration moves no money: never a payment
                # once the sandbox no longer takes the cards.
                raise BillingError(
                    f"The {method.label} was a test card and can no longer be used: choose "
                    "another way to pay."
                )
            try:
                gateway = gateways.get_gateway(method.gateway)
            except GatewayError as exc:  # a card from a gateway no longer configured
                raise BillingError(
                    f"The {method.label} can no longer be used: choose another way to pay."
                ) from exc
            token, method_label = method.token, method.label
        else:
            assert new_card_token is not None
            if _card_expired(new_card_token.exp_month, new_card_token.exp_year):
                raise BillingError("This card has expired.")
            gateway, token = _new_card_gateway(), new_card_token.token
            method_label = new_card_token.label
        grace = datetime.timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS)
        try:
            with transaction.atomic():
                tx = Transaction.objects.create(
                    **_tx_fields(invoice, payer, idempotency_key),
                    status=Transaction.Status.PROCESSING,
                    gateway=gateway.code,
                    amount=invoice.balance,
                    method_label=method_label,
                    next_check_at=timezone.now() + grace,
                )
        except IntegrityError:
            # The database's own guard (one processing payment per invoice, one use of
            # a key), for whatever reached it without the invoice lock.
            if _processing_payment(invoice) is not None:
                raise BillingError(ALREADY_PROCESSING) from None
            raise BillingError(
                "This payment form was already used: reload the page to try again."
            ) from None
    return tx, gateway, token


def _charge(
    gateway: gateways.PaymentGateway,
    tx: Transaction,
    token: str | None,
    *,
    return_url: str = "",
    customer: str = "",
    save: bool = False,
) -> ChargeResult | None:
    """Step B: ask the processor to charge, with no transaction open and no lock held.
    Returns its answer, a FAILED result when nothing can have been charged, or None when
    the charge may have been made but no answer came (the payment stays processing)."""
    assert_no_transaction()
    uncertain = False

    def attempt() -> ChargeResult:
        nonlocal uncertain
        assert_no_transaction()
        try:
            return gateway.charge(
                amount=tx.amount,
                currency=tx.currency,
                token=token,
                idempotency_key=tx.idempotency_key,
                description=f"INV-{tx.invoice.number}",
                return_url=return_url,
                customer=customer,
                save_card=save,
            )
        except OutsideUncertain:
            uncertain = True
            raise

    try:
        # The same idempotency key makes a retried charge safe, even after no answer.
        return outside_call(attempt, retry_uncertain=True)
    except OutsideUnavailable as exc:
        if uncertain:  # an earlier attempt may have reached the processor
            return None
        return ChargeResult(ChargeStatus.FAILED, "", str(exc) or "The processor was not reached.")
    except OutsideUncertain:
        return None
    except OutsideRefused as exc:  # GatewayError included: the processor said no
        return ChargeResult(ChargeStatus.FAILED, "", str(exc))


def card_payment_record(
    tx_id: int,
    result: ChargeResult,
    *,
    card_to_save: gateways.CardToken | None = None,
    request: HttpRequest | None = None,
    reconciled: bool = False,
) -> PaymentOutcome:
    """Step C: record the processor's answer about a processing card payment, exactly
    once, whoever learnt it (the request that paid, or the reconciliation job).

    The invoice is locked first, then the transaction re-read under it: the request and
    the worker never both apply a result. A success is recorded even on a payment given
    up on or declined earlier (the processor says the money was taken, so it is never
    lost). If the invoice no longer needs all of it (paid meanwhile by credit or a
    confirmed transfer, or cancelled), the rest goes to the account's credit balance.

    An answer that is not final yet (PENDING, or REQUIRES_ACTION: the card holder must
    authenticate) leaves the payment processing, with the processor's id of it kept as
    its reference, so the return from 3-D Secure, a webhook or the worker settles it."""
    invoice_pk = Transaction.objects.values_list("invoice_id", flat=True).get(pk=tx_id)
    with transaction.atomic():
        invoice = _lock_invoice(invoice_pk)
        tx = (
            Transaction.objects.select_for_update(of=("self",))
            .select_related("payer")
            .get(pk=tx_id)
        )
        if result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
            return _still_processing(tx, result)
        settles_from = [Transaction.Status.PROCESSING]
        if result.status == ChargeStatus.SUCCEEDED:
            settles_from += [Transaction.Status.FAILED, Transaction.Status.DECLINED]
        if tx.status not in settles_from:
            return _settled_outcome(invoice, tx)
        tx.next_check_at = None
        tx.confirmed_at = timezone.now()
        changes: dict[str, object] = {"amount": str(tx.amount), "gateway": tx.gateway}
        if reconciled:
            changes["settled_by"] = "reconciliation"
        if result.status == ChargeStatus.SUCCEEDED:
            tx.status = Transaction.Status.SUCCEEDED
            tx.reference = result.reference[:100]
            applied = min(tx.amount, invoice.balance if invoice.is_payable else ZERO)
            surplus = tx.amount - applied
            tx.message = (
                f"{surplus} {tx.currency} was no longer due and went to the credit balance."
                if surplus > 0
                else ""
            )
            tx.save()
            if applied > 0:
                _apply_payment(invoice, applied)
            if surplus > 0:
                _keep_surplus(invoice, tx, surplus)
            _payment_recorded(invoice, tx, actor=tx.payer, request=request, changes=changes)
            if (
                card_to_save is not None
                and tx.payer is not None
                # only the owner stores cards
                and may_use_owner_power(
                    tx.payer, invoice.account, OwnerPower.MANAGE_PAYMENT_METHODS
                )
            ):
                _store_card(invoice.account, tx.payer, card_to_save, request)
            return _paid_outcome(invoice, tx, applied)
        declined = result.status == ChargeStatus.DECLINED
        tx.status = Transaction.Status.DECLINED if declined else Transaction.Status.FAILED
        if result.reference:  # the processor's id of the refused attempt, for the list
            tx.reference = result.reference[:100]
        tx.message = (result.message or ("The card was declined." if declined else ""))[:300]
        tx.save()
        audit_record(
            action="invoice.payment_declined" if declined else "invoice.payment_failed",
            actor=tx.payer,
            account=invoice.account,
            target=invoice,
            changes={**changes, "transaction": tx.pk, "reason": tx.message},
            request=request,
        )
        if declined:
            return PaymentOutcome("declined", tx.message, tx)
        return PaymentOutcome("failed", _failed_message(tx), tx)


AWAITING_AUTHENTICATION = "Waiting for the card holder to authenticate with their bank."


def _still_processing(tx: Transaction, result: ChargeResult) -> PaymentOutcome:
    """Record what the processor said of a payment it has not decided yet (under the
    invoice lock, in card_payment_record's transaction)."""
    if tx.status != Transaction.Status.PROCESSING:
        return _settled_outcome(tx.invoice, tx)
    if result.reference:
        tx.reference = result.reference[:100]
    awaiting = result.status == ChargeStatus.REQUIRES_ACTION
    tx.message = AWAITING_AUTHENTICATION if awaiting else ""
    tx.save(update_fields=["reference", "message"])
    if awaiting and result.redirect_url:
        return PaymentOutcome(
            "requires_action",
            "Your bank asks you to confirm this payment.",
            tx,
            redirect_url=result.redirect_url,
        )
    return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)


def _settled_outcome(invoice: Invoice, tx: Transaction) -> PaymentOutcome:
    """What became of a payment someone else settled first."""
    if tx.status == Transaction.Status.SUCCEEDED:
        status: Literal["paid", "partial"] = (
            "paid" if invoice.status == Invoice.Status.PAID else "partial"
        )
        return PaymentOutcome(status, "This payment was already recorded.", tx)
    if tx.status == Transaction.Status.DECLINED:
        return PaymentOutcome("declined", tx.message or "The card was declined.", tx)
    return PaymentOutcome("failed", _failed_message(tx), tx)


def _failed_message(tx: Transaction) -> str:
    reason = tx.message.strip()
    if reason and not reason.endswith("."):
        reason += "."
    return " ".join(p for p in (NOT_CHARGED, reason, "Please try again later.") if p)


def _keep_surplus(invoice: Invoice, tx: Transaction, surplus: Decimal) -> None:
    acct = _lock_account(invoice.account_id)
    acct.credit_balance += surplus
    acct.save(update_fields=["credit_balance"])
    invoice.account.credit_balance = acct.credit_balance
    CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.SURPLUS,
        amount=surplus,
        balance_after=acct.credit_balance,
        reason=(
            f"Card payment {tx.reference or tx.pk} for invoice #{invoice.number} was confirmed "
            f"after the invoice no longer needed {surplus} {tx.currency} of it"
        )[:300],
        invoice=invoice,
        actor=tx.payer,
    )


def _payment_recorded(
    invoice: Invoice,
    tx: Transaction,
    *,
    actor: User | None,
    request: HttpRequest | None,
    changes: dict[str, object] | None = None,
) -> None:
    """The audit event and the receipt of a payment, made once: when it is recorded as
    succeeded, by whoever records it."""
    audit_record(
        action="invoice.payment",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={
            "amount": str(tx.amount),
            "gateway": tx.gateway,
            **(changes or {}),
            "transaction": tx.pk,
        },
        request=request,
    )
    _send_receipt(invoice, tx, tx.payer)


PROCESSOR_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_]{1,100}$")


def _payment_of(invoice_id: int, account: Account, reference: str) -> Transaction:
    if not PROCESSOR_REFERENCE_RE.match(reference or ""):
        raise BillingError("This payment is not one of this invoice's: nothing was changed.")
    tx = (
        Transaction.objects.select_related("invoice")
        .filter(
            invoice_id=invoice_id,
            account=account,
            kind=Transaction.Kind.PAYMENT,
            reference=reference,
        )
        .exclude(reference="")
        .order_by("-pk")
        .first()
    )
    if tx is None:
        raise BillingError("This payment is not one of this invoice's: nothing was changed.")
    return tx


def card_payment_return(
    *,
    invoice_id: int,
    account: Account,
    reference: str,
    card_to_save: gateways.CardToken | None = None,
    request: HttpRequest | None = None,
) -> PaymentOutcome:
    """The browser is back from the card holder's bank (3-D Secure): ask the processor
    what became of the payment `reference` of this invoice and record it, once (a
    webhook or the worker may have recorded it first)."""
    tx = _payment_of(invoice_id, account, reference)
    if tx.status != Transaction.Status.PROCESSING:
        if (
            card_to_save is not None
            and tx.status == Transaction.Status.SUCCEEDED
            and not PaymentMethod.objects.filter(account=account, token=card_to_save.token).exists()
        ):
            # Settled first by Stripe's webhook or the worker: the card its payer asked
            # to keep is stored now, once (if the processor really kept it).
            payment_card_keep(tx, request=request)
        return _settled_outcome(tx.invoice, tx)
    gateway = gateways.get_gateway(tx.gateway)
    try:
        result = outside_call(
            lambda: gateway.charge_status(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    if result is None:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    return card_payment_record(tx.pk, result, card_to_save=card_to_save, request=request)


def card_payment_cancel(
    *, invoice_id: int, account: Account, actor: User, request: HttpRequest | None = None
) -> PaymentOutcome:
    """Give up on this invoice's card payment that waits for the card holder to
    authenticate (they left the bank's page): the processor cancels it, or tells us it
    went through after all, which is then recorded as paid."""
    tx = (
        Transaction.objects.select_related("invoice")
        .filter(invoice_id=invoice_id, account=account, status=Transaction.Status.PROCESSING)
        .first()
    )
    if tx is None:
        raise BillingError("No payment of this invoice is waiting any more.")
    if tx.message != AWAITING_AUTHENTICATION or not tx.reference:
        raise BillingError(
            "This payment is with the card processor and cannot be cancelled: the invoice "
            "will update when the processor confirms it."
        )
    gateway = gateways.get_gateway(tx.gateway)
    try:
        result = outside_call(
            lambda: gateway.charge_cancel(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        raise BillingError(
            "The card processor could not be reached, so the payment is still waiting; "
            "try again in a moment."
        ) from None
    if result is None:
        result = ChargeResult(ChargeStatus.FAILED, tx.reference, NEVER_RECEIVED_MESSAGE)
    elif result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        raise BillingError(ALREADY_PROCESSING)
    elif result.status == ChargeStatus.FAILED and not result.message:
        result = replace(result, message="The payment was cancelled.")
    outcome = card_payment_record(tx.pk, result, request=request)
    if outcome.status in ("declined", "failed"):
        audit_record(
            action="invoice.payment_cancelled",
            actor=actor,
            account=account,
            target=tx.invoice,
            changes={"transaction": tx.pk},
            request=request,
        )
    return outcome


# --- a card kept while paying --------------------------------------------------------------


def payment_kept_card(tx: Transaction, *, reference: str = "") -> gateways.CardToken | None:
    """The card the processor kept on the account for later when payment `tx` (its
    intent `reference`, by default the recorded one) succeeded: its payer asked to keep
    it (Stripe: the intent's setup_future_usage) and it is attached to the account's
    customer. None when there is no such card, the gateway keeps none, or the payer may
    not store cards (only the owner does: a forged "save" keeps nothing). An outside
    call: no transaction may be open; raises the outside errors."""
    assert_no_transaction()
    reference = reference or tx.reference
    if tx.kind != Transaction.Kind.PAYMENT or not reference or tx.payer is None:
        return None
    account = tx.account
    if not may_use_owner_power(tx.payer, account, OwnerPower.MANAGE_PAYMENT_METHODS):
        return None
    kept = getattr(_stored_card_gateway(tx.gateway), "charge_kept_card", None)
    if kept is None:  # the sandbox: its card is stored with the payment's answer
        return None
    key = tx.idempotency_key
    card: gateways.CardToken | None = outside_call(
        lambda: kept(account=account, idempotency_key=key, reference=reference),
        retry_uncertain=True,  # reads only
    )
    return card


def payment_kept_card_store(
    tx_id: int, card: gateways.CardToken, *, request: HttpRequest | None = None
) -> PaymentMethod | None:
    """Store `card` (``payment_kept_card``) on the account of payment `tx_id` once it is
    recorded as succeeded, if its payer still may store cards: once, whoever comes first
    (Stripe's webhook, the return page, the worker; one card per account, gateway and
    token). In the caller's transaction (the webhook's event), or its own."""
    with transaction.atomic():
        tx = Transaction.objects.select_related("account", "payer").get(pk=tx_id)
        if (
            tx.status != Transaction.Status.SUCCEEDED
            or tx.payer is None
            or not may_use_owner_power(tx.payer, tx.account, OwnerPower.MANAGE_PAYMENT_METHODS)
        ):
            return None
        return card_store_once(tx.account, tx.payer, tx.gateway, card, request)


def payment_card_keep(
    tx: Transaction, *, request: HttpRequest | None = None
) -> PaymentMethod | None:
    """Both steps, for a payment settled by someone other than Stripe's webhook (which
    does them around its event's transaction). If the processor cannot say now, nothing
    is stored here: its payment_intent.succeeded event stores the card."""
    try:
        card = payment_kept_card(tx)
    except OutsideError:
        logger.warning("The card kept by payment %s could not be read: not stored now", tx.pk)
        return None
    return payment_kept_card_store(tx.pk, card, request=request) if card is not None else None


# --- reconciling card payments -----------------------------------------------------------


def _check_backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(60 * 2**attempts, 3600))


GAVE_UP_MESSAGE = (
    "The card processor never confirmed this payment, so it is treated as not made. "
    "If your card was charged, contact us: the money will be credited or refunded."
)
NEVER_RECEIVED_MESSAGE = "The payment never reached the card processor: you were not charged."


def payment_reconcile(tx: Transaction, *, now: datetime.datetime | None = None) -> str:
    """Ask the processor about one processing payment (no transaction open) and settle
    it: "settled" (its answer recorded), "failed" (never received, or given up on after
    PENDING_CHANGE_GIVE_UP_HOURS) or "processing" (still unknown: asked again later)."""
    assert_no_transaction()
    now_ = now or timezone.now()
    result: ChargeResult | None
    try:
        gateway = gateways.get_gateway(tx.gateway)
        result = outside_call(
            lambda: gateway.charge_status(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
        known = True
    except OutsideError:  # not reached, no answer, or no such gateway any more
        result, known = None, False
    if known and result is None:
        result = ChargeResult(ChargeStatus.FAILED, "", NEVER_RECEIVED_MESSAGE)
    elif result is None or result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        give_up_at = tx.created_at + datetime.timedelta(hours=settings.PENDING_CHANGE_GIVE_UP_HOURS)
        if now_ < give_up_at:
            if result is not None and result.reference and not tx.reference:
                card_payment_record(tx.pk, result, reconciled=True)  # keep the processor's id
            return "processing"
        # What was recorded when the bank asked for 3-D Secure counts too: a processor
        # may call such a payment merely pending when asked (Stripe's driver does).
        waiting = tx.message == AWAITING_AUTHENTICATION or (
            result is not None and result.status == ChargeStatus.REQUIRES_ACTION
        )
        result = _give_up(tx, waiting) or ChargeResult(ChargeStatus.FAILED, "", GAVE_UP_MESSAGE)
    outcome = card_payment_record(tx.pk, result, reconciled=True)
    if result.status == ChargeStatus.SUCCEEDED and outcome.status in ("paid", "partial"):
        # The answer to the paying request was lost: the card its payer asked to keep
        # (if any) is stored now, as the return page would have.
        payment_card_keep(Transaction.objects.select_related("account", "payer").get(pk=tx.pk))
    return "failed" if outcome.status == "failed" else "settled"


def _give_up(tx: Transaction, waiting_for_customer: bool) -> ChargeResult | None:
    """A payment abandoned while its card holder was asked to authenticate is cancelled
    at the processor, whose final word (a success included) is then recorded; None when
    there is nothing to cancel or the processor cannot say."""
    if not waiting_for_customer or not tx.reference:
        return None
    try:
        gateway = gateways.get_gateway(tx.gateway)
        final = outside_call(
            lambda: gateway.charge_cancel(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        return None
    if final is None or final.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        return None
    return final


def processing_transactions_settle_due(
    *,
    kind: str,
    settle: Callable[[Transaction, datetime.datetime], str],
    noun: str,
    now: datetime.datetime | None = None,
    limit: int = 50,
) -> str:
    """Settle transactions of `kind` left processing past their next check, with
    `settle` (which asks the processor with no transaction open and answers "settled",
    "failed" or "processing"). Each is claimed first by moving its next check forward,
    so two workers never ask about the same one at once; recording is exactly-once
    anyway. Returns a short summary naming `noun`, "" when nothing was due."""
    now_ = now or timezone.now()
    due = list(
        Transaction.objects.filter(
            kind=kind, status=Transaction.Status.PROCESSING, next_check_at__lte=now_
        )
        .order_by("next_check_at")
        .values_list("pk", "check_attempts")[:limit]
    )
    counts = {"settled": 0, "failed": 0, "processing": 0}
    for pk, attempts in due:
        claimed = Transaction.objects.filter(
            pk=pk, status=Transaction.Status.PROCESSING, check_attempts=attempts
        ).update(check_attempts=attempts + 1, next_check_at=now_ + _check_backoff(attempts))
        if not claimed:
            continue  # another worker took it, or it was settled meanwhile
        tx = Transaction.objects.select_related("invoice", "refund_of").get(pk=pk)
        try:
            counts[settle(tx, now_)] += 1
        except Exception:  # one bad transaction must not stop the others: asked again later
            logger.exception("Reconciling %s %s failed", noun, pk)
            counts["processing"] += 1
    if not any(counts.values()):
        return ""
    return (
        f"{noun}s: {counts['settled']} settled, {counts['failed']} failed, "
        f"{counts['processing']} still processing"
    )


def payments_reconcile_due(*, now: datetime.datetime | None = None, limit: int = 50) -> str:
    """The worker's job: settle card payments left processing past their grace period
    (PENDING_CHANGE_GRACE_SECONDS: the request that made them has finished or died);
    settling is exactly-once (see ``card_payment_record``). Refunds:
    ``refunds.refunds_reconcile_due``."""
    return processing_transactions_settle_due(
        kind=Transaction.Kind.PAYMENT,
        settle=lambda tx, at: payment_reconcile(tx, now=at),
        noun="card payment",
        now=now,
        limit=limit,
    )


# --- back office ------------------------------------------------------------------------


@transaction.atomic
def bank_transfer_confirm(
    *, invoice_id: int, actor: User, request: HttpRequest | None = None
) -> Transaction:
    """Staff saw the money arrive: the awaited transfer becomes a payment."""
    invoice = _lock_invoice(invoice_id)
    tx = (
        Transaction.objects.select_for_update()
        .filter(invoice=invoice, status=Transaction.Status.PENDING)
        .order_by("created_at", "pk")
        .first()
    )
    if tx is None:
        raise BillingError(f"Invoice #{invoice.number} awaits no bank transfer.")
    if not invoice.is_payable:
        raise BillingError(f"Invoice #{invoice.number} has nothing left to pay.")
    tx.amount = min(tx.amount, invoice.balance)
    tx.status = Transaction.Status.SUCCEEDED
    tx.confirmed_at = timezone.now()
    tx.save(update_fields=["amount", "status", "confirmed_at"])
    _apply_payment(invoice, tx.amount)
    audit_record(
        action="invoice.bank_transfer_confirmed",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={"amount": str(tx.amount), "transaction": tx.pk},
        request=request,
        is_staff_action=True,
    )
    _send_receipt(invoice, tx, tx.payer)
    return tx


@transaction.atomic
def invoice_cancel(*, invoice_id: int, actor: User, request: HttpRequest | None = None) -> Invoice:
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.UNPAID:
        raise BillingError(
            f"Invoice #{invoice.number} is {invoice.status}: it cannot be cancelled."
        )
    if invoice.amount_paid > 0:
        raise BillingError(f"Invoice #{invoice.number} is partly paid: refund it instead.")
    if _processing_payment(invoice) is not None:
        raise BillingError(
            f"A card payment of invoice #{invoice.number} is being processed: wait until the "
            "card processor confirms or refuses it."
        )
    _end_awaited_transfers(invoice, "The invoice was cancelled.")
    invoice.status = Invoice.Status.CANCELLED
    invoice.save(update_fields=["status", "awaiting_transfer_since"])
    _release_combined(invoice, "cancelled")
    audit_record(
        action="invoice.cancelled",
        actor=actor,
        account=invoice.account,
        target=invoice,
        request=request,
        is_staff_action=True,
    )
    return invoice


@transaction.atomic
def invoice_refund(
    *, invoice_id: int, actor: User, to_credit: bool, request: HttpRequest | None = None
) -> Transaction:
    """Refund what was paid and not refunded yet (card refunds through the processor,
    ``refunds.card_refund``, may have returned part of it): to the account's credit
    balance, or marked as returned outside the client area."""
    from .refunds import invoice_refundable, refund_in_flight

    invoice = _lock_invoice(invoice_id)
    if invoice.status not in (Invoice.Status.PAID, Invoice.Status.UNPAID) or (
        invoice.amount_paid <= 0
    ):
        raise BillingError(f"Invoice #{invoice.number} has no payment to refund.")
    if refund_in_flight(invoice):
        raise BillingError(
            f"A card refund of invoice #{invoice.number} is still being processed: wait "
            "until the card processor confirms it."
        )
    amount = invoice_refundable(invoice)
    if amount <= 0:
        raise BillingError(f"Invoice #{invoice.number} was refunded already.")
    tx = Transaction.objects.create(
        invoice=invoice,
        account=invoice.account,
        kind=Transaction.Kind.REFUND,
        status=Transaction.Status.SUCCEEDED,
        gateway=gateways.CREDIT if to_credit else "manual",
        amount=amount,
        currency=invoice.currency,
        idempotency_key=f"refund-{uuid.uuid4().hex}",
        payer=None,
        payer_label=f"staff: {actor.get_full_name()}"[:300],
        method_label="Credit balance" if to_credit else "Returned outside the client area",
        confirmed_at=timezone.now(),
    )
    if to_credit:
        acct = _lock_account(invoice.account_id)
        acct.credit_balance += amount
        acct.save(update_fields=["credit_balance"])
        CreditEntry.objects.create(
            account=acct,
            kind=CreditEntry.Kind.REFUND,
            amount=amount,
            balance_after=acct.credit_balance,
            reason=f"Refund of invoice #{invoice.number}",
            invoice=invoice,
            actor=actor,
        )
    _end_awaited_transfers(invoice, "The invoice was refunded.")
    invoice.status = Invoice.Status.REFUNDED
    invoice.save(update_fields=["status", "awaiting_transfer_since"])
    audit_record(
        action="invoice.refunded",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={"amount": str(amount), "to_credit": to_credit},
        request=request,
        is_staff_action=True,
    )
    return tx


@transaction.atomic
def credit_add(
    *,
    account_id: int,
    amount: Decimal,
    reason: str,
    actor: User,
    request: HttpRequest | None = None,
) -> CreditEntry:
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise BillingError("Enter a positive amount in whole cents.")
    if not reason.strip():
        raise BillingError("Say why the credit is added.")
    acct = _lock_account(account_id)
    acct.credit_balance += amount
    acct.save(update_fields=["credit_balance"])
    entry = CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.ADDED,
        amount=amount,
        balance_after=acct.credit_balance,
        reason=reason.strip(),
        actor=actor,
    )
    audit_record(
        action="credit.added",
        actor=actor,
        account=acct,
        target=entry,
        changes={"amount": str(amount), "balance": str(acct.credit_balance)},
        request=request,
        is_staff_action=bool(actor.is_staff),
    )
    return entry


# --- payment methods (owner only) --------------------------------------------------------


def _store_card(
    account: Account, actor: User, token: gateways.CardToken, request: HttpRequest | None
) -> PaymentMethod:
    return card_store_once(account, actor, _new_card_gateway().code, token, request)


def card_store_once(
    account: Account,
    actor: User | None,
    gateway_code: str,
    token: gateways.CardToken,
    request: HttpRequest | None = None,
) -> PaymentMethod:
    """Store a card on the account once: a card already stored (the same gateway's
    token: Stripe's PaymentMethod id) is returned as it is, whoever stored it first (the
    card page's return, or Stripe's setup_intent.succeeded webhook). Call it inside a
    transaction."""
    fields = {"account": account, "gateway": gateway_code, "token": token.token}
    existing = PaymentMethod.objects.filter(**fields).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            method = PaymentMethod.objects.create(
                **fields,
                brand=token.brand,
                last4=token.last4,
                exp_month=token.exp_month,
                exp_year=token.exp_year,
                created_by=actor,
            )
    except IntegrityError:  # stored at this very moment by the other path
        return PaymentMethod.objects.get(**fields)
    audit_record(
        action="payment_method.added",
        actor=actor,
        account=account,
        target=method,
        target_label=method.label,
        request=request,
    )
    return method


def _require_owner(account: Account, actor: User) -> None:
    # The views are @owner_only already; the service refuses too, whoever calls it.
    if not may_use_owner_power(actor, account, OwnerPower.MANAGE_PAYMENT_METHODS):
        raise BillingError("Only the account owner can manage stored payment methods.")


@dataclass(frozen=True)
class CardSaved:
    """The answer to saving a card: the stored card, or the bank's page to send its
    holder to first (3-D Secure), after which ``payment_method_save_return`` stores it."""

    method: PaymentMethod | None
    redirect_url: str = ""
    reference: str = ""


def payment_method_add(
    *,
    account: Account,
    actor: User,
    token: str,
    return_url: str = "",
    request: HttpRequest | None = None,
) -> CardSaved:
    """Store the card the browser handed to the card processor as `token` (owner only).
    The processor keeps it on the account's customer for later payments; its holder may
    have to authenticate with their bank first."""
    _require_owner(account, actor)
    gateway = _new_card_gateway()
    card = _card_from_token(gateway, token)
    if _card_expired(card.exp_month, card.exp_year):
        raise BillingError("This card has expired.")
    customer = _customer(gateway, account)
    try:
        saved = outside_call(
            lambda: gateway.card_save(
                token=card.token,
                customer=customer,
                idempotency_key=f"save-{account.pk}-{card.token}"[:255],
                return_url=return_url,
            ),
            retry_uncertain=True,  # the same key: a retried save saves once
        )
    except CardRejected as exc:
        raise BillingError(str(exc)) from None
    except OutsideRefused as exc:
        raise BillingError(f"The card was not saved: {exc}") from None
    except OutsideError:
        raise BillingError("The card could not be saved right now; try again.") from None
    if saved.card is None:
        return CardSaved(None, redirect_url=saved.redirect_url, reference=saved.reference)
    method = payment_method_store(account=account, actor=actor, token=saved.card, request=request)
    return CardSaved(method)


def payment_method_save_return(
    *, account: Account, actor: User, reference: str, request: HttpRequest | None = None
) -> PaymentMethod:
    """The owner is back from their bank after saving a card: store it if it was saved."""
    _require_owner(account, actor)
    gateway = _new_card_gateway()
    if not reference or len(reference) > 100 or not reference.isprintable():
        raise BillingError("The card was not saved: add it again.")
    try:
        saved = outside_call(lambda: gateway.card_save_status(reference), retry_uncertain=True)
    except OutsideError:
        raise BillingError(
            "The card processor could not be reached to confirm the card; try again."
        ) from None
    if saved is None or saved.card is None:
        raise BillingError("Your bank did not confirm the card, so it was not saved.")
    return payment_method_store(account=account, actor=actor, token=saved.card, request=request)


@transaction.atomic
def payment_method_store(
    *,
    account: Account,
    actor: User,
    token: gateways.CardToken,
    request: HttpRequest | None = None,
) -> PaymentMethod:
    """Store a card the card gateway has already tokenized (in the browser, or by
    ``payment_method_add``): its token and what may be shown, nothing more. The same
    card token is stored once (a webhook and the browser's return may both bring it)."""
    _require_owner(account, actor)
    existing = PaymentMethod.objects.filter(account=account, token=token.token).first()
    if existing is not None:
        return existing
    return _store_card(account, actor, token, request)


def _stored_card_gateway(code: str) -> gateways.PaymentGateway | None:
    """The gateway that holds cards stored with `code`, or None when nothing outside
    holds them (the sandbox keeps nothing; a gateway no longer configured)."""
    try:
        return gateways.get_gateway(code)
    except GatewayError:
        if code == "stripe":  # Stripe configured by its settings, not (yet) as a gateway
            from .stripe_gateway import stripe_gateway

            return stripe_gateway()
        return None


CARD_NOT_REMOVED = (
    "The {label} could not be removed: the card processor could not be reached, so it "
    "still holds the card. Nothing was changed; try again in a few minutes."
)


def payment_method_remove(
    *,
    account: Account,
    actor: User,
    payment_method_id: int,
    request: HttpRequest | None = None,
) -> None:
    """Remove a stored card (owner only): first at the processor that holds it (Stripe
    detaches it from the account's customer), with no transaction open, then here. If
    the processor cannot be reached, nothing is removed and the owner is told so; a card
    the processor no longer holds (already detached) is simply removed here."""
    _require_owner(account, actor)
    method = PaymentMethod.objects.filter(account=account, pk=payment_method_id).first()
    if method is None:
        raise BillingError("No such payment method.")
    gateway = _stored_card_gateway(method.gateway)
    forget = getattr(gateway, "card_forget", None)
    if forget is not None:
        token = method.token
        try:
            # Detaching twice is harmless: safe to retry after an unanswered attempt.
            outside_call(lambda: forget(token), retry_uncertain=True)
        except OutsideError:
            logger.warning("Stored card %s not removed: its gateway was not reached", method.pk)
            raise BillingError(CARD_NOT_REMOVED.format(label=method.label)) from None
    with transaction.atomic():
        _payment_method_delete(account, actor, payment_method_id, request)


def _payment_method_delete(
    account: Account, actor: User, payment_method_id: int, request: HttpRequest | None
) -> None:
    method = (
        PaymentMethod.objects.select_for_update()
        .filter(account=account, pk=payment_method_id)
        .first()
    )
    if method is None:
        raise BillingError("No such payment method.")
    label = method.label
    audit_record(
        action="payment_method.removed",
        actor=actor,
        account=account,
        target=method,
        target_label=label,
        request=request,
    )
    method.delete()
