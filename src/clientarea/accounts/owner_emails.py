"""The owner's own emails: which kinds of the account's email its owner receives.

The owner chooses, as they choose for a secondary contact, among the account's news
(invoices, support, products & services, domains). Security notices and personal emails
(their access, their login) always go, and so do general notices, which carry changes to
the account's ownership. The choice is the owner's, so it is cleared when the account
changes hands. The notification layer asks ``owner_receives`` when it queues an email to
the owner and the worker asks it again just before sending: that question, and the kinds
an owner may turn off, are the policy's (``accounts.policy``), which the notification
layer may import (it may not import this module: its services are above notifications').
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import transaction
from django.http import HttpRequest

from clientarea.audit.services import audit_record

from .models import Account, User
from .permissions import EmailKind, OwnerPower
from .policy import OWNER_CHOOSABLE_KINDS, may_use_owner_power, owner_kinds_off
from .policy import owner_receives as owner_receives  # still importable from here
from .signals import ownership_transferred

# What always goes, in words for the page.
ALWAYS_SENT = (
    "Security notices (a product password revealed, someone joining, closing the account)",
    "Emails about your own login and access",
    "General notices (announcements, changes to the account's ownership)",
)


class OwnerEmailError(Exception):
    """The change cannot be made, with a reason the user should read."""


def owner_email_kinds_set(
    *, account: Account, actor: User, kinds: list[str], request: HttpRequest | None = None
) -> Account:
    """The owner chooses the kinds they receive (`kinds`: those to receive, among the
    choosable ones); every other choosable kind is turned off."""
    if not may_use_owner_power(actor, account, OwnerPower.MANAGE_USERS):
        raise OwnerEmailError("Only the account owner can choose the owner's emails.")
    unknown = set(kinds) - set(OWNER_CHOOSABLE_KINDS)
    if unknown:
        raise OwnerEmailError("Choose among the kinds of email listed.")
    off = [k for k in OWNER_CHOOSABLE_KINDS if k not in kinds]
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        before = sorted(owner_kinds_off(locked))
        if before != sorted(off):
            locked.owner_email_kinds_off = off
            locked.save(update_fields=["owner_email_kinds_off"])
            audit_record(
                action="account.owner_emails_changed",
                actor=actor,
                account=locked,
                target=locked,
                changes={"emails turned off": [", ".join(before), ", ".join(sorted(off))]},
                request=request,
            )
    account.owner_email_kinds_off = off
    return account


def _clear_on_transfer(sender: Any, account: Account, **kwargs: Any) -> None:
    """A new owner starts with every email: the choice was the former owner's."""
    Account.objects.filter(pk=account.pk).update(owner_email_kinds_off=[])
    account.owner_email_kinds_off = []


def connect() -> None:
    ownership_transferred.connect(_clear_on_transfer, dispatch_uid="accounts.owner_emails")


class OwnerEmailsForm(forms.Form):
    kinds = forms.MultipleChoiceField(
        label="Emails you receive",
        choices=[(k, label) for k, label in EmailKind.choices if k in OWNER_CHOOSABLE_KINDS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Untick a kind to stop receiving it. It stays readable in Email History.",
    )
