"""Reads of services shared by views, tiles and tests."""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from clientarea.accounts.policy import Access, scope_filter

from .models import Service
from .scope import KIND


def service_visible() -> QuerySet[Service]:
    """Services as pages see them: the encrypted password column is never loaded, only
    whether one is stored (``password_stored``)."""
    return (
        Service.objects.defer("password_ciphertext")
        .select_related("account")
        .annotate(
            password_stored=ExpressionWrapper(
                ~Q(password_ciphertext=""), output_field=BooleanField()
            )
        )
    )


def service_list_for(*, access: Access, status: str = "") -> QuerySet[Service]:
    """The services this access reaches: the account's, within its scope."""
    services = scope_filter(service_visible().filter(account=access.account), access, KIND)
    if status:
        services = services.filter(status=status)
    return services.order_by("product_name", "id")


def service_count_active(access: Access) -> int:
    services = Service.objects.filter(account=access.account, status=Service.Status.ACTIVE)
    return scope_filter(services, access, KIND).count()
