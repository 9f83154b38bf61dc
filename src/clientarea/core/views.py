from django.http import HttpResponse
from django.shortcuts import render

from clientarea.accounts.policy import AccountRequest, account_member

from .registry import TILES


@account_member
def dashboard(request: AccountRequest) -> HttpResponse:
    access = request.access
    tiles = [
        {"label": t.label, "url_name": t.url_name, "count": t.count(access)}
        for t in TILES
        if access.has(t.permission)
    ]
    return render(request, "core/dashboard.html", {"tiles": tiles})
