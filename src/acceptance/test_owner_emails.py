"""The owner's own emails: the owner chooses the kinds of the account's email they
receive (as they choose for a contact); security notices, personal emails and general
notices always go. The notification layer and the worker's re-check both respect it."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from acceptance.actors import browser, post
from clientarea.accounts.models import Account
from clientarea.accounts.owner_emails import owner_email_kinds_set, owner_receives
from clientarea.accounts.ownership import ownership_transfer_accept, ownership_transfer_start
from clientarea.accounts.tests.factories import (
    AccountFactory,
    ContactFactory,
    MembershipFactory,
    access_of,
)
from clientarea.audit.models import AuditEvent
from clientarea.billing.tests.factories import make_invoice
from clientarea.hosting.services import service_password_reveal
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import notify, outbox_deliver_due

pytestmark = pytest.mark.django_db


def _owner_rows(account: Account, kind: str) -> list[OutboxEmail]:
    return list(OutboxEmail.objects.filter(to_email=account.owner.email, kind=kind))


def test_an_owner_without_invoice_emails_gets_none_but_still_gets_security_notices() -> None:
    account: Account = AccountFactory()
    contact = ContactFactory(account=account, email_kinds=["invoice"])
    owner_email_kinds_set(account=account, actor=account.owner, kinds=["support", "product"])
    assert not owner_receives(account, "invoice")
    make_invoice(account)
    assert _owner_rows(account, "invoice") == []
    assert OutboxEmail.objects.filter(to_email=contact.email, kind="invoice").count() == 1
    # Security notices always go: a sub-account reveals a control-panel password.
    developer = MembershipFactory(account=account, permissions=["manageproducts"]).user
    service_password_reveal(
        service=ServiceFactory(account=account), access=access_of(developer, account)
    )
    assert len(_owner_rows(account, "security")) == 1
    # Domain emails were turned off too; general notices always go.
    for kind in ("domain", "general"):
        notify(
            account=account,
            kind=kind,
            template="notifications/email/notice",
            context={"subject": "News", "body": "Text."},
        )
    assert _owner_rows(account, "domain") == []
    assert len(_owner_rows(account, "general")) == 1
    outbox_deliver_due()
    sent_to_owner = [m for m in mail.outbox if account.owner.email in m.to[0]]
    assert {m.subject for m in sent_to_owner}
    assert all("Invoice" not in m.subject for m in sent_to_owner)


def test_the_worker_withholds_what_the_owner_turned_off_after_it_was_queued() -> None:
    account: Account = AccountFactory()
    make_invoice(account)
    (row,) = _owner_rows(account, "invoice")
    owner_email_kinds_set(account=account, actor=account.owner, kinds=[])
    stats = outbox_deliver_due()
    row.refresh_from_db()
    assert row.status == OutboxEmail.Status.WITHHELD
    assert stats["withheld"] >= 1
    # Turned on again: the next invoice goes.
    owner_email_kinds_set(account=account, actor=account.owner, kinds=["invoice"])
    make_invoice(account)
    assert len(_owner_rows(account, "invoice")) == 2


def test_the_page_lets_the_owner_choose_with_a_fieldset_and_records_it() -> None:
    account: Account = AccountFactory()
    client = browser(account.owner, account)
    page = client.get(reverse("accounts:owner_emails")).content.decode()
    assert "<fieldset" in page and "<legend>Emails you receive</legend>" in page
    assert "Security notices" in page  # listed as always sent, not as a box
    assert 'value="security"' not in page
    for where in ("accounts:contacts", "notifications:history"):
        assert reverse("accounts:owner_emails") in client.get(reverse(where)).content.decode()
    response = post(client, reverse("accounts:owner_emails"), {"kinds": ["support", "domain"]})
    assert response.status_code == 302
    account.refresh_from_db()
    assert sorted(account.owner_email_kinds_off) == ["invoice", "product"]
    event = AuditEvent.objects.filter(action="account.owner_emails_changed").get()
    assert event.account_id == account.pk
    page = client.get(reverse("accounts:owner_emails")).content.decode()
    assert re.search(r'value="support"[^>]*checked', page)
    assert not re.search(r'value="invoice"[^>]*checked', page)


@pytest.mark.parametrize("kinds", [["security"], ["personal"], ["nonsense"], ["x" * 5000]])
def test_security_and_personal_cannot_be_turned_off_and_junk_changes_nothing(
    kinds: list[str],
) -> None:
    account: Account = AccountFactory()
    client = browser(account.owner, account)
    response = post(client, reverse("accounts:owner_emails"), {"kinds": kinds})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    account.refresh_from_db()
    assert account.owner_email_kinds_off == []


def test_only_the_owner_has_the_page() -> None:
    account: Account = AccountFactory()
    partner = MembershipFactory(account=account, permissions=["contacts", "emails"]).user
    client = browser(partner, account)
    response = client.get(reverse("accounts:owner_emails"))
    assert response.status_code in (302, 403)
    response = post(client, reverse("accounts:owner_emails"), {"kinds": []})
    assert response.status_code in (302, 403)
    account.refresh_from_db()
    assert account.owner_email_kinds_off == []
    assert (
        reverse("accounts:owner_emails")
        not in client.get(reverse("accounts:contacts")).content.decode()
    )


def test_a_new_owner_starts_with_every_email() -> None:
    account: Account = AccountFactory()
    heir = MembershipFactory(account=account, permissions=["invoices"]).user
    owner_email_kinds_set(account=account, actor=account.owner, kinds=[])
    ownership_transfer_start(
        account=account,
        actor=account.owner,
        to_email=heir.email,
        former_owner_stays=True,
        keep_payment_methods=False,
    )
    row = OutboxEmail.objects.filter(to_email=heir.email, body_text__contains="/ownership/").get()
    match = re.search(r"/ownership/(?P<token>[A-Za-z0-9_\-]+)/", row.body_text)
    assert match is not None
    ownership_transfer_accept(token=match.group("token"), user=heir)
    account.refresh_from_db()
    assert account.owner_id == heir.pk
    assert account.owner_email_kinds_off == []
    make_invoice(account)
    assert len(_owner_rows(account, "invoice")) == 1
