"""Reads of services shared by views, tiles and tests."""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from clientarea.accounts.models import Account

from .models import Service


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


def service_list_for(*, account: Account, status: str = "") -> QuerySet[Service]:
    services = service_visible().filter(account=account)
    if status:
        services = services.filter(status=status)
    return services.order_by("product_name", "id")


def service_count_active(account: Account) -> int:
    return Service.objects.filter(account=account, status=Service.Status.ACTIVE).count()
