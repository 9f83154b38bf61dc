"""The API's endpoints (``/api/v1/``). Each declares its rule (``access.token_rule``),
reads through the same selectors and the same object lookups as the pages
(``account_object_or_404``: another account's object is a 404), and answers only what
the token's access, computed for this request, reaches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import (
    Access,
    account_object_or_404,
    public,
    scoped_object_or_404,
)
from clientarea.accounts.scope import SCOPE_KINDS
from clientarea.billing import selectors as billing_selectors
from clientarea.billing.models import Invoice
from clientarea.core.models import PendingChange
from clientarea.core.outside import ChangeOutcome
from clientarea.domains import selectors as domain_selectors
from clientarea.domains import services as domain_services
from clientarea.domains.models import Domain
from clientarea.domains.scope import KIND as DOMAIN_KIND
from clientarea.hosting import selectors as hosting_selectors
from clientarea.hosting import services as hosting_services
from clientarea.hosting.models import Service
from clientarea.hosting.scope import KIND as SERVICE_KIND

from .access import token_access, token_rule
from .pagination import IdCursorPagination, NumberCursorPagination, paginated
from .responses import (
    BIGINT_MAX,
    CHANGE_ERRORS,
    COMMON_ERRORS,
    ITEM_ERRORS,
    ActionConflict,
    ActionRefused,
    OutsideDown,
    invalid,
    object_pk,
    problem_doc,
)
from .serializers import (
    AccountSerializer,
    AutoRenewSerializer,
    ChangeResultSerializer,
    DomainDetailSerializer,
    DomainFilter,
    DomainSerializer,
    InvoiceDetailSerializer,
    InvoiceFilter,
    InvoiceSerializer,
    LockSerializer,
    NameserversSerializer,
    PasswordChangeSerializer,
    RevealedPasswordSerializer,
    ServiceDetailSerializer,
    ServiceFilter,
    ServiceSerializer,
)
from .services import TokenAccess


class AccountPathAllow(APIView):
    """``/api/v1/account`` answers GET (``AccountView``) and PATCH (the profile's view,
    to which ``views_people.account_view`` hands it): the Allow header of either names
    both. (Not ``allowed_methods``, which the schema generator reads as the class's own
    methods.)"""

    @property
    def default_response_headers(self) -> dict[str, str]:
        headers: dict[str, str] = super().default_response_headers
        headers["Allow"] = "GET, PATCH, HEAD, OPTIONS"
        return headers


class AccountView(AccountPathAllow):
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
            400: problem_doc("A bad filter, page size or cursor."),
            403: problem_doc("The token does not carry invoices."),
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
        return paginated(self, request, invoices, InvoiceSerializer)


class InvoiceDetailView(APIView):
    access_rule = token_rule(Perm.INVOICES)

    @extend_schema(
        operation_id="invoices_read",
        summary="One invoice, with its lines",
        responses={
            200: InvoiceDetailSerializer,
            403: problem_doc("The token does not carry invoices."),
            404: problem_doc("No such invoice on the token's account."),
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


# --- services and domains: the same selectors, lookups and service functions as the pages --


def _pending_info(change: PendingChange | None, label: str) -> dict[str, Any] | None:
    return None if change is None else {"what": label, "since": change.created_at}


def _service(access: Access, pk: int) -> Service:
    return scoped_object_or_404(
        hosting_selectors.service_visible(), access, SERVICE_KIND, pk=object_pk(pk)
    )


class ServiceListView(APIView):
    access_rule = token_rule(Perm.PRODUCTS)
    pagination_class = IdCursorPagination

    @extend_schema(
        operation_id="services_list",
        summary="The services the token reaches (its scope), by id",
        parameters=[ServiceFilter],
        responses={
            200: ServiceSerializer(many=True),
            400: problem_doc("A bad filter, page size or cursor."),
            403: problem_doc("The token does not carry products."),
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        query = ServiceFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = hosting_selectors.service_list_for(
            access=access, status=query.validated_data.get("status", "")
        )
        return paginated(self, request, rows, ServiceSerializer)


class ServiceDetailView(APIView):
    access_rule = token_rule(Perm.PRODUCTS)

    @extend_schema(
        operation_id="services_read",
        summary="One service (never its password)",
        responses={200: ServiceDetailSerializer, **ITEM_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        service = _service(token_access(request), pk)
        pending = hosting_services.service_pending_change(service)
        service.pending_change = _pending_info(  # type: ignore[attr-defined]
            pending, hosting_services.change_label(pending)
        )
        return Response(ServiceDetailSerializer(service).data)


def _service_action(call: Callable[[], Any]) -> Any:
    """A hosting service function, its refusals as the API's problems."""
    try:
        return call()
    except hosting_services.ServiceChangePending as exc:
        raise ActionConflict(str(exc)) from None
    except hosting_services.ServicePanelUnavailable as exc:
        raise OutsideDown(str(exc)) from None
    except hosting_services.ServiceActionError as exc:
        raise ActionRefused(str(exc)) from None


class ServicePasswordRevealView(APIView):
    access_rule = token_rule(Perm.MANAGE_PRODUCTS)

    @extend_schema(
        operation_id="services_password_reveal",
        summary="Reveal the control-panel password (audited; the owner is told)",
        description=(
            "Answered `Cache-Control: no-store`. Recorded in the Activity Log, and the "
            "owner is emailed when the token's creator is a sub-account, as on the page."
        ),
        request=None,
        responses={
            200: RevealedPasswordSerializer,
            400: problem_doc("No password is stored, or it cannot be read now."),
            **ITEM_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        service = _service(access, pk)
        password = _service_action(
            lambda: hosting_services.service_password_reveal(
                service=service, access=access, request=request._request
            )
        )
        response = Response(RevealedPasswordSerializer({"password": password}).data)
        response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
        response["Pragma"] = "no-cache"
        return response


class ServicePasswordChangeView(APIView):
    access_rule = token_rule(Perm.MANAGE_PRODUCTS)

    @extend_schema(
        operation_id="services_password_change",
        summary="Set a new control-panel password (through the panel; audited)",
        description=(
            "200 when the panel confirmed it; 202 when the panel did not answer: the change "
            "is pending and settled later (GET the service shows it). A password the panel "
            "or our rules refuse is a 400 naming why, in the panel's own words."
        ),
        request=PasswordChangeSerializer,
        responses={200: ChangeResultSerializer, 202: ChangeResultSerializer, **CHANGE_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        service = _service(access, pk)
        body = PasswordChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = _service_action(
                lambda: hosting_services.service_password_change(
                    service=service,
                    access=access,
                    new_password=body.validated_data["password"],
                    request=request._request,
                )
            )
        except DjangoValidationError as exc:
            raise invalid("password", exc) from None
        if outcome.pending:
            detail = (
                f"The control panel has not confirmed the new password of {service} yet: "
                "the change is pending. Keep using the old password until it is made."
            )
            return Response({"status": "pending", "detail": detail}, status=202)
        detail = f"The control-panel password of {service} was changed."
        return Response({"status": "done", "detail": detail})


def _domain(access: Access, pk: int) -> Domain:
    return scoped_object_or_404(
        Domain.objects.select_related("account"), access, DOMAIN_KIND, pk=object_pk(pk)
    )


def _domain_data(domain: Domain) -> dict[str, Any]:
    fresh = Domain.objects.get(pk=domain.pk)
    pending = domain_services.domain_pending_change(fresh)
    fresh.pending_change = _pending_info(  # type: ignore[attr-defined]
        pending, domain_services.change_label(pending)
    )
    return dict(DomainDetailSerializer(fresh).data)


class DomainListView(APIView):
    access_rule = token_rule(Perm.DOMAINS)
    pagination_class = IdCursorPagination

    @extend_schema(
        operation_id="domains_list",
        summary="The domains the token reaches (its scope), by id",
        parameters=[DomainFilter],
        responses={
            200: DomainSerializer(many=True),
            400: problem_doc("A bad filter, page size or cursor."),
            403: problem_doc("The token does not carry domains."),
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        query = DomainFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = domain_selectors.domain_list_for(
            access=access, status=query.validated_data.get("status", "")
        )
        return paginated(self, request, rows, DomainSerializer)


class DomainDetailView(APIView):
    access_rule = token_rule(Perm.DOMAINS)

    @extend_schema(
        operation_id="domains_read",
        summary="One domain",
        responses={200: DomainDetailSerializer, **ITEM_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(_domain_data(_domain(token_access(request), pk)))


def _domain_change(domain: Domain, call: Callable[[], Any]) -> Response:
    """A domain setter, its refusals as the API's problems; the domain as it is after
    (202 while the registry has not confirmed the change)."""
    try:
        outcome = call()
    except DjangoValidationError as exc:
        raise invalid("nameservers", exc) from None
    except domain_services.DomainChangePending as exc:
        raise ActionConflict(str(exc)) from None
    except domain_services.DomainRegistryUnavailable as exc:
        raise OutsideDown(str(exc)) from None
    except domain_services.DomainActionError as exc:
        raise ActionRefused(str(exc)) from None
    pending = isinstance(outcome, ChangeOutcome) and outcome.pending
    return Response(_domain_data(domain), status=202 if pending else 200)


DOMAIN_CHANGE_RESPONSES = {
    200: DomainDetailSerializer,
    202: DomainDetailSerializer,
    **CHANGE_ERRORS,
}


class DomainNameserversView(APIView):
    access_rule = token_rule(Perm.MANAGE_DOMAINS)

    @extend_schema(
        operation_id="domains_nameservers_update",
        summary="Replace the nameservers (2 to 5), at the registry",
        description="202: handed to the registry, not yet confirmed (pending_change says so).",
        request=NameserversSerializer,
        responses=DOMAIN_CHANGE_RESPONSES,
    )
    def put(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        domain = _domain(access, pk)
        body = NameserversSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = body.validated_data["nameservers"]
        return _domain_change(
            domain,
            lambda: domain_services.domain_set_nameservers(
                domain=domain, access=access, nameservers=wanted, request=request._request
            ),
        )


class DomainLockView(APIView):
    access_rule = token_rule(Perm.MANAGE_DOMAINS)

    @extend_schema(
        operation_id="domains_lock_update",
        summary="Lock or unlock the domain against transfer, at the registry",
        request=LockSerializer,
        responses=DOMAIN_CHANGE_RESPONSES,
    )
    def put(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        domain = _domain(access, pk)
        body = LockSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        locked = body.validated_data["locked"]
        return _domain_change(
            domain,
            lambda: domain_services.domain_set_registrar_lock(
                domain=domain, access=access, locked=locked, request=request._request
            ),
        )


class DomainAutoRenewView(APIView):
    access_rule = token_rule(Perm.MANAGE_DOMAINS)

    @extend_schema(
        operation_id="domains_auto_renew_update",
        summary="Turn auto-renew (renewal invoices) on or off",
        request=AutoRenewSerializer,
        responses=DOMAIN_CHANGE_RESPONSES,
    )
    def put(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        domain = _domain(access, pk)
        body = AutoRenewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        enabled = body.validated_data["enabled"]
        return _domain_change(
            domain,
            lambda: domain_services.domain_set_auto_renew(
                domain=domain, access=access, enabled=enabled, request=request._request
            ),
        )
