"""The project's URLs plus probe views that run no query and note how many queries the
request had run when it reached them: the cost of everything before the view (session,
user, access, the declared rule), for ``test_queries_before_view``."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, AccountRequest, account_member, requires
from clientarea.api.access import token_rule
from config.urls import urlpatterns as project_urlpatterns

# How many queries the connection had logged when each probe was reached.
SEEN: list[int] = []


def _note() -> None:
    SEEN.append(len(connection.queries_log))


def _described(access: Access) -> JsonResponse:
    """The request's access as the middleware built it (no query)."""
    scope = access.scope
    return JsonResponse(
        {
            "account": access.account.pk,
            "owner": access.is_owner,
            "permissions": sorted(access.permissions),
            "scope": None if scope is None else {k: sorted(v) for k, v in scope.items()},
        }
    )


@account_member
def probe_page(request: AccountRequest) -> HttpResponse:
    _note()
    return _described(request.access)


@requires(Perm.PRODUCTS)
def probe_products_page(request: AccountRequest) -> HttpResponse:
    _note()
    return _described(request.access)


class ProbeApi(APIView):
    access_rule = token_rule(Perm.INVOICES)

    def get(self, request: Any) -> Response:
        _note()
        return Response({"ok": True})


urlpatterns = [
    path("probe/page/", probe_page),
    path("probe/products/", probe_products_page),
    path("api/v1/probe/", ProbeApi.as_view()),
    *project_urlpatterns,
]
