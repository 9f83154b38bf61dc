"""The API's ticket endpoints (``/api/v1/tickets``): the same selectors, object lookups
and service functions as the ticket pages (``support.views``), so a token reaches the
tickets its creator's page would list, narrowed to the token's own grant and scope; the
services ask the policy again before anything is stored or sent.

A ticket or attachment out of reach is looked up (404) before the body is read (400), so
a refusal never says whether the input would have been good."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, account_object_or_404
from clientarea.support import selectors as support_selectors
from clientarea.support import services as support_services
from clientarea.support.attachments import DOWNLOAD_UNAVAILABLE, attachment_response
from clientarea.support.models import Attachment, Department, Ticket

from .access import token_access, token_rule
from .pagination import IdCursorPagination, paginated
from .responses import (
    COMMON_ERRORS,
    ITEM_ERRORS,
    ActionRefused,
    OutsideDown,
    object_pk,
    problem_doc,
)
from .serializers_support import (
    TicketDetailSerializer,
    TicketFilter,
    TicketMessageSerializer,
    TicketOpenSerializer,
    TicketOpenUploadSerializer,
    TicketReplySerializer,
    TicketReplyUploadSerializer,
    TicketSerializer,
)

NO_TICKETS = problem_doc("The token does not carry tickets, or its creator no longer holds it.")
NOT_JSON_OR_MULTIPART = problem_doc("The body is neither application/json nor multipart/form-data.")
STORE_DOWN = problem_doc(
    "The attachment store could not be reached: nothing was saved or sent (see Retry-After)."
)


class TicketClosed(exceptions.APIException):
    """Closing a ticket that is closed already: the request conflicts with its state."""

    status_code = 409
    default_code = "already_closed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_code = "already_closed"


class TicketPagination(IdCursorPagination):
    """The newest tickets first, by id (unique and unchanging: a page never repeats or
    skips a ticket when others are answered meanwhile, as "last activity" would)."""

    ordering = "-id"


def _ticket(access: Access, pk: int) -> Ticket:
    # The pages' lookup: another account's ticket and one outside the scope, the same 404.
    return account_object_or_404(
        support_selectors.ticket_visible(access).select_related("department"),
        access.account,
        pk=object_pk(pk),
    )


def _detail(ticket: Ticket, request: Request) -> dict[str, Any]:
    ticket.thread = list(  # type: ignore[attr-defined]
        support_selectors.ticket_messages(ticket=ticket)
    )
    return dict(TicketDetailSerializer(ticket, context={"request": request}).data)


def _body(request: Request) -> Any:
    """The parsed body; one too large for the server's limits is bad input, not a 500."""
    try:
        return request.data
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent):
        raise exceptions.ValidationError(
            {"non_field_errors": ["The request is too large: send less, or fewer files."]}
        ) from None


def _files(request: Request) -> list[UploadedFile]:
    """The uploads of a multipart request (a JSON body carries none). An "attachments"
    part that is not a file is refused: it would otherwise be silently dropped."""
    _body(request)
    if request.POST.getlist("attachments"):
        raise exceptions.ValidationError(
            {"attachments": ["Send each attachment as a file (a part with a filename)."]}
        )
    return list(request.FILES.getlist("attachments")) if request.FILES else []


def _typed(request: Request) -> dict[str, bool]:
    """A JSON body's values have their schema's types; a form's are all text."""
    return {"json": not request.content_type.startswith("multipart/")}


def _ticket_action(call: Callable[[], Any], field_names: dict[str, str]) -> Any:
    """A ticket service function, its refusals as the API's problems: the input at fault
    named as the field the request sent it in (`field_names`: the service's name for it
    -> the request's); the ticket's state (already closed) a plain 400."""
    try:
        return call()
    except DjangoValidationError as exc:  # the attachments' checks
        raise exceptions.ValidationError({"attachments": list(exc.messages)}) from None
    except support_services.AttachmentsUnavailable as exc:
        raise OutsideDown(str(exc)) from None
    except support_services.TicketError as exc:
        if exc.field is None:
            raise ActionRefused(str(exc)) from None
        field = field_names.get(exc.field, exc.field)
        raise exceptions.ValidationError({field: [str(exc)]}) from None


WRITE_PARSERS: list[type[BaseParser]] = [JSONParser, MultiPartParser]


class TicketListView(APIView):
    access_rule = token_rule(Perm.TICKETS)
    pagination_class = TicketPagination
    parser_classes = WRITE_PARSERS

    @extend_schema(
        operation_id="tickets_list",
        summary="The tickets the token reaches, newest first",
        description=(
            "As the Support Tickets page lists them: a token limited to chosen services "
            "and domains (its own scope, or its creator's) lists the tickets its creator "
            "opened about no item and those about an item of the scope."
        ),
        parameters=[TicketFilter],
        responses={
            200: TicketSerializer(many=True),
            400: problem_doc("A bad filter, page size or cursor."),
            403: NO_TICKETS,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        access = token_access(request)
        query = TicketFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = support_selectors.ticket_list_for(
            access=access, status=query.validated_data.get("status")
        )
        return paginated(self, request, rows, TicketSerializer)

    @extend_schema(
        operation_id="tickets_open",
        summary="Open a ticket (JSON, or multipart/form-data with attachments)",
        description=(
            "Opened under the name and email of the token's creator, who is sent the "
            "receipt; the support staff are told, as from the page. `service` or `domain` "
            "names the item the ticket is about: one the token reaches (the choices the "
            "page offers), else a 400 naming the field. Nothing is stored when any input "
            "is refused."
        ),
        request={
            "application/json": TicketOpenSerializer,
            "multipart/form-data": TicketOpenUploadSerializer,
        },
        responses={
            201: TicketDetailSerializer,
            400: problem_doc("Bad input (the field is named), or a refused attachment."),
            403: NO_TICKETS,
            # The service asks the token again: one revoked while the request ran reaches
            # nothing, like the other writes (its next request is a 401).
            404: problem_doc("The token stopped working while the request ran."),
            415: NOT_JSON_OR_MULTIPART,
            503: STORE_DOWN,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        access = token_access(request)
        files = _files(request)
        body = TicketOpenSerializer(data=_body(request), context=_typed(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        department = _department(data.get("department"))
        about_field = "service" if data.get("service") is not None else "domain"
        about_id = data.get(about_field)
        ticket = _ticket_action(
            lambda: support_services.ticket_open(
                access=access,
                department=department,
                subject=data["subject"],
                priority=data.get("priority") or Ticket.Priority.MEDIUM,
                body=data["message"],
                files=files,
                about=(about_field, about_id) if about_id is not None else None,
                request=request._request,
            ),
            {"about": about_field, "message": "message"},
        )
        response = Response(_detail(_ticket(access, ticket.pk), request), status=201)
        response["Location"] = request.build_absolute_uri(
            reverse("api:ticket_detail", kwargs={"pk": ticket.pk})
        )
        return response


def _department(pk: int | None) -> Department:
    """The department asked for, or the one the Open Ticket page preselects (the first
    that takes new tickets)."""
    active = Department.objects.filter(is_active=True).order_by("order", "name", "pk")
    found = active.filter(pk=pk).first() if pk is not None else active.first()
    if found is None:
        detail = (
            "Choose one of the departments that take new tickets."
            if pk is not None
            else "No department takes new tickets at the moment."
        )
        raise exceptions.ValidationError({"department": [detail]})
    return found


class TicketDetailView(APIView):
    access_rule = token_rule(Perm.TICKETS)

    @extend_schema(
        operation_id="tickets_read",
        summary="One ticket, with its thread (oldest first) and attachments",
        responses={200: TicketDetailSerializer, **ITEM_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(_detail(_ticket(token_access(request), pk), request))


class TicketReplyView(APIView):
    access_rule = token_rule(Perm.TICKETS)
    parser_classes = WRITE_PARSERS

    @extend_schema(
        operation_id="tickets_reply",
        summary="Reply to a ticket (JSON, or multipart/form-data with attachments)",
        description=(
            "Under the name of the token's creator; the ticket becomes Customer-Reply, a "
            "closed one is reopened by it, and the support staff are told, as from the page."
        ),
        request={
            "application/json": TicketReplySerializer,
            "multipart/form-data": TicketReplyUploadSerializer,
        },
        responses={
            201: TicketMessageSerializer,
            400: problem_doc("Bad input (the field is named), or a refused attachment."),
            415: NOT_JSON_OR_MULTIPART,
            503: STORE_DOWN,
            **ITEM_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        ticket = _ticket(access, pk)
        files = _files(request)
        body = TicketReplySerializer(data=_body(request), context=_typed(request))
        body.is_valid(raise_exception=True)
        message = _ticket_action(
            lambda: support_services.ticket_reply_customer(
                ticket=ticket,
                access=access,
                body=body.validated_data["message"],
                files=files,
                request=request._request,
            ),
            {},
        )
        fresh = support_selectors.ticket_messages(ticket=ticket).get(pk=message.pk)
        return Response(
            TicketMessageSerializer(fresh, context={"request": request}).data, status=201
        )


class TicketCloseView(APIView):
    access_rule = token_rule(Perm.TICKETS)

    @extend_schema(
        operation_id="tickets_close",
        summary="Close a ticket",
        description="A reply reopens it. An already closed ticket is a 409.",
        request=None,
        responses={
            200: TicketSerializer,
            400: problem_doc("Refused by the ticket's state."),
            409: problem_doc("The ticket is already closed."),
            **ITEM_ERRORS,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        access = token_access(request)
        ticket = _ticket(access, pk)
        if ticket.is_closed:
            raise TicketClosed("This ticket is already closed.")
        closed = _ticket_action(
            lambda: support_services.ticket_close(
                ticket=ticket, access=access, request=request._request
            ),
            {},
        )
        return Response(TicketSerializer(closed).data)


class AnyAccept(BaseContentNegotiation):
    """The download answers the file whatever the client accepts (its type is the
    file's), and its refusals as problems: never a 406."""

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser | None:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], str(renderers[0].media_type)


DOWNLOAD_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "application/pdf",
    "text/plain",
    "application/octet-stream",
)


class AttachmentDownloadView(APIView):
    access_rule = token_rule(Perm.TICKETS)
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="tickets_attachment_download",
        summary="Download an attachment of a ticket the token reaches",
        description=(
            "The file as a download (`Content-Disposition: attachment`, "
            "`X-Content-Type-Options: nosniff`), with the headers of the page's download; "
            "only a few safe types are served as themselves, anything else as "
            "application/octet-stream."
        ),
        responses={
            **{
                (200, media): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")
                for media in DOWNLOAD_TYPES
            },
            503: problem_doc("The attachment store cannot give the file just now."),
            **ITEM_ERRORS,
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        access = token_access(request)
        attachment = account_object_or_404(
            Attachment.objects.filter(message__ticket__in=support_selectors.ticket_visible(access)),
            access.account,
            account_field="message__ticket__account",
            pk=object_pk(pk),
        )
        try:
            return attachment_response(attachment)
        except OSError:
            raise OutsideDown(DOWNLOAD_UNAVAILABLE) from None
