"""An account's Customer at Stripe: made once, the first time a card is to be kept, and
reused after (stored cards belong to it).

Making it is an outside call, so it follows the rule of ``core.outside``: the customer is
created at Stripe with no transaction open, then recorded in a short transaction of its
own. Two requests that both find no customer both ask Stripe; the creation's idempotency
key is derived from the account (``stripe_gateway._customer_key``), so Stripe answers both
with the same customer, and the database's unique constraint (one per account and mode)
lets one record it while the other re-reads what was recorded: every caller gets the one
recorded id. Should Stripe make two (the owner's name or email changed between the two
calls), the second stays unused at Stripe, never recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from clientarea.core.outside import assert_no_transaction, outside_call

from .models import StripeCustomer

if TYPE_CHECKING:
    from clientarea.accounts.models import Account

    from .stripe_gateway import StripeGateway


def live_key(secret_key: str) -> bool:
    """Whether a Stripe API key is a live-mode one (sk_live_..., rk_live_...)."""
    return secret_key.startswith(("sk_live_", "rk_live_"))


def stored_customer(account: Account, *, livemode: bool) -> str:
    """The account's recorded customer id in that mode, or ""."""
    found = (
        StripeCustomer.objects.filter(account=account, livemode=livemode)
        .values_list("customer_id", flat=True)
        .first()
    )
    return found or ""


def customer_for(account: Account, gateway: StripeGateway) -> str:
    """The id (cus_...) of `account`'s customer at Stripe: the recorded one, or one made
    now and recorded. Raises the outside errors of ``customer_create`` (nothing recorded
    then). Never call it inside a transaction."""
    assert_no_transaction()
    livemode = gateway.livemode
    found = stored_customer(account, livemode=livemode)
    if found:
        return found
    owner = account.owner
    # Creating is idempotent (the key is derived from the account): safe to retry even
    # after an unanswered attempt.
    customer_id = outside_call(
        lambda: gateway.customer_create(
            account_id=account.pk, email=owner.email, name=account.display_name
        ),
        retry_uncertain=True,
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(
                account=account, customer_id=customer_id, livemode=livemode
            )
    except IntegrityError:
        pass  # another request recorded the account's customer first: that one is used
    return StripeCustomer.objects.get(account=account, livemode=livemode).customer_id
