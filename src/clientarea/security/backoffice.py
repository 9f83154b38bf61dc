"""The back office (Django's admin) guarded like the client area.

- One login for everyone: ``/admin/login/`` never checks a password itself; it sends
  staff to ``accounts:login`` (the same throttling, two-factor step and session rules as
  customers), keeping a safe ``next``. The admin's logout and password change go through
  the client area's own views.
- With ``STAFF_REQUIRE_TWO_FACTOR`` on, a staff user without two-factor is not shown any
  admin page: they are sent to the two-factor setup page with a message.

``BackOfficeAdminConfig`` replaces ``django.contrib.admin`` in ``INSTALLED_APPS`` so that
``admin.site`` (and every ``@admin.register``) is a ``BackOfficeSite``. Models are
imported inside the methods: this module is loaded while the app registry is populated.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import resolve, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

STAFF_TWO_FACTOR_MESSAGE = (
    "The back office needs two-factor authentication. Set it up to continue, "
    "then open the back office again."
)
_CHECKED = "_back_office_two_factor_ok"


def staff_two_factor_required() -> bool:
    return bool(getattr(settings, "STAFF_REQUIRE_TWO_FACTOR", True))


def staff_two_factor_ok(request: HttpRequest) -> bool:
    """Has the request's user the two-factor the back office asks of staff (or is it not
    required)? Checked once per request."""
    if not staff_two_factor_required():
        return True
    cached = getattr(request, _CHECKED, None)
    if cached is None:
        from .twofactor import user_has_two_factor

        cached = user_has_two_factor(request.user)
        setattr(request, _CHECKED, cached)
    return bool(cached)


class BackOfficeSite(admin.AdminSite):
    site_header = "Client area back office"
    site_title = "Back office"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and staff_two_factor_ok(request)

    def _safe_next(self, request: HttpRequest) -> str:
        candidate = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(
            REDIRECT_FIELD_NAME, ""
        )
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return reverse("admin:index", current_app=self.name)

    @method_decorator(never_cache)
    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """No password is ever checked here: everyone logs in at ``accounts:login``."""
        from django.contrib.auth.views import redirect_to_login

        next_url = self._safe_next(request)
        user: Any = request.user
        if not user.is_authenticated:
            return redirect_to_login(next_url, login_url=reverse("accounts:login"))
        if self.has_permission(request):
            return HttpResponseRedirect(next_url)
        if user.is_active and user.is_staff:
            # Staff without the required two-factor: set it up first.
            messages.warning(request, STAFF_TWO_FACTOR_MESSAGE)
            return redirect("security:two_factor_setup")
        raise PermissionDenied("The back office is for staff only.")

    # The stubs type these as TemplateResponse; a redirect or another view's response is
    # what Django's own admin views accept here too.
    def logout(  # type: ignore[override]
        self, request: HttpRequest, extra_context: Any = None
    ) -> HttpResponse:
        """The client area's logout (POST only; ends the tracked session)."""
        view = resolve(reverse("accounts:logout")).func
        response: HttpResponse = view(request)
        return response

    def password_change(  # type: ignore[override]
        self, request: HttpRequest, extra_context: Any = None
    ) -> HttpResponse:
        """Staff change their password where customers do (audited, other sessions end)."""
        return redirect("security:password_change")

    def password_change_done(  # type: ignore[override]
        self, request: HttpRequest, extra_context: Any = None
    ) -> HttpResponse:
        return redirect("security:security")


class BackOfficeAdminConfig(AdminConfig):
    default_site = "clientarea.security.backoffice.BackOfficeSite"
