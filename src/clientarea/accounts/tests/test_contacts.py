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


# --- Contacts follow the grant, and receive nothing until confirmed (issue: channels) ---


def _confirm_link(contact_email: str) -> str:
    row = OutboxEmail.objects.filter(to_email=contact_email).latest("pk")
    assert row.kind == OutboxEmail.Kind.PERSONAL
    return (
        "/contacts/confirm/" + row.body_text.split("/contacts/confirm/", 1)[1].split("/")[0] + "/"
    )


def test_a_sub_account_may_give_a_contact_only_kinds_it_can_read(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """The issue's attack: with only View & Manage Contacts, an outside address was given
    every email kind, and support replies, invoices and product emails went to it."""
    client = login_client(member_factory("contacts").user, account)
    form = client.get(reverse("accounts:contact_add")).content.decode()
    assert 'value="invoice"' in form and "disabled" in form
    for kind in ("invoice", "support", "product", "domain"):
        response = client.post(
            reverse("accounts:contact_add"),
            {"name": "Eve", "email": "eve@attacker.example", "email_kinds": [kind, "general"]},
        )
        assert response.status_code == 200
        assert "only choose emails you can read yourself" in response.content.decode()
    assert not Contact.objects.exists()
    assert not OutboxEmail.objects.exists()
    response = client.post(
        reverse("accounts:contact_add"),
        {"name": "Eve", "email": "eve@attacker.example", "email_kinds": ["general"]},
    )
    assert response.status_code == 302
    assert Contact.objects.get().email_kinds == ["general"]


def test_invoices_holder_may_give_invoice_emails_but_not_support(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    client = login_client(member_factory("contacts", "invoices").user, account)
    add = reverse("accounts:contact_add")
    ok = client.post(add, {"name": "Acc", "email": "acc@example.com", "email_kinds": ["invoice"]})
    assert ok.status_code == 302
    refused = client.post(add, {"name": "S", "email": "s@example.com", "email_kinds": ["support"]})
    assert refused.status_code == 200
    assert list(Contact.objects.values_list("email", flat=True)) == ["acc@example.com"]


def test_a_sub_account_keeps_the_owners_choice_of_kinds_it_cannot_read(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    tom = ContactFactory(account=account, name="Tom", email="tom@example.com",
                         email_kinds=["support", "product", "general"])  # fmt: skip
    client = login_client(member_factory("contacts").user, account)
    # The form posts only the boxes it may change (the others are disabled): unticking
    # "general" leaves support and product as the owner set them.
    edit = {"name": "Tom T", "email": "tom@example.com", "email_kinds": []}
    response = client.post(reverse("accounts:contact_edit", args=[tom.pk]), edit)
    assert response.status_code == 302
    tom.refresh_from_db()
    assert tom.name == "Tom T" and tom.email_kinds == ["support", "product"]
    assert tom.is_confirmed  # same address: still confirmed


def test_a_sub_account_cannot_move_a_contact_that_receives_more_than_it_may_read(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """Redirecting Tom's support mail to an attacker's address (confirmed by the
    attacker) would read support email through the back door."""
    tom = ContactFactory(account=account, name="Tom", email="tom@example.com",
                         email_kinds=["support"])  # fmt: skip
    client = login_client(member_factory("contacts").user, account)
    response = client.post(reverse("accounts:contact_edit", args=[tom.pk]),
                           {"name": "Tom", "email": "eve@attacker.example"})  # fmt: skip
    assert response.status_code == 200
    assert "only the account owner can change their address" in response.content.decode()
    tom.refresh_from_db()
    assert tom.email == "tom@example.com" and tom.is_confirmed
    assert not OutboxEmail.objects.filter(to_email="eve@attacker.example").exists()


def test_a_contact_receives_nothing_until_it_confirms_from_the_link(
    login_client: Callable[..., Client], account: Account
) -> None:
    owner = login_client(account.owner, account)
    owner.post(reverse("accounts:contact_add"),
               {"name": "Bea", "email": "bea@example.com", "email_kinds": ["invoice"]})  # fmt: skip
    contact = Contact.objects.get()
    assert not contact.is_confirmed
    assert "Waiting for confirmation" in owner.get(reverse("accounts:contacts")).content.decode()
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "bea@example.com" not in {r.to_email for r in rows}

    link = _confirm_link("bea@example.com")
    visitor = Client(enforce_csrf_checks=False)
    opened = visitor.get(link)
    # The token leaves the address bar at once: the page lives at a URL without it.
    assert opened.status_code == 302 and opened["Location"] == reverse("accounts:contact_confirm")
    page = visitor.get(opened["Location"])
    assert page.status_code == 200 and "Confirm your address" in page.content.decode()
    contact.refresh_from_db()
    assert not contact.is_confirmed  # opening the link (a mail scanner) confirms nothing
    done = visitor.post(reverse("accounts:contact_confirm"))
    assert done.status_code == 200 and "Address confirmed" in done.content.decode()
    contact.refresh_from_db()
    assert contact.is_confirmed
    assert AuditEvent.objects.filter(action="contact.confirmed", account=account).exists()
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "bea@example.com" in {r.to_email for r in rows}

    # The link is single-use.
    replay = Client()
    replay.get(link)
    assert replay.get(reverse("accounts:contact_confirm")).status_code == 404


def test_a_new_address_must_be_confirmed_again_and_old_links_die(
    login_client: Callable[..., Client], account: Account
) -> None:
    bea = ContactFactory(account=account, name="Bea", email="bea@example.com",
                         email_kinds=["invoice"])  # fmt: skip
    owner = login_client(account.owner, account)
    owner.post(reverse("accounts:contact_edit", args=[bea.pk]),
               {"name": "Bea", "email": "bea@new.example", "email_kinds": ["invoice"]})  # fmt: skip
    bea.refresh_from_db()
    assert bea.email == "bea@new.example" and not bea.is_confirmed
    first = _confirm_link("bea@new.example")
    owner.post(reverse("accounts:contact_confirmation_resend", args=[bea.pk]))
    second = _confirm_link("bea@new.example")
    assert first != second
    stale = Client()
    stale.get(first)
    assert stale.post(reverse("accounts:contact_confirm")).status_code == 404
    bea.refresh_from_db()
    assert not bea.is_confirmed
    fresh = Client()
    fresh.get(second)
    assert fresh.post(reverse("accounts:contact_confirm")).status_code == 200
    bea.refresh_from_db()
    assert bea.is_confirmed


def test_confirmation_links_expire(login_client: Callable[..., Client], account: Account) -> None:
    from datetime import timedelta

    from django.utils import timezone

    owner = login_client(account.owner, account)
    owner.post(reverse("accounts:contact_add"),
               {"name": "Bea", "email": "bea@example.com", "email_kinds": ["invoice"]})  # fmt: skip
    link = _confirm_link("bea@example.com")
    Contact.objects.update(confirmation_sent_at=timezone.now() - timedelta(days=8))
    visitor = Client()
    visitor.get(link)
    assert visitor.post(reverse("accounts:contact_confirm")).status_code == 404
    assert not Contact.objects.get().is_confirmed


def test_contact_services_check_the_policy_themselves(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """A caller that skips the view (the coming API) is refused the same way."""
    from clientarea.accounts import services

    outsider = member_factory("invoices").user
    with pytest.raises(services.AccessError):
        services.contact_create(account=account, actor=outsider,
                                data={"name": "X", "email": "x@example.com"})  # fmt: skip
    helper = member_factory("contacts").user
    with pytest.raises(services.ContactError):
        services.contact_create(account=account, actor=helper,
                                data={"name": "X", "email": "x@example.com",
                                      "email_kinds": ["invoice"]})  # fmt: skip
    assert not Contact.objects.exists()


def test_a_contact_a_sub_account_chose_stops_when_its_access_does(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """A sub-account adds its own (or any) address as an invoice contact and confirms it;
    once its access ends, or stops covering invoices, that contact is sent nothing more,
    queued emails included. When the owner takes the contact over, it receives again."""
    from clientarea.accounts.services import membership_revoke, membership_update
    from clientarea.notifications.services import outbox_deliver_due

    member = member_factory("contacts", "invoices")
    client = login_client(member.user, account)
    client.post(reverse("accounts:contact_add"),
                {"name": "Me", "email": "me@home.example", "email_kinds": ["invoice"]})  # fmt: skip
    contact = Contact.objects.get()
    Contact.objects.filter(pk=contact.pk).update(confirmed_at=contact.created_at)

    def invoice_recipients() -> set[str]:
        rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                      context={"membership": None, "reason": "revoked"})  # fmt: skip
        return {r.to_email for r in rows}

    assert "me@home.example" in invoice_recipients()
    queued = OutboxEmail.objects.filter(to_email="me@home.example").latest("pk")
    membership_update(membership=member, actor=account.owner, permission_codes=["contacts"],
                      expires_at=None)  # fmt: skip
    assert "me@home.example" not in invoice_recipients()
    outbox_deliver_due()
    queued.refresh_from_db()
    assert queued.status == OutboxEmail.Status.WITHHELD
    membership_update(membership=member, actor=account.owner,
                      permission_codes=["contacts", "invoices"], expires_at=None)  # fmt: skip
    assert "me@home.example" in invoice_recipients()
    membership_revoke(membership=member, actor=account.owner)
    assert "me@home.example" not in invoice_recipients()
    # The owner saves the contact: it is the owner's choice from now on.
    owner = login_client(account.owner, account)
    owner.post(reverse("accounts:contact_edit", args=[contact.pk]),
               {"name": "Me", "email": "me@home.example", "email_kinds": ["invoice"]})  # fmt: skip
    assert "me@home.example" in invoice_recipients()


def test_the_owners_contact_keeps_its_kinds_when_a_sub_account_edits_it(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    from clientarea.accounts.services import membership_revoke

    bea = ContactFactory(account=account, email="bea@example.com", email_kinds=["invoice"])
    member = member_factory("contacts", "invoices")
    client = login_client(member.user, account)
    client.post(reverse("accounts:contact_edit", args=[bea.pk]),
                {"name": "Bea B", "email": "bea@example.com",
                 "email_kinds": ["invoice", "general"]})  # fmt: skip
    bea.refresh_from_db()
    assert bea.email_kinds == ["general", "invoice"]
    assert bea.kind_sponsors == {"general": member.user.pk}  # invoice stays the owner's
    membership_revoke(membership=member, actor=account.owner)
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "bea@example.com" in {r.to_email for r in rows}
    rows = notify(account=account, kind="general", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    assert "bea@example.com" not in {r.to_email for r in rows}


def test_confirmation_emails_cannot_be_used_to_mail_someone_at_will(
    login_client: Callable[..., Client], account: Account
) -> None:
    owner = login_client(account.owner, account)
    victim = {"name": "Vic", "email": "victim@example.org", "email_kinds": ["general"]}
    owner.post(reverse("accounts:contact_add"), victim)
    contact = Contact.objects.get()
    for _ in range(10):
        owner.post(reverse("accounts:contact_confirmation_resend", args=[contact.pk]))
    assert OutboxEmail.objects.filter(to_email="victim@example.org").count() == 3
    page = owner.get(reverse("accounts:contacts")).content.decode()
    assert "Too many confirmation emails" in page


def test_the_back_office_cannot_repoint_a_contact(account: Account) -> None:
    """A contact's address and kinds change only where the grant bounds them and a new
    address must confirm itself: staff see contacts read-only (and may remove one)."""
    from clientarea.accounts.tests.factories import UserFactory

    bea = ContactFactory(account=account, email="bea@example.com", email_kinds=["invoice"])
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "bea@example.com" in html
    assert 'name="contacts-0-email"' not in html and 'name="contacts-0-email_kinds"' not in html
    bea.refresh_from_db()
    assert bea.email == "bea@example.com"


def test_the_owners_own_address_and_a_contact_with_no_email_are_refused(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    add = reverse("accounts:contact_add")
    owner_email = account.owner.email.upper()
    response = client.post(add, {"name": "Me", "email": owner_email, "email_kinds": ["invoice"]})
    assert response.status_code == 200
    assert "the account owner&#x27;s own address" in response.content.decode()
    response = client.post(add, {"name": "Nobody", "email": "n@example.com"})
    assert response.status_code == 200
    assert "Choose at least one kind of email" in response.content.decode()
    assert not Contact.objects.exists()
    bea = ContactFactory(account=account, email="bea@example.com", email_kinds=["invoice"])
    edit = reverse("accounts:contact_edit", args=[bea.pk])
    for data in (
        {"name": "Bea", "email": "bea@example.com", "email_kinds": []},
        {"name": "Bea", "email": account.owner.email, "email_kinds": ["invoice"]},
    ):
        assert client.post(edit, data).status_code == 200
    bea.refresh_from_db()
    assert (bea.email, bea.email_kinds) == ("bea@example.com", ["invoice"])


def test_the_contact_services_refuse_the_owners_address_and_no_kinds(account: Account) -> None:
    """No entry point stores them: the services refuse what the form refuses."""
    from clientarea.accounts import services

    owner = account.owner
    for data in (
        {"name": "Me", "email": owner.email, "email_kinds": ["invoice"]},
        {"name": "Nobody", "email": "n@example.com", "email_kinds": []},
    ):
        with pytest.raises(services.ContactError):
            services.contact_create(account=account, actor=owner, data=data)
    assert not Contact.objects.exists()
    bea = ContactFactory(account=account, email="bea@example.com", email_kinds=["invoice"])
    for data in (
        {"name": "Bea", "email": owner.email.upper(), "email_kinds": ["invoice"]},
        {"name": "Bea", "email": "bea@example.com", "email_kinds": []},
    ):
        with pytest.raises(services.ContactError):
            services.contact_update(contact=bea, actor=owner, data=data)
    bea.refresh_from_db()
    assert (bea.email, bea.email_kinds) == ("bea@example.com", ["invoice"])
