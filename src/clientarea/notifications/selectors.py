"""Reads of the outbox that views share."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from clientarea.accounts.permissions import EmailKind
from clientarea.accounts.policy import Access
from clientarea.accounts.scope import scoped_email_kinds

from .models import OutboxEmail


def email_history_for(access: Access) -> QuerySet[OutboxEmail]:
    """The account's emails this person may read: the kinds their grant covers (the
    owner's security notices included), and personal emails addressed to them. Anything
    else is not listed, and its page is a 404 like another account's email.

    A person limited to chosen services and domains reads product and domain emails only
    about those items (one `IN` per kind, whatever the scope's size), and support emails
    only when sent to them."""
    kinds = access.email_kinds
    per_item = kinds & scoped_email_kinds() if access.scope is not None else frozenset()
    # Support emails: a scoped person reads those sent to them (their own tickets), not
    # the replies to tickets about items outside their scope.
    own_only = kinds & {EmailKind.SUPPORT.value} if access.scope is not None else frozenset()
    readable = Q(kind__in=sorted(kinds - per_item - own_only)) | Q(
        kind=EmailKind.PERSONAL.value, recipient_user=access.user
    )
    if access.scope is not None:
        about = Q(pk__in=[])
        for kind, ids in sorted(access.scope.items()):
            if ids:
                about |= Q(about_kind=kind, about_id__in=sorted(ids))
        if per_item:
            readable |= Q(kind__in=sorted(per_item)) & about
        if own_only:
            # Sent to them, and about no item or one of their scope: a ticket they opened
            # about an item since taken out of their scope (or, for a scoped token, its
            # creator's ticket about another item) is not theirs to read.
            readable |= Q(kind__in=sorted(own_only), recipient_user=access.user) & (
                Q(about_kind="") | about
            )
    # Notes to the provider's staff are never the account's to read (they carry no
    # account either: this is the second lock).
    return (
        OutboxEmail.objects.filter(readable, account=access.account)
        .exclude(audience=OutboxEmail.Audience.STAFF)
        .order_by("-created_at", "-pk")
    )
