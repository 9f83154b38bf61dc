"""Reads of the outbox that views share."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from clientarea.accounts.permissions import EmailKind
from clientarea.accounts.policy import Access

from .models import OutboxEmail


def email_history_for(access: Access) -> QuerySet[OutboxEmail]:
    """The account's emails this person may read: the kinds their grant covers (the
    owner's security notices included), and personal emails addressed to them. Anything
    else is not listed, and its page is a 404 like another account's email."""
    readable = Q(kind__in=sorted(access.email_kinds)) | Q(
        kind=EmailKind.PERSONAL, recipient_user=access.user
    )
    return OutboxEmail.objects.filter(readable, account=access.account).order_by(
        "-created_at", "-pk"
    )
