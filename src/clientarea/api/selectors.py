"""Reads of the API Tokens page."""

from __future__ import annotations

from django.db.models import QuerySet

from clientarea.accounts.policy import Access

from .models import ApiToken


def token_list_for(*, access: Access) -> QuerySet[ApiToken]:
    """The tokens a person sees on the account: the owner every token (whose, what it
    carries, last use), anyone else their own."""
    tokens = ApiToken.objects.filter(account=access.account).select_related("created_by")
    if not access.is_owner:
        tokens = tokens.filter(created_by=access.user)
    return tokens.order_by("-created_at", "-id")
