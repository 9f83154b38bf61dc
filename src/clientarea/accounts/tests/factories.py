from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from clientarea.accounts.models import Account, Contact, Invitation, Membership, User
from clientarea.accounts.policy import Access, access_for

TEST_PASSWORD = "a-long-test-password-42"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")

    @factory.post_generation
    def password(obj: User, create: bool, extracted: str | None, **kwargs: Any) -> None:
        obj.set_password(extracted or TEST_PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class AccountFactory(factory.django.DjangoModelFactory[Account]):
    class Meta:
        model = Account

    owner = factory.SubFactory(UserFactory)
    company_name = factory.Faker("company")
    address_line1 = factory.Faker("street_address")
    city = factory.Faker("city")
    postcode = "D02 X285"
    country = "IE"
    currency = "EUR"


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    account = factory.SubFactory(AccountFactory)
    user = factory.SubFactory(UserFactory)
    permissions: Any = factory.LazyFunction(list)


class ContactFactory(factory.django.DjangoModelFactory[Contact]):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    email_kinds: Any = factory.LazyFunction(lambda: ["general"])
    # A contact whose holder confirmed the address (pass confirmed_at=None for one who
    # has not yet: it receives nothing).
    confirmed_at = factory.LazyFunction(timezone.now)


class InvitationFactory(factory.django.DjangoModelFactory[Invitation]):
    """An invitation row. Use `invitation_create` when the link (token) matters."""

    class Meta:
        model = Invitation

    account = factory.SubFactory(AccountFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    permissions: Any = factory.LazyFunction(lambda: ["invoices"])
    token_hash = factory.Sequence(lambda n: f"{n:064x}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    invited_by = factory.LazyAttribute(lambda o: o.account.owner)


def access_of(user: User, account: Account) -> Access:
    """The person's access to the account as a page would build it (``request.access``),
    for tests that call service functions directly. Fails if they have none."""
    access = access_for(user, account.pk)
    assert access is not None, f"{user} has no access to {account}"
    return access
