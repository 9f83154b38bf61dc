"""Secondary contacts (permission: contacts): people with no login who receive email."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from clientarea.audit.services import client_ip
from clientarea.security.throttle import throttle_blocked, throttle_fail
from clientarea.security.tokenlinks import token_forget, token_from_session, token_link_redirect

from . import selectors, services
from .forms_users import ContactForm
from .models import Contact
from .permissions import Perm
from .policy import AccountRequest, account_object_or_404, public, requires

LINK_KIND = "contact-confirm"

PAGE_SIZE = 25


@requires(Perm.CONTACTS)
@require_http_methods(["GET"])
def contacts(request: AccountRequest) -> HttpResponse:
    page = Paginator(selectors.contact_list_for(request.access.account), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    kinds = dict(Contact.Kind.choices)
    rows = [
        {"contact": c, "kinds": [kinds[k] for k in c.email_kinds if k in kinds]}
        for c in page.object_list
    ]
    return render(request, "accounts/contacts/list.html", {"page_obj": page, "rows": rows})


@requires(Perm.CONTACTS)
@require_http_methods(["GET", "POST"])
def contact_add(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    grantable = services.contact_kinds_for(account=account, access=request.access)
    form = ContactForm(request.POST or None, account_id=account.pk, grantable_kinds=grantable)
    if request.method == "POST" and form.is_valid():
        try:
            contact = services.contact_create(
                account=account, access=request.access, data=form.cleaned_data, request=request
            )
        except (services.ContactError, services.AccessError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"{contact.name} was added. We sent {contact.email} a link to confirm the "
                "address: nothing is sent to it until then.",
            )
            return redirect("accounts:contacts")
    return render(request, "accounts/contacts/form.html", {"form": form, "contact": None})


@requires(Perm.CONTACTS)
@require_http_methods(["GET", "POST"])
def contact_edit(request: AccountRequest, contact_id: int) -> HttpResponse:
    account = request.access.account
    contact = account_object_or_404(Contact.objects.all(), account, pk=contact_id)
    # The form validates a copy, so a rejected edit never leaves half-changed values.
    form = ContactForm(
        request.POST or None,
        instance=Contact.objects.get(pk=contact.pk),
        account_id=account.pk,
        grantable_kinds=services.contact_kinds_for(account=account, access=request.access),
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.contact_update(
                contact=contact, access=request.access, data=form.cleaned_data, request=request
            )
        except (services.ContactError, services.AccessError) as exc:
            form.add_error(None, str(exc))
        else:
            note = (
                f" We sent {saved.email} a link to confirm the new address."
                if not saved.is_confirmed
                else ""
            )
            messages.success(request, f"{saved.name} was saved.{note}")
            return redirect("accounts:contacts")
    return render(request, "accounts/contacts/form.html", {"form": form, "contact": contact})


@requires(Perm.CONTACTS)
@require_http_methods(["GET", "POST"])
def contact_remove(request: AccountRequest, contact_id: int) -> HttpResponse:
    contact = account_object_or_404(Contact.objects.all(), request.access.account, pk=contact_id)
    if request.method == "POST":
        services.contact_delete(contact=contact, access=request.access, request=request)
        messages.success(request, f"{contact.name} was removed from the contacts.")
        return redirect("accounts:contacts")
    return render(request, "accounts/contacts/remove.html", {"contact": contact})


@requires(Perm.CONTACTS)
@require_POST
def contact_confirmation_resend(request: AccountRequest, contact_id: int) -> HttpResponse:
    contact = account_object_or_404(Contact.objects.all(), request.access.account, pk=contact_id)
    try:
        services.contact_confirmation_resend(
            contact=contact, access=request.access, request=request
        )
    except (services.ContactError, services.AccessError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"We sent {contact.email} a new confirmation link.")
    return redirect("accounts:contacts")


@public
@require_http_methods(["GET"])
def contact_confirm_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: the token moves into the session and the browser goes on to a
    URL without it, so it stays out of history, Referer headers and later log lines."""
    return token_link_redirect(request, kind=LINK_KIND, token=token, to="accounts:contact_confirm")


@public
@require_http_methods(["GET", "POST"])
def contact_confirm(request: HttpRequest) -> HttpResponse:
    """The address's holder confirms with a button (a POST), so a mail scanner that
    follows links confirms nothing."""
    ip = client_ip(request)
    if throttle_blocked(scope="token-ip", key=ip):
        return render(request, "accounts/contacts/confirm.html", {"contact": None}, status=429)
    token = token_from_session(request, kind=LINK_KIND) or ""
    contact = services.contact_for_token(token)
    if contact is None:
        throttle_fail(scope="token-ip", key=ip)
        return render(request, "accounts/contacts/confirm.html", {"contact": None}, status=404)
    if request.method == "POST":
        try:
            services.contact_confirm(token=token, request=request)
        except services.ContactError:
            return render(request, "accounts/contacts/confirm.html", {"contact": None}, status=404)
        token_forget(request, kind=LINK_KIND)
        return render(request, "accounts/contacts/confirm.html", {"contact": contact, "done": True})
    return render(request, "accounts/contacts/confirm.html", {"contact": contact})
