from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, account_object_or_404, requires
from clientarea.accounts.scope import SCOPE_KINDS

from . import selectors, services
from .attachments import DOWNLOAD_UNAVAILABLE, attachment_response
from .forms import StatusFilterForm, TicketOpenForm, TicketReplyForm
from .models import Attachment, Ticket

PAGE_SIZE = 20


@requires(Perm.TICKETS)
@require_GET
def ticket_list(request: AccountRequest) -> HttpResponse:
    filter_form = StatusFilterForm(request.GET)
    status = filter_form.cleaned_data["status"] if filter_form.is_valid() else ""
    tickets = selectors.ticket_list_for(access=request.access, status=status or None)
    page = Paginator(tickets, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "support/ticket_list.html",
        {
            "page_obj": page,
            "tickets": page.object_list,
            "filter_form": filter_form,
            "status": status,
            "statuses": Ticket.Status.choices,
            "query": f"status={status}" if status else "",
        },
    )


@requires(Perm.TICKETS)
@require_http_methods(["GET", "POST"])
def ticket_open(request: AccountRequest) -> HttpResponse:
    form = TicketOpenForm(
        request.POST or None, request.FILES or None, about_choices=_about_choices(request)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = services.ticket_open(
                access=request.access,
                department=data["department"],
                subject=data["subject"],
                priority=data["priority"],
                body=data["message"],
                files=data["attachments"],
                about=data["about"],
                request=request,
            )
        except (services.TicketError, ValidationError) as exc:
            form.add_error(None, _reason(exc))
        else:
            messages.success(request, f"Ticket #{ticket.pk} was opened. We will reply by email.")
            return redirect("support:ticket_detail", pk=ticket.pk)
    return render(request, "support/ticket_open.html", {"form": form})


def _about_choices(request: AccountRequest) -> list[tuple[str, list[tuple[str, str]]]]:
    """The services and domains the opener may see (their permission and scope), grouped
    by kind, for "Related service or domain"."""
    access = request.access
    groups = []
    for kind in SCOPE_KINDS.values():
        if not access.has(kind.permission):
            continue
        items = [
            (f"{kind.name}:{pk}", label)
            for pk, label in kind.choices(access.account)
            if access.in_scope(kind.name, pk)
        ]
        if items:
            groups.append((str(kind.label), items))
    return groups


def _ticket(request: AccountRequest, pk: int) -> Ticket:
    # Another account's ticket and one outside the access's scope: the same 404.
    return account_object_or_404(
        selectors.ticket_visible(request.access).select_related(
            "department", "opener", "service", "domain"
        ),
        request.access.account,
        pk=pk,
    )


def _render_detail(request: AccountRequest, ticket: Ticket, form: TicketReplyForm) -> HttpResponse:
    return render(
        request,
        "support/ticket_detail.html",
        {
            "ticket": ticket,
            "thread": selectors.ticket_messages(ticket=ticket),
            "form": form,
        },
    )


@requires(Perm.TICKETS)
@require_GET
def ticket_detail(request: AccountRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _ticket(request, pk), TicketReplyForm())


@requires(Perm.TICKETS)
@require_POST
def ticket_reply(request: AccountRequest, pk: int) -> HttpResponse:
    ticket = _ticket(request, pk)
    form = TicketReplyForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.ticket_reply_customer(
                ticket=ticket,
                access=request.access,
                body=form.cleaned_data["message"],
                files=form.cleaned_data["attachments"],
                request=request,
            )
        except (services.TicketError, ValidationError) as exc:
            form.add_error(None, _reason(exc))
        else:
            messages.success(request, "Your reply was added.")
            return redirect("support:ticket_detail", pk=ticket.pk)
    return _render_detail(request, ticket, form)


@requires(Perm.TICKETS)
@require_POST
def ticket_close(request: AccountRequest, pk: int) -> HttpResponse:
    ticket = _ticket(request, pk)
    try:
        services.ticket_close(ticket=ticket, access=request.access, request=request)
    except services.TicketError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Ticket #{ticket.pk} was closed.")
    return redirect("support:ticket_detail", pk=ticket.pk)


@requires(Perm.TICKETS)
@require_GET
def attachment_download(request: AccountRequest, pk: int) -> HttpResponseBase:
    """Serve an attachment of one of the account's tickets, never as active content."""
    attachment = account_object_or_404(
        Attachment.objects.filter(message__ticket__in=selectors.ticket_visible(request.access)),
        request.access.account,
        account_field="message__ticket__account",
        pk=pk,
    )
    try:
        return attachment_response(attachment)
    except OSError:  # the store cannot give it now: back to its ticket, saying so
        messages.error(request, DOWNLOAD_UNAVAILABLE)
        return redirect("support:ticket_detail", pk=attachment.message.ticket_id)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
