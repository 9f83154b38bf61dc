from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, requires, scoped_object_or_404
from clientarea.accounts.reauth import recent_auth_required
from clientarea.core.outside import unconfirmed

from . import services
from .forms import ServicePasswordChangeForm, StatusFilterForm
from .models import Service
from .scope import KIND
from .selectors import service_list_for, service_visible

PAGE_SIZE = 25


def _service(request: AccountRequest, pk: int) -> Service:
    # Another account's service and one outside the access's scope: the same 404.
    return scoped_object_or_404(service_visible(), request.access, KIND, pk=pk)


@requires(Perm.PRODUCTS)
@require_GET
def service_list(request: AccountRequest) -> HttpResponse:
    filters = StatusFilterForm(request.GET)
    status = filters.cleaned_data["status"] if filters.is_valid() else ""
    page = Paginator(service_list_for(access=request.access, status=status), PAGE_SIZE)
    page_obj = page.get_page(request.GET.get("page"))
    return render(
        request,
        "hosting/service_list.html",
        {
            "page_obj": page_obj,
            "services": page_obj.object_list,
            "filters": filters,
            "query": f"status={status}" if status else "",
        },
    )


def _detail_context(request: AccountRequest, service: Service) -> dict[str, object]:
    pending = services.service_pending_change(service)
    failed = None if pending else services.service_last_failed_change(service)
    return {
        "service": service,
        "can_manage": request.access.has(Perm.MANAGE_PRODUCTS),
        # The panel's own view (status, disk, bandwidth), asked at most once a minute.
        "summary": services.service_panel_summary(service),
        "pending_change": pending,
        "pending_label": services.change_label(pending),
        "failed_change": failed,
        "failed_label": services.change_label(failed),
        "failed_unconfirmed": unconfirmed(failed),
    }


@requires(Perm.PRODUCTS)
@require_GET
def service_detail(request: AccountRequest, pk: int) -> HttpResponse:
    service = _service(request, pk)
    return render(request, "hosting/service_detail.html", _detail_context(request, service))


# The object is looked up before "Confirm your password": another account's id is a 404
# at once, never a detour through the confirmation page.


@requires(Perm.MANAGE_PRODUCTS)
@require_http_methods(["GET", "POST"])
@never_cache
def service_password_reveal(request: AccountRequest, pk: int) -> HttpResponse:
    return _password_reveal(request, _service(request, pk))


@recent_auth_required
@sensitive_variables("password")
def _password_reveal(request: AccountRequest, service: Service) -> HttpResponse:
    """One click (a POST) shows the password once, in a response no cache keeps.

    A GET only comes here after "Confirm your password": it returns to the service,
    where the user clicks again, knowingly."""
    if request.method == "GET":
        return redirect("hosting:detail", pk=service.pk)
    try:
        password = services.service_password_reveal(
            service=service, access=request.access, request=request
        )
    except services.ServiceActionError as exc:
        messages.error(request, str(exc))
        return redirect("hosting:detail", pk=service.pk)
    context = _detail_context(request, service)
    context["revealed_password"] = password
    response = render(request, "hosting/service_detail.html", context)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    return response


@requires(Perm.MANAGE_PRODUCTS)
@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters("new_password1", "new_password2")
def service_password_change(request: AccountRequest, pk: int) -> HttpResponse:
    return _password_change(request, _service(request, pk))


@recent_auth_required
def _password_change(request: AccountRequest, service: Service) -> HttpResponse:
    form = ServicePasswordChangeForm(request.POST or None)
    if not service.password_can_change:
        messages.error(
            request,
            f"The password of a {service.get_status_display().lower()} service cannot be changed.",
        )
        return redirect("hosting:detail", pk=service.pk)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.service_password_change(
                service=service,
                access=request.access,
                new_password=form.cleaned_data["new_password1"],
                request=request,
            )
        except ValidationError as exc:
            form.add_error("new_password1", exc)
        except services.ServiceActionError as exc:
            form.add_error(None, str(exc))
        else:
            if outcome.pending:
                messages.warning(
                    request,
                    f"The control panel has not confirmed the new password of {service} yet: "
                    "the change is pending, and this page will show when it is made. Keep "
                    "using the old password until then.",
                )
            else:
                messages.success(request, f"The control-panel password of {service} was changed.")
            return redirect("hosting:detail", pk=service.pk)
    return render(
        request, "hosting/service_password_change.html", {"service": service, "form": form}
    )


@requires(Perm.MANAGE_PRODUCTS)
@require_http_methods(["GET", "POST"])
@never_cache
def service_panel_login(request: AccountRequest, pk: int) -> HttpResponse:
    return _panel_login(request, _service(request, pk))


@recent_auth_required
def _panel_login(request: AccountRequest, service: Service) -> HttpResponse:
    """Log in to cPanel: a POST sends the browser to a one-time single sign-on URL. The URL
    goes into this one redirect and nowhere else (no log, no database, no cache)."""
    if request.method == "GET":
        return redirect("hosting:detail", pk=service.pk)
    try:
        url = services.service_panel_login(service=service, access=request.access, request=request)
    except services.ServiceActionError as exc:
        messages.error(request, str(exc))
        return redirect("hosting:detail", pk=service.pk)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    return response


@requires(Perm.MANAGE_PRODUCTS)
@require_GET
def service_panel_demo(request: AccountRequest, pk: int) -> HttpResponse:
    """Where the local (demo) panel's single sign-on lands: there is no panel to open.
    Only in demo mode: with a real panel the page would tell a falsehood."""
    if not settings.DEMO_MODE:
        raise Http404("No demo panel here.")
    return render(request, "hosting/panel_demo.html", {"service": _service(request, pk)})
