"""Tokens die with their creator's footing, and forget the services and domains that
leave their account: connected in ``ApiConfig.ready``."""

from __future__ import annotations

from typing import Any

from . import services


def on_access_ended(sender: Any, membership: Any, **kwargs: Any) -> None:
    services.token_void_for_access_ended(membership=membership)


def on_access_changed(sender: Any, membership: Any, **kwargs: Any) -> None:
    services.token_narrow_to_grant(membership=membership)


def on_ownership_transferred(sender: Any, account: Any, former_owner: Any, **kwargs: Any) -> None:
    services.token_void_for_ownership_moved(account=account, former_owner=former_owner)


def _remember_account(sender: Any, instance: Any, **kwargs: Any) -> None:
    field = f"{_kind_for(sender).account_field}_id"
    instance._token_scope_account_before = (
        sender._default_manager.filter(pk=instance.pk).values_list(field, flat=True).first()
        if instance.pk
        else None
    )


def _kind_for(model: Any) -> Any:
    from clientarea.accounts.scope import kind_for_model

    kind = kind_for_model(model)
    assert kind is not None
    return kind


def _moved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    kind = _kind_for(sender)
    before = getattr(instance, "_token_scope_account_before", None)
    now = getattr(instance, f"{kind.account_field}_id", None)
    if not created and before is not None and before != now:
        services.token_scope_item_forget(kind=kind.name, obj_id=instance.pk, account_id=before)


def _deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    kind = _kind_for(sender)
    account_id = getattr(instance, f"{kind.account_field}_id", None)
    if account_id is not None:
        services.token_scope_item_forget(kind=kind.name, obj_id=instance.pk, account_id=account_id)


def connect_scope_kinds() -> None:
    """For every kind of item a scope can name (registered by the domain apps, whose
    configs are ready before this one's)."""
    from django.db.models.signals import post_delete, post_save, pre_save

    from clientarea.accounts.scope import SCOPE_KINDS

    for kind in SCOPE_KINDS.values():
        uid = f"api-token-scope-{kind.name}"
        pre_save.connect(_remember_account, sender=kind.model, dispatch_uid=f"{uid}-pre")
        post_save.connect(_moved, sender=kind.model, dispatch_uid=f"{uid}-moved")
        post_delete.connect(_deleted, sender=kind.model, dispatch_uid=f"{uid}-deleted")
