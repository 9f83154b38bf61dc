"""Tokens as data: the secret's format, what creation refuses, what is stored and sent,
who may revoke, and how tokens die with their creator's footing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.ownership import ownership_transfer_by_staff
from clientarea.accounts.policy import OutOfReach
from clientarea.accounts.services import membership_expire_due, membership_revoke
from clientarea.accounts.tests.factories import UserFactory
from clientarea.api import tokens
from clientarea.api.models import ApiToken
from clientarea.api.services import (
    TokenError,
    TokenRefused,
    networks_clean,
    token_authenticate,
    token_revoke,
)
from clientarea.audit.models import AuditEvent
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail

from .helpers import make_token

pytestmark = pytest.mark.django_db


# --- the secret ---------------------------------------------------------------------------


def test_secret_has_prefix_checksum_and_enough_entropy() -> None:
    secret = tokens.secret_new()
    assert secret.startswith("ca_pat_") and len(secret) == tokens.LENGTH == 43
    assert tokens.secret_well_formed(secret)
    assert len({tokens.secret_new() for _ in range(200)}) == 200
    # One changed character breaks the checksum: scanners and the app tell it at once.
    body = secret[7:]
    flipped = "ca_pat_" + ("A" if body[0] != "A" else "B") + body[1:]
    assert not tokens.secret_well_formed(flipped)
    for junk in (
        "",
        "ca_pat_",
        "ghp_" + body,
        secret + "x",
        secret[:-1] + "!",
        "ca_pat_" + "é" * 36,
    ):
        assert not tokens.secret_well_formed(junk)


def test_only_the_hash_is_stored_and_the_secret_is_in_no_audit_or_email(account: Account) -> None:
    token, secret = make_token(account, codes=["invoices"])
    row = ApiToken.objects.values().get(pk=token.pk)
    assert secret not in repr(row)
    assert row["secret_hash"] == tokens.secret_hash(secret) != secret
    assert row["hint"] == secret[:11]
    events = AuditEvent.objects.filter(action="api_token.created")
    assert events.count() == 1 and secret not in repr(list(events.values()))
    random_part = secret[7:]
    for email in OutboxEmail.objects.all():
        assert random_part[4:] not in email.body_text + email.subject + email.body_after_send
    (email,) = OutboxEmail.objects.filter(to_email=account.owner.email, kind="personal")
    assert "Script" in email.body_text and "View & Pay Invoices" in email.body_text


def test_creation_audited_and_emailed_to_its_creator_only(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets", "invoices").user
    token, _ = make_token(account, member, codes=["tickets"])
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor == member and event.account == account
    assert event.target_id == str(token.pk)
    assert event.changes["permissions"] == ["tickets"]
    emails = OutboxEmail.objects.filter(subject__contains="API token")
    assert [(e.to_email, e.kind, e.recipient_user_id) for e in emails] == [
        (member.email, "personal", member.pk)
    ]


# --- what creation refuses ---------------------------------------------------------------


def test_forged_permissions_beyond_the_creators_are_refused_with_a_clear_message(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets").user
    with pytest.raises(TokenError, match="you do not hold: View & Pay Invoices"):
        make_token(account, member, codes=["tickets", "invoices"])
    with pytest.raises(TokenError, match="Unknown permission: manage_users"):
        make_token(account, member, codes=["manage_users"])
    with pytest.raises(TokenError, match="at least one"):
        make_token(account, member, codes=[])
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="api_token").exists()
    assert not OutboxEmail.objects.filter(subject__contains="API token").exists()


def test_scope_no_wider_than_the_creators(
    account: Account, member_factory: Callable[..., Membership], other_account: Account
) -> None:
    mine, other = ServiceFactory(account=account), ServiceFactory(account=account)
    scoped = member_factory("products", scope={"service": [mine.pk], "domain": []}).user
    with pytest.raises(TokenError, match="only services and domains you reach"):
        make_token(account, scoped, codes=["products"], scope={"service": [other.pk]})
    # No scope asked: the creator's own scope of today, written down.
    token, _ = make_token(account, scoped, codes=["products"])
    assert token.scope == {"service": [mine.pk], "domain": []}
    # Another account's service is refused for anyone, the owner too.
    elsewhere = ServiceFactory(account=other_account)
    with pytest.raises(TokenError, match="of this account"):
        make_token(account, codes=["products"], scope={"service": [elsewhere.pk]})


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [
        (timedelta(days=-1), "in the future"),
        (timedelta(days=367), "at most one year"),
    ],
)
def test_expiry_required_and_at_most_a_year(
    account: Account, expires_in: timedelta, message: str
) -> None:
    with pytest.raises(TokenError, match=message):
        make_token(account, expires_at=timezone.now() + expires_in)
    with pytest.raises(TokenError, match="every token expires"):
        make_token(account, expires_at=None)
    assert not ApiToken.objects.exists()


def test_networks_are_checked_with_ipaddress() -> None:
    assert networks_clean(["203.0.113.7", " 2001:db8::/32 ", "198.51.100.9/24", ""]) == [
        "203.0.113.7/32",
        "2001:db8::/32",
        "198.51.100.0/24",
    ]
    for bad in ("203.0.113.300", "example.com", "10.0.0.0/33", "1.2.3.4\n5"):
        with pytest.raises(TokenError, match="not an IP address or CIDR range"):
            networks_clean([bad])
    with pytest.raises(TokenError, match="at most 20"):
        networks_clean([f"192.0.2.{n}" for n in range(21)])


def test_name_is_one_line(account: Account) -> None:
    with pytest.raises(TokenError):
        make_token(account, name="Acme\nBcc: x@example.com")
    with pytest.raises(TokenError, match="Give the token a name"):
        make_token(account, name="   ")


def test_a_person_without_access_creates_nothing(account: Account) -> None:
    stranger = UserFactory()
    with pytest.raises(TokenError, match="no longer have access"):
        make_token(account, stranger)


# --- revoking ------------------------------------------------------------------------------


def test_owner_revokes_any_token_others_only_their_own(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    first = member_factory("invoices").user
    second = member_factory("invoices").user
    token, secret = make_token(account, first)
    with pytest.raises(OutOfReach):
        token_revoke(token=token, actor=second)
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    token_revoke(token=token, actor=account.owner)
    with pytest.raises(TokenRefused) as refused:
        token_authenticate(secret=secret, ip="127.0.0.1")
    assert refused.value.code == "token_revoked"
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert event.actor == account.owner and secret not in repr(event.changes)
    mine, _ = make_token(account, second)
    assert token_revoke(token=mine, actor=second).end_reason == "revoked"


# --- dying with the creator's footing -----------------------------------------------------


def _authenticate(secret: str) -> Any:
    return token_authenticate(secret=secret, ip="127.0.0.1")


def test_creator_revoked_voids_their_tokens_through_access_ended(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices")
    token, secret = make_token(account, membership.user)
    other_token, other_secret = make_token(account)  # the owner's: unaffected
    membership_revoke(membership=membership, actor=account.owner)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.end_reason == "access_ended"
    assert AuditEvent.objects.filter(action="api_token.voided", target_id=str(token.pk)).exists()
    with pytest.raises(TokenRefused):
        _authenticate(secret)
    assert _authenticate(other_secret).token == other_token


def test_creator_expired_voids_their_tokens(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices", expires_at=timezone.now() + timedelta(minutes=5))
    token, secret = make_token(account, membership.user)
    later = timezone.now() + timedelta(minutes=6)
    # Dead at once when the expiry passes, before the worker records it...
    with pytest.raises(TokenRefused) as refused:
        token_authenticate(secret=secret, ip=None, now=later)
    assert refused.value.code == "creator_access_ended"
    # ...and voided when it does.
    membership_expire_due(now=later)
    token.refresh_from_db()
    assert token.end_reason == "access_ended"


def test_creators_permissions_reduced_token_carries_the_intersection(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices", "manageproducts", "tickets")
    token, secret = make_token(account, membership.user, codes=["invoices", "manageproducts"])
    assert _authenticate(secret).access.permissions == {"invoices", "manageproducts", "products"}
    # The owner takes invoices and manageproducts away (a direct update: no service of
    # ours is told; the intersection is computed at every use).
    Membership.objects.filter(pk=membership.pk).update(permissions=["products", "tickets"])
    assert _authenticate(secret).access.permissions == {"products"}
    # The token's own row is left as made: the creator's grant is asked at every use.
    token.refresh_from_db()
    assert set(token.permissions) == {"invoices", "manageproducts", "products"}
    # Given back: the token's own grant again, never more (tickets was never carried).
    Membership.objects.filter(pk=membership.pk).update(
        permissions=["invoices", "manageproducts", "products", "tickets", "emails"]
    )
    assert _authenticate(secret).access.permissions == {"invoices", "manageproducts", "products"}


def test_scope_is_the_intersection_of_the_tokens_and_the_creators(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    one, two = ServiceFactory(account=account), ServiceFactory(account=account)
    membership = member_factory("products", scope={"service": [one.pk, two.pk], "domain": []})
    _, secret = make_token(account, membership.user, codes=["products"])
    assert _authenticate(secret).access.scope_ids("service") == {one.pk, two.pk}
    Membership.objects.filter(pk=membership.pk).update(scope={"service": [two.pk], "domain": []})
    assert _authenticate(secret).access.scope_ids("service") == {two.pk}
    # Widened again to everything: the token stays within what it was made with.
    Membership.objects.filter(pk=membership.pk).update(scope=None)
    assert _authenticate(secret).access.scope_ids("service") == {one.pk, two.pk}


def test_ownership_moving_away_kills_the_former_owners_tokens(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    former = account.owner
    heir_membership = member_factory("invoices")
    heir: User = heir_membership.user
    token, secret = make_token(account, former, codes=["invoices"])
    _, heirs_secret = make_token(account, heir, codes=["invoices"])
    ownership_transfer_by_staff(
        account=account,
        staff=UserFactory(is_staff=True),
        new_owner=heir,
        reason="Company sold",
        former_owner_stays=True,
        keep_payment_methods=True,
    )
    token.refresh_from_db()
    assert token.end_reason == "ownership_moved"
    with pytest.raises(TokenRefused):
        _authenticate(secret)
    # The new owner's token made as a sub-account still carries what it carried.
    assert _authenticate(heirs_secret).access.permissions == {"invoices"}


def test_ownership_moved_without_the_signal_still_refused(account: Account) -> None:
    _, secret = make_token(account)
    heir = UserFactory()
    Account.objects.filter(pk=account.pk).update(owner=heir)
    Membership.objects.create(account=account, user=account.owner, permissions=["invoices"])
    with pytest.raises(TokenRefused) as refused:
        _authenticate(secret)
    assert refused.value.code == "ownership_moved"


def test_a_service_leaving_the_account_leaves_every_token_scope(
    account: Account, other_account: Account
) -> None:
    kept, moved = ServiceFactory(account=account), ServiceFactory(account=account)
    token, secret = make_token(
        account, codes=["products"], scope={"service": [kept.pk, moved.pk], "domain": []}
    )
    moved.account = other_account
    moved.save()
    token.refresh_from_db()
    assert token.scope == {"service": [kept.pk], "domain": []}
    assert AuditEvent.objects.filter(action="api_token.scope_item_removed").count() == 1
    # Back in the account later: the token does not reach it again.
    moved.account = account
    moved.save()
    assert _authenticate(secret).access.scope_ids("service") == {kept.pk}
    kept.delete()
    token.refresh_from_db()
    assert token.scope == {"service": [], "domain": []}
    assert _authenticate(secret).access.scope_ids("service") == frozenset()
