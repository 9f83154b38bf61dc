"""Secondary contacts (permission: contacts): people with no login who receive email."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import selectors, services
from .forms_users import ContactForm
from .models import Contact
from .permissions import Perm
from .policy import AccountRequest, account_object_or_404, requires

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
    form = ContactForm(request.POST or None, account_id=account.pk)
    if request.method == "POST" and form.is_valid():
        contact = services.contact_create(
            account=account, actor=request.user, data=form.cleaned_data, request=request
        )
        messages.success(request, f"{contact.name} was added to the contacts.")
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
    )
    if request.method == "POST" and form.is_valid():
        services.contact_update(
            contact=contact, actor=request.user, data=form.cleaned_data, request=request
        )
        messages.success(request, f"{form.cleaned_data['name']} was saved.")
        return redirect("accounts:contacts")
    return render(request, "accounts/contacts/form.html", {"form": form, "contact": contact})


@requires(Perm.CONTACTS)
@require_http_methods(["GET", "POST"])
def contact_remove(request: AccountRequest, contact_id: int) -> HttpResponse:
    contact = account_object_or_404(Contact.objects.all(), request.access.account, pk=contact_id)
    if request.method == "POST":
        services.contact_delete(contact=contact, actor=request.user, request=request)
        messages.success(request, f"{contact.name} was removed from the contacts.")
        return redirect("accounts:contacts")
    return render(request, "accounts/contacts/remove.html", {"contact": contact})
