"""Domains as items of a resource scope: registered with identity and access (which
never imports this app), and taken out of every scope that named them when they leave
their account (deleted, or moved to another account)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from clientarea.accounts.models import Account
from clientarea.accounts.permissions import EmailKind, Perm
from clientarea.accounts.scope import ScopeKind, register_scope_kind
from clientarea.accounts.services import scope_item_forget

from .models import Domain

KIND = "domain"


def domain_choices(account: Account) -> list[tuple[int, str]]:
    rows = Domain.objects.filter(account=account).order_by("name", "id")
    return [(d.pk, d.unicode_name) for d in rows.only("pk", "name")]


def _remember_account(sender: Any, instance: Domain, **kwargs: Any) -> None:
    instance._scope_account_before = (  # type: ignore[attr-defined]
        Domain.objects.filter(pk=instance.pk).values_list("account_id", flat=True).first()
        if instance.pk
        else None
    )


def _moved(sender: Any, instance: Domain, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_scope_account_before", None)
    if not created and before is not None and before != instance.account_id:
        scope_item_forget(kind=KIND, obj_id=instance.pk, account_id=before)


def _deleted(sender: Any, instance: Domain, **kwargs: Any) -> None:
    scope_item_forget(kind=KIND, obj_id=instance.pk, account_id=instance.account_id)


def register() -> None:
    register_scope_kind(
        ScopeKind(
            name=KIND,
            label="Domains",
            model=Domain,
            choices=domain_choices,
            permission=Perm.DOMAINS.value,
            email_kind=EmailKind.DOMAIN.value,
        )
    )
    pre_save.connect(_remember_account, sender=Domain, dispatch_uid="domains-scope-pre")
    post_save.connect(_moved, sender=Domain, dispatch_uid="domains-scope-moved")
    post_delete.connect(_deleted, sender=Domain, dispatch_uid="domains-scope-deleted")
