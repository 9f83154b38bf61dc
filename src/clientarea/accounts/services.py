"""State-changing actions of identity and access. Each is one transaction that also
writes its audit event (and queues its email where one is due)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.audit.services import audit_record

from . import permissions
from .models import Account, Membership, User, normalize_email


class AccessError(Exception):
    """A request the policy refuses for a reason the user should read."""


def user_create(
    *,
    email: str,
    password: str | None,
    first_name: str,
    last_name: str = "",
    is_staff: bool = False,
) -> User:
    return User.objects.create_user(
        email=normalize_email(email),
        password=password,
        first_name=first_name,
        last_name=last_name,
        is_staff=is_staff,
    )


@transaction.atomic
def account_create(
    *,
    owner: User,
    company_name: str = "",
    country: str = "IE",
    currency: str = "EUR",
    address_line1: str = "",
    address_line2: str = "",
    city: str = "",
    postcode: str = "",
    credit_balance: Decimal = Decimal("0.00"),
    actor: User | None = None,
) -> Account:
    account = Account.objects.create(
        owner=owner,
        company_name=company_name,
        country=country.upper(),
        currency=currency.upper(),
        address_line1=address_line1,
        address_line2=address_line2,
        city=city,
        postcode=postcode,
        credit_balance=credit_balance,
    )
    audit_record(
        action="account.created",
        actor=actor,
        account=account,
        target=account,
        is_staff_action=bool(actor and actor.is_staff),
    )
    return account


PROFILE_FIELDS = ("company_name", "address_line1", "address_line2", "city", "postcode", "country")


@transaction.atomic
def account_update_profile(
    *, account: Account, actor: User, data: dict[str, Any], request: HttpRequest | None = None
) -> Account:
    changes = {}
    for field in PROFILE_FIELDS:
        if field in data and getattr(account, field) != data[field]:
            changes[field] = [getattr(account, field), data[field]]
            setattr(account, field, data[field])
    if changes:
        account.save(update_fields=list(changes))
        audit_record(
            action="account.profile_changed",
            actor=actor,
            account=account,
            target=account,
            changes=changes,
            request=request,
        )
    return account


@transaction.atomic
def user_update_profile(
    *, user: User, first_name: str, last_name: str, request: HttpRequest | None = None
) -> User:
    changes = {}
    if user.first_name != first_name:
        changes["first_name"] = [user.first_name, first_name]
    if user.last_name != last_name:
        changes["last_name"] = [user.last_name, last_name]
    if changes:
        user.first_name, user.last_name = first_name, last_name
        user.save(update_fields=["first_name", "last_name"])
        audit_record(
            action="user.profile_changed", actor=user, target=user, changes=changes, request=request
        )
    return user


@transaction.atomic
def membership_grant(
    *,
    account: Account,
    user: User,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    expires_at: datetime | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Membership:
    """Give `user` access to `account` (or restore it) with exactly these permissions."""
    if user.pk == account.owner_id:
        raise AccessError("The owner already has every permission on this account.")
    codes = permissions.normalise(list(permission_codes))
    membership, created = Membership.objects.select_for_update().get_or_create(
        account=account, user=user, defaults={"permissions": codes, "expires_at": expires_at}
    )
    if not created:
        membership.permissions = codes
        membership.expires_at = expires_at
        membership.status = Membership.Status.ACTIVE
        membership.revoked_at = None
        membership.save()
    audit_record(
        action="membership.granted",
        actor=actor,
        account=account,
        target=membership,
        target_label=user.email,
        changes={
            "permissions": codes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        request=request,
    )
    return membership


@transaction.atomic
def membership_revoke(
    *, membership: Membership, actor: User | None, request: HttpRequest | None = None
) -> Membership:
    """End a sub-account's access. A status change, never a delete: history stays attributed."""
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.status == Membership.Status.REVOKED:
        return membership
    membership.status = Membership.Status.REVOKED
    membership.revoked_at = timezone.now()
    membership.save(update_fields=["status", "revoked_at"])
    audit_record(
        action="membership.revoked",
        actor=actor,
        account=membership.account,
        target=membership,
        target_label=membership.user.email,
        request=request,
    )
    return membership
