"""Prove the proof, on the app's side: plant each fault in the real policy or a real
service (monkeypatched for the test) and expect the conformance checker to report a
disagreement with the model within a few steps, printing the sequence.

The checker deepens one step at a time (every state to depth 1, then 2, then 3) on one
account and stops at the first disagreement, so each fault is found with a shortest
sequence and quickly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from acceptance.model.conformance import Disagreement, checker
from acceptance.model.routes import item_of

pytestmark = pytest.mark.django_db

LONGEST = 3  # a planted fault must show within this many steps


def _revoke_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Revoke Access answers as if done and changes nothing."""
    from clientarea.accounts import services

    monkeypatch.setattr(services, "membership_revoke", lambda *, membership, **kw: membership)


def _scope_ignored_on_one_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """The domain's pages find the domain in the account, whatever the scope."""
    from clientarea.accounts.policy import account_object_or_404
    from clientarea.domains import views

    def unscoped(queryset: Any, access: Any, kind: str, **lookup: Any) -> Any:
        return account_object_or_404(queryset, access.account, **lookup)

    monkeypatch.setattr(views, "scoped_object_or_404", unscoped)


def _token_outlives_creator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are never voided, and one whose creator's access ended works on with
    what it carries."""
    from clientarea.accounts import permissions
    from clientarea.accounts.policy import Access
    from clientarea.api import services

    original = services._token_checked

    def lenient(token: Any, now: Any) -> Any:
        try:
            return original(token, now)
        except services.TokenRefused as exc:
            if exc.code not in ("creator_access_ended", "ownership_moved"):
                raise
            return Access(token.created_by, token.account, None, False, permissions.ALL_CODES)

    monkeypatch.setattr(services, "_void", lambda tokens_qs, reason: 0)
    monkeypatch.setattr(services, "_token_checked", lenient)


def _transfer_two_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a transfer, the former owner is still treated as an owner."""
    from clientarea.accounts import policy
    from clientarea.accounts.models import OwnershipTransfer

    original = policy.is_owner

    def two_owners(user: Any, account: Any) -> bool:
        if original(user, account):
            return True
        return (
            user is not None
            and user.pk is not None
            and OwnershipTransfer.objects.filter(
                account_id=account.pk, from_user_id=user.pk, status="accepted"
            ).exists()
        )

    monkeypatch.setattr(policy, "is_owner", two_owners)


def _history_ignores_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Email History lists every email of the account to anyone who may open it."""
    from clientarea.notifications import selectors
    from clientarea.notifications.models import OutboxEmail

    monkeypatch.setattr(
        selectors,
        "email_history_for",
        lambda access: OutboxEmail.objects.filter(account=access.account),
    )


FAULTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], bool]] = {
    # name: (plant it, needs the HTTP level to show)
    "revoke_noop": (_revoke_noop, False),
    "scope_ignored_on_one_route": (_scope_ignored_on_one_route, True),
    "token_outlives_creator": (_token_outlives_creator, False),
    "transfer_two_owners": (_transfer_two_owners, False),
    "history_ignores_kinds": (_history_ignores_kinds, False),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_checker_finds_the_fault_planted_in_the_app(
    fault: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DEMO_MODE = True
    plant, http = FAULTS[fault]
    plant(monkeypatch)
    found: Disagreement | None = None
    # The HTTP sample is narrowed to the routes about an item (the scope's).
    with checker(http=http, http_routes=lambda route: bool(item_of(route))) as check:
        for depth in range(1, LONGEST + 1):
            try:
                check.run_tree(depth, transitions=False, active=(0,))
            except Disagreement as exc:
                found = exc
                break
    assert found is not None, f"{fault} was not found within {LONGEST} steps"
    print(f"\n{fault} found:\n{found.describe()}\n{check.stats.summary()}")
    assert len(found.sequence) <= LONGEST
