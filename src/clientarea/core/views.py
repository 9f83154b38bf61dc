from django.http import HttpResponse
from django.shortcuts import render

from clientarea.accounts.policy import Access, AccountRequest, account_member

from .registry import ATTENTION_PROVIDERS, TILES, AttentionItem


def attention_items_for(access: Access) -> list[AttentionItem]:
    """What needs this person's attention on this account: each provider whose permission
    the access holds, computed for that access (its resource scope included)."""
    items: list[AttentionItem] = []
    for provider in ATTENTION_PROVIDERS:
        if provider.permission is None or access.has(provider.permission):
            items.extend(provider.items(access))
    return items


@account_member
def dashboard(request: AccountRequest) -> HttpResponse:
    access = request.access
    tiles = [
        {"label": t.label, "url_name": t.url_name, "count": t.count(access)}
        for t in TILES
        if access.has(t.permission)
    ]
    return render(
        request,
        "core/dashboard.html",
        {"tiles": tiles, "attention": attention_items_for(access)},
    )
