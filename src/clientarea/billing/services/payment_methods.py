"""Stored cards (owner only): added (with their holder's bank confirming them, if it
asks), stored once whoever brings them, and removed at the processor first."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from clientarea.accounts.models import Account, User
from clientarea.accounts.policy import Access
from clientarea.audit.services import audit_record
from clientarea.core.outside import OutsideError, OutsideRefused, outside_call

from .. import gateways
from ..gateways import CardRejected
from ..models import PaymentMethod
from ._common import (
    _card_expired,
    _card_from_token,
    _customer,
    _new_card_gateway,
    _owner_access,
    _stored_card_gateway,
)
from .outcomes import BillingError

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class CardSaved:
    """The answer to saving a card: the stored card, or the bank's page to send its
    holder to first (3-D Secure), after which ``payment_method_save_return`` stores it."""

    method: PaymentMethod | None
    redirect_url: str = ""
    reference: str = ""


def payment_method_add(
    *,
    access: Access,
    token: str,
    return_url: str = "",
    request: HttpRequest | None = None,
) -> CardSaved:
    """Store the card the browser handed to the card processor as `token` (owner only).
    The processor keeps it on the account's customer for later payments; its holder may
    have to authenticate with their bank first."""
    current = _owner_access(access)
    account = current.account
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
    method = payment_method_store(access=current, token=saved.card, request=request)
    return CardSaved(method)


def payment_method_save_return(
    *, access: Access, reference: str, request: HttpRequest | None = None
) -> PaymentMethod:
    """The owner is back from their bank after saving a card: store it if it was saved."""
    current = _owner_access(access)
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
    return payment_method_store(access=current, token=saved.card, request=request)


@transaction.atomic
def payment_method_store(
    *,
    access: Access,
    token: gateways.CardToken,
    request: HttpRequest | None = None,
) -> PaymentMethod:
    """Store a card the card gateway has already tokenized (in the browser, or by
    ``payment_method_add``): its token and what may be shown, nothing more. The same
    card token is stored once (a webhook and the browser's return may both bring it)."""
    current = _owner_access(access)
    account, actor = current.account, current.user
    existing = PaymentMethod.objects.filter(account=account, token=token.token).first()
    if existing is not None:
        return existing
    return _store_card(account, actor, token, request)


CARD_NOT_REMOVED = (
    "The {label} could not be removed: the card processor could not be reached, so it "
    "still holds the card. Nothing was changed; try again in a few minutes."
)


def payment_method_remove(
    *,
    access: Access,
    payment_method_id: int,
    request: HttpRequest | None = None,
) -> None:
    """Remove a stored card (owner only): first at the processor that holds it (Stripe
    detaches it from the account's customer), with no transaction open, then here. If
    the processor cannot be reached, nothing is removed and the owner is told so; a card
    the processor no longer holds (already detached) is simply removed here."""
    current = _owner_access(access)
    account, actor = current.account, current.user
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
