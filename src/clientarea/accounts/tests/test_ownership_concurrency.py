"""Ownership under real concurrency (PostgreSQL): never two owners, never none.

Each race runs two service calls from two threads, each thread with its own database
connection. The first holds its locks (inside its transaction, from a signal it sends)
until PostgreSQL reports the other backend waiting on a lock, so the two really overlap;
then it commits and the second decides on what it finds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from django.dispatch import Signal

from clientarea.accounts.models import Account, Membership, OwnershipTransfer, User
from clientarea.accounts.ownership import (
    OwnershipError,
    ownership_transfer_accept,
    ownership_transfer_cancel,
    ownership_transfer_start,
)
from clientarea.accounts.services import AccessError, membership_revoke
from clientarea.accounts.signals import access_ended, ownership_transferred
from clientarea.accounts.tests.factories import MembershipFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks to race against")


def _others_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def race(
    first: Callable[[], Any], second: Callable[[], Any], held_from: Signal
) -> tuple[Any, Any, bool]:
    """Run `first`, hold it inside `held_from` until `second` waits on its lock, then let
    both finish. Returns each one's result (or the exception it raised) and whether the
    two overlapped."""
    reached, overlapped = threading.Event(), []

    def hold(**kwargs: Any) -> None:
        if threading.current_thread().name != "first":
            return
        reached.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _others_waiting_on_a_lock():
                overlapped.append(True)
                return
            time.sleep(0.02)

    results: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], Any]) -> None:
        try:
            results[name] = fn()
        except Exception as exc:  # reported to the main thread
            results[name] = exc
        finally:
            connections.close_all()

    held_from.connect(hold, weak=False, dispatch_uid="race-hold")
    try:
        one = threading.Thread(target=run, args=("first", first), name="first")
        one.start()
        assert reached.wait(20), results
        two = threading.Thread(target=run, args=("second", second), name="second")
        two.start()
        one.join(60)
        two.join(60)
    finally:
        held_from.disconnect(dispatch_uid="race-hold")
    return results.get("first"), results.get("second"), bool(overlapped)


def one_owner_and_no_owner_membership(account: Account) -> User:
    account.refresh_from_db()
    assert Account.objects.filter(pk=account.pk, owner__isnull=False).count() == 1
    assert not Membership.objects.filter(account=account, user_id=account.owner_id).exists()
    return account.owner


def offer(account: Account, to: User) -> str:
    ownership_transfer_start(
        account=account,
        actor=account.owner,
        to_email=to.email,
        former_owner_stays=True,
        keep_payment_methods=False,
    )
    row = OutboxEmail.objects.filter(to_email=to.email, body_text__contains="/ownership/").latest(
        "pk"
    )
    return row.body_text.split("/ownership/", 1)[1].split("/", 1)[0]


def test_the_same_offer_accepted_twice_at_the_same_moment_one_wins(account: Account) -> None:
    heir = MembershipFactory(account=account, permissions=["tickets"]).user
    former = account.owner
    token = offer(account, heir)

    def accept() -> Account:
        return ownership_transfer_accept(token=token, user=heir)

    first, second, overlapped = race(accept, accept, ownership_transferred)
    assert overlapped, "the two acceptances did not overlap"
    assert isinstance(first, Account)
    assert isinstance(second, OwnershipError) and "accepted" in str(second)
    assert one_owner_and_no_owner_membership(account) == heir
    assert AuditEvent.objects.filter(action="ownership_transfer.accepted").count() == 1
    # The former owner stayed once, with All Permissions.
    assert Membership.objects.filter(account=account, user=former, status="active").count() == 1


def test_an_offer_accepted_while_the_owner_cancels_it(account: Account) -> None:
    heir = MembershipFactory(account=account, permissions=["tickets"]).user
    former = account.owner
    token = offer(account, heir)
    transfer = OwnershipTransfer.objects.get(account=account)

    def accept() -> Account:
        return ownership_transfer_accept(token=token, user=heir)

    def cancel() -> OwnershipTransfer:
        return ownership_transfer_cancel(transfer=transfer, actor=former)

    first, second, overlapped = race(accept, cancel, ownership_transferred)
    assert overlapped
    assert isinstance(first, Account)
    # The cancel came second: the owner is no longer the owner, or the offer is accepted.
    assert isinstance(second, (AccessError, OwnershipError))
    assert one_owner_and_no_owner_membership(account) == heir
    transfer.refresh_from_db()
    assert transfer.status == "accepted"


@pytest.mark.parametrize("winner", ["accept", "revoke"])
def test_an_offer_accepted_while_the_owner_revokes_that_person(
    account: Account, winner: str
) -> None:
    membership = MembershipFactory(account=account, permissions=["tickets"])
    heir = membership.user
    former = account.owner
    token = offer(account, heir)

    def accept() -> Account:
        return ownership_transfer_accept(token=token, user=heir)

    def revoke() -> Membership:
        return membership_revoke(membership=membership, actor=former)

    if winner == "accept":
        first, second, overlapped = race(accept, revoke, ownership_transferred)
        assert overlapped
        assert isinstance(first, Account)
        # Their membership became the ownership: there is nothing left to revoke.
        assert isinstance(second, AccessError)
        assert one_owner_and_no_owner_membership(account) == heir
    else:
        first, second, overlapped = race(revoke, accept, access_ended)
        assert overlapped
        assert isinstance(first, Membership)
        # The owner's later decision wins: the offer cannot be accepted.
        assert isinstance(second, OwnershipError) and "removed your access" in str(second)
        assert one_owner_and_no_owner_membership(account) == former
        membership.refresh_from_db()
        assert membership.status == "revoked"
