from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Contact, Membership
from clientarea.accounts.tests.factories import ContactFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import notify

pytestmark = pytest.mark.django_db


def test_contacts_need_the_contacts_permission(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    no = login_client(member_factory("invoices").user, account)
    assert no.get(reverse("accounts:contacts")).status_code == 403
    assert no.post(reverse("accounts:contact_add"), {"name": "X", "email": "x@example.com"}
                   ).status_code == 403  # fmt: skip
    assert "Contacts" not in no.get(reverse("core:dashboard")).content.decode()
    yes = login_client(member_factory("contacts").user, account)
    assert yes.get(reverse("accounts:contacts")).status_code == 200
    assert not Contact.objects.exists()


def test_add_edit_and_remove_a_contact_are_audited(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    response = client.post(
        reverse("accounts:contact_add"),
        {"name": "Bea Billing", "email": "Bea@Example.com", "phone": "+353 21 123 4567",
         "email_kinds": ["invoice", "general"]},
    )  # fmt: skip
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert contact.email == "bea@example.com" and contact.email_kinds == ["general", "invoice"]
    page = client.get(reverse("accounts:contacts")).content.decode()
    assert "Bea Billing" in page and "Invoices" in page
    edit = {"name": "Bea Billing", "email": "bea@example.com", "email_kinds": ["support"]}
    client.post(reverse("accounts:contact_edit", args=[contact.pk]), edit)
    contact.refresh_from_db()
    assert contact.email_kinds == ["support"] and contact.phone == ""
    assert client.get(reverse("accounts:contact_remove", args=[contact.pk])).status_code == 200
    assert Contact.objects.exists()
    client.post(reverse("accounts:contact_remove", args=[contact.pk]))
    assert not Contact.objects.exists()
    actions = list(AuditEvent.objects.filter(account=account).values_list("action", flat=True))
    assert {"contact.added", "contact.changed", "contact.removed"} <= set(actions)
    changed = AuditEvent.objects.get(action="contact.changed")
    assert changed.changes["email_kinds"] == [["general", "invoice"], ["support"]]


def test_bad_contact_input_changes_nothing(
    login_client: Callable[..., Client], account: Account
) -> None:
    contact = ContactFactory(account=account, name="Tom", email="tom@example.com")
    client = login_client(account.owner, account)
    for data, words in [
        ({"name": "", "email": "a@example.com"}, "required"),
        ({"name": "A", "email": "nope"}, "valid email"),
        ({"name": "A", "email": "a@example.com", "phone": "call me"}, "phone number"),
        ({"name": "A", "email": "a@example.com", "email_kinds": ["secret"]}, "valid choice"),
        ({"name": "A", "email": "TOM@example.com"}, "already one of the account"),
    ]:
        response = client.post(reverse("accounts:contact_add"), data)
        assert response.status_code == 200 and words in response.content.decode(), words
    response = client.post(reverse("accounts:contact_edit", args=[contact.pk]),
                           {"name": "Changed", "email": "bad"})  # fmt: skip
    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.name == "Tom" and Contact.objects.count() == 1


def test_another_accounts_contact_is_404(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    theirs = ContactFactory(account=other_account, name="Theirs")
    client = login_client(account.owner, account)
    assert client.get(reverse("accounts:contact_edit", args=[theirs.pk])).status_code == 404
    data = {"name": "Mine now", "email": "m@example.com"}
    assert client.post(reverse("accounts:contact_edit", args=[theirs.pk]), data).status_code == 404
    assert client.post(reverse("accounts:contact_remove", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert "Theirs" not in client.get(reverse("accounts:contacts")).content.decode()


def test_each_email_kind_goes_to_the_owner_and_the_contacts_that_opted_in(
    account: Account,
) -> None:
    ContactFactory(account=account, email="billing@example.com", email_kinds=["invoice"])
    ContactFactory(account=account, email="tech@example.com", email_kinds=["support", "product"])
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert {r.to_email for r in rows} == {account.owner.email, "billing@example.com"}
    rows = notify(account=account, kind="product", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert {r.to_email for r in rows} == {account.owner.email, "tech@example.com"}
    assert OutboxEmail.objects.count() == 4


def test_contact_list_queries_do_not_grow(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    client.get(reverse("accounts:contacts"))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("accounts:contacts")).status_code == 200
        return len(ctx)

    ContactFactory.create_batch(5, account=account)
    five = count()
    ContactFactory.create_batch(45, account=account)
    assert count() == five
