"""The API's billing endpoints: an invoice's PDF, and paying an invoice with the credit
balance or a stored card. The same lookups, PDF renderer and service function
(``billing.services.invoice_pay``, which asks the policy itself) as the pages.

Paying takes an ``Idempotency-Key`` header, with Stripe's semantics: the same key with
the same request answers what the first request answered and never pays twice; the same
key with another request is refused (409 ``idempotency_key_reused``). The key is the
token's own (two tokens never share one): it is hashed with the token's id into the
payment's idempotency key, which the payment services already make single-use."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, renderers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import account_object_or_404
from clientarea.billing import selectors as billing_selectors
from clientarea.billing import services as billing_services
from clientarea.billing.models import Invoice, PaymentMethod, Transaction
from clientarea.billing.pdf import invoice_pdf

from .access import token_access, token_rule
from .problems import CONTENT_TYPE as PROBLEM_CONTENT_TYPE
from .problems import problem
from .responses import COMMON_ERRORS, ITEM_ERRORS, object_pk, problem_doc
from .serializers_billing import (
    STORED_CARD,
    InvoicePaySerializer,
    PaymentResultSerializer,
)
from .services import TokenAccess


def _invoice(request: Request, pk: int) -> Invoice:
    return account_object_or_404(
        Invoice.objects.select_related("account"), token_access(request).account, pk=object_pk(pk)
    )


# --- the PDF ------------------------------------------------------------------------------


class PdfRenderer(renderers.BaseRenderer):
    """The PDF as it is; anything else (a problem: the error handler's answer goes
    through this view's renderer too) as JSON."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if isinstance(data, bytes):
            return data
        return renderers.JSONRenderer().render(data)


class InvoicePdfView(APIView):
    access_rule = token_rule(Perm.INVOICES)
    renderer_classes = [PdfRenderer]

    @extend_schema(
        operation_id="invoices_pdf",
        summary="The invoice as a PDF (the same document as the page's)",
        description="Answered `Content-Disposition: attachment` with the invoice's number.",
        responses={
            (200, "application/pdf"): OpenApiResponse(
                response=OpenApiTypes.BINARY, description="The PDF."
            ),
            (403, "application/json"): ITEM_ERRORS[403],
            (404, "application/json"): problem_doc("No such invoice on the token's account."),
            (401, "application/json"): COMMON_ERRORS[401],
            (429, "application/json"): COMMON_ERRORS[429],
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        invoice = _invoice(request, pk)
        payments = billing_selectors.transactions_for_invoice(invoice=invoice).filter(
            status=Transaction.Status.SUCCEEDED
        )
        content = invoice_pdf(invoice, list(invoice.lines.all()), list(payments))
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number}.pdf"'
        return response


# --- paying -------------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_MAX = 255
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"


class PaymentProblem(exceptions.APIException):
    """A payment that was refused or could not go through, as a problem with its code."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.problem_code = code


def _client_key(request: Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or not key.strip():
        raise exceptions.ValidationError(
            {
                IDEMPOTENCY_HEADER: [
                    "Send an Idempotency-Key header (a unique string of your choosing, at "
                    "most 255 printable characters): the same key never pays twice."
                ]
            }
        )
    if len(key) > KEY_MAX or not key.isprintable() or not key.isascii():
        raise exceptions.ValidationError(
            {IDEMPOTENCY_HEADER: ["Use at most 255 printable ASCII characters."]}
        )
    return key


def _payment_key(request: Request, client_key: str) -> str:
    """The payment's idempotency key (``[A-Za-z0-9_-]{16,64}``, unique among payments):
    the client's key hashed with the token's id, so two tokens never collide."""
    found = request.auth
    assert isinstance(found, TokenAccess)
    digest = hashlib.sha256(f"{found.token.pk}\n{client_key}".encode()).hexdigest()
    return f"api_{digest[:52]}"


def _request_digest(invoice: Invoice, data: dict[str, Any]) -> str:
    asked = {
        "invoice": invoice.pk,
        "method": data["method"],
        "payment_method": data.get("payment_method"),
        "apply_credit_first": bool(data.get("apply_credit_first")),
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def _pay_page_url(invoice: Invoice) -> str:
    return f"{settings.SITE_URL}{reverse('billing:invoice_pay', args=[invoice.pk])}"


def _answer(status: int, body: dict[str, Any]) -> Response:
    content_type = PROBLEM_CONTENT_TYPE if status >= 400 else None
    return Response(body, status=status, content_type=content_type)


def _result(outcome: billing_services.PaymentOutcome, invoice_id: int) -> dict[str, Any]:
    invoice = Invoice.objects.prefetch_related("lines").get(pk=invoice_id)
    data = PaymentResultSerializer(
        {
            "status": outcome.status,
            "detail": outcome.message,
            "transaction": outcome.transaction,
            "invoice": invoice,
        }
    ).data
    # What JSON would give back (decimals and dates as strings): stored for a replay.
    answer: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return answer


PAY_RESPONSES = {
    200: OpenApiResponse(PaymentResultSerializer, description="Paid, or paid in part."),
    202: OpenApiResponse(
        PaymentResultSerializer,
        description="The card processor has not answered yet: the payment is processing.",
    ),
    400: problem_doc(
        "Bad input (the body, a missing or bad Idempotency-Key header, a card not of the "
        "account), or refused (no credit balance to pay with, an expired card...)."
    ),
    402: problem_doc(
        "The card was declined (`card_declined`, with the processor's reason) or the "
        "payment could not be processed (`payment_failed`): nothing was charged."
    ),
    409: problem_doc(
        "`idempotency_key_reused`: the key was sent with another request; "
        "`requires_customer`: the card holder's bank asks them to confirm the payment "
        "(3-D Secure), which they do on the invoice page (its URL is in the detail); "
        "`not_payable`: paid, cancelled or refunded; `payment_processing`: another "
        "payment of it is with the card processor."
    ),
    **ITEM_ERRORS,
}


class InvoicePayView(APIView):
    access_rule = token_rule(Perm.INVOICES)

    @extend_schema(
        operation_id="invoices_pay",
        summary="Pay the invoice with the credit balance or a stored card",
        description=(
            "Requires an `Idempotency-Key` header: the same key with the same body answers "
            "what the first request answered and never pays twice; with another body it is "
            "a 409. A card whose bank asks its holder to confirm the payment (3-D Secure) "
            "cannot be paid here: nothing is charged, and the answer (409 "
            "`requires_customer`) gives the invoice page to pay it on."
        ),
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                # Printable ASCII; no space at either end (HTTP would drop it).
                {"type": "string", "minLength": 1, "maxLength": KEY_MAX, "pattern": KEY_PATTERN},
                OpenApiParameter.HEADER,
                required=True,
                description="A unique string of your choosing (at most 255 printable "
                "characters), the same on every retry of this payment.",
            )
        ],
        request=InvoicePaySerializer,
        responses=PAY_RESPONSES,
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        invoice = _invoice(request, pk)  # 404 before anything of the request is read
        client_key = _client_key(request)
        body = InvoicePaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        source: billing_services.PaySource = billing_services.PayWithCredit()
        if data["method"] == STORED_CARD:
            card = PaymentMethod.objects.filter(
                account=access.account, pk=object_pk(data["payment_method"])
            ).first()
            if card is None:
                raise exceptions.ValidationError(
                    {"payment_method": ["Not one of this account's stored cards."]}
                )
            source = billing_services.PayWithStoredMethod(payment_method_id=card.pk)
        key = _payment_key(request, client_key)
        try:
            asked = billing_services.payment_request_claim(
                key=key, digest=_request_digest(invoice, data)
            )
        except billing_services.IdempotencyKeyReused as exc:
            raise PaymentProblem(409, str(exc), "idempotency_key_reused") from None
        if asked.answer_status is not None:
            return _answer(asked.answer_status, asked.answer or {})
        status, answer = self._pay(request, invoice, source, key, data)
        if status != 202:
            billing_services.payment_request_answered(key=key, status=status, answer=answer)
        return _answer(status, answer)

    def _pay(
        self,
        request: Request,
        invoice: Invoice,
        source: billing_services.PaySource,
        key: str,
        data: dict[str, Any],
    ) -> tuple[int, dict[str, Any]]:
        access = token_access(request)
        try:
            outcome = billing_services.invoice_pay(
                invoice_id=invoice.pk,
                access=access,
                source=source,
                idempotency_key=key,
                apply_credit_first=bool(data.get("apply_credit_first")),
                # The processor sends the card holder's browser back here after 3-D
                # Secure: never used, the payment is cancelled at once (below).
                return_url=request.build_absolute_uri(
                    reverse("billing:invoice_pay_return", args=[invoice.pk])
                ),
                request=request._request,
            )
        except billing_services.BillingError as exc:
            raise self._refusal(invoice, str(exc)) from None
        if outcome.status == "requires_action":
            return self._needs_customer(request, invoice, outcome)
        if outcome.status in ("paid", "partial"):
            return 200, _result(outcome, invoice.pk)
        if outcome.status == "processing":
            return 202, _result(outcome, invoice.pk)
        if outcome.status == "declined":
            return 402, problem(402, outcome.message, code="card_declined")
        return 402, problem(402, outcome.message, code="payment_failed")

    @staticmethod
    def _refusal(invoice: Invoice, message: str) -> PaymentProblem:
        """A refusal of the payment services: a conflict with the invoice's state (409),
        or a refusal of what was asked (400). Nothing was charged either way."""
        invoice.refresh_from_db()
        if not invoice.is_payable:
            return PaymentProblem(409, message, "not_payable")
        if billing_selectors.processing_payment_for(invoice=invoice) is not None:
            return PaymentProblem(409, message, "payment_processing")
        return PaymentProblem(400, message, "refused")

    @staticmethod
    def _needs_customer(
        request: Request, invoice: Invoice, outcome: billing_services.PaymentOutcome
    ) -> tuple[int, dict[str, Any]]:
        """The card holder's bank wants them to confirm the payment (3-D Secure), which a
        script cannot do: the attempt is cancelled at once (the invoice is payable again
        on its page), unless the processor says it went through after all."""
        try:
            cancelled = billing_services.card_payment_cancel(
                invoice_id=invoice.pk, access=token_access(request), request=request._request
            )
        except billing_services.BillingError:
            cancelled = None  # still waiting: the invoice page offers to cancel it
        if cancelled is not None and cancelled.status in ("paid", "partial"):
            return 200, _result(cancelled, invoice.pk)
        detail = (
            "The card holder's bank asks them to confirm this payment (3-D Secure), which "
            "cannot be done through the API, so nothing was charged. Pay the invoice on "
            f"its page: {_pay_page_url(invoice)}"
        )
        return 409, problem(409, detail, code="requires_customer")
