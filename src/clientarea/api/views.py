"""The API's endpoints (``/api/v1/``). Each declares its rule (``access.token_rule``),
reads through the same selectors and the same object lookups as the pages
(``account_object_or_404``: another account's object is a 404), and answers only what
the token's access, computed for this request, reaches."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import account_object_or_404, public
from clientarea.accounts.scope import SCOPE_KINDS
from clientarea.billing import selectors as billing_selectors
from clientarea.billing.models import Invoice

from .access import token_access, token_rule
from .pagination import NumberCursorPagination
from .serializers import (
    AccountSerializer,
    InvoiceDetailSerializer,
    InvoiceFilter,
    InvoiceSerializer,
)
from .services import TokenAccess

BIGINT_MAX = 2**63 - 1

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "token_expired"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def _problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=PROBLEM, description=description)


COMMON_ERRORS = {
    401: _problem("No token, or a dead one (revoked, expired, creator's access ended)."),
    429: _problem("Rate limit reached: see Retry-After."),
}


class AccountView(APIView):
    access_rule = token_rule()

    @extend_schema(
        operation_id="account_read",
        summary="The token's account",
        responses={200: AccountSerializer, **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        account = access.account
        found = request.auth
        assert isinstance(found, TokenAccess)
        scope = access.scope
        data: dict[str, Any] = {
            "id": account.pk,
            "name": account.display_name,
            "currency": account.currency,
            "credit_balance": account.credit_balance if access.has(Perm.INVOICES) else None,
            "profile": (
                {
                    "company_name": account.company_name,
                    "address_line1": account.address_line1,
                    "address_line2": account.address_line2,
                    "city": account.city,
                    "postcode": account.postcode,
                    "country": str(account.country),
                    "tax_number": account.tax_number,
                }
                if access.has(Perm.PROFILE)
                else None
            ),
            "token": {
                "name": found.token.name,
                "expires_at": found.token.expires_at,
                "permissions": sorted(access.permissions),
                "scope": None
                if scope is None
                else {kind: sorted(scope.get(kind, ())) for kind in SCOPE_KINDS},
            },
        }
        return Response(AccountSerializer(data).data)


class InvoiceListView(APIView):
    access_rule = token_rule(Perm.INVOICES)
    pagination_class = NumberCursorPagination

    @extend_schema(
        operation_id="invoices_list",
        summary="The account's invoices, newest first",
        parameters=[InvoiceFilter],
        responses={
            200: InvoiceSerializer(many=True),
            400: _problem("A bad filter, page size or cursor."),
            403: _problem("The token does not carry invoices."),
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        query = InvoiceFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        invoices = billing_selectors.invoice_list_for(
            account=access.account, status=query.validated_data.get("status")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(invoices, request, view=self)
        return paginator.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoiceDetailView(APIView):
    access_rule = token_rule(Perm.INVOICES)

    @extend_schema(
        operation_id="invoices_read",
        summary="One invoice, with its lines",
        responses={
            200: InvoiceDetailSerializer,
            403: _problem("The token does not carry invoices."),
            404: _problem("No such invoice on the token's account."),
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        if pk > BIGINT_MAX:
            pk = 0  # no row has it: the same 404 as any other id not of this account
        invoice = account_object_or_404(
            Invoice.objects.prefetch_related("lines"), access.account, pk=pk
        )
        return Response(InvoiceDetailSerializer(invoice).data)


# --- the schema and its docs page (public: they describe the API, hold no account data) --


class SchemaView(SpectacularJSONAPIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from our own static files (drf-spectacular-sidecar), its start-up
    script a separate same-origin request and no inline style (our template): the
    site's Content-Security-Policy holds unchanged on this page."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    template_name = "api/swagger_ui.html"
    url_name = "api:schema"
    title = "Client Area API"


schema_view = public(SchemaView.as_view())
docs_view = public(DocsView.as_view())
